"""The runtimes behind :class:`gpuvec.MilvusClient` (and so behind ``gpuvec serve``):
:mod:`.base` states the interface (:class:`~gpuvec.runtime.base.Runtime`), :mod:`.embedded`
runs every role in one process, :mod:`.duties` is its data-node duties (index builds and
compactions on Dask, swapped into its query node). The cluster proxy's runtime is
:class:`gpuvec.cluster.proxy.ClusterEngine`."""
