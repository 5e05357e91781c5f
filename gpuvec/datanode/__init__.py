"""Data nodes: index builds and compactions as pure functions run as Dask tasks
(DESIGN §1, §6). :mod:`gpuvec.pipelines` holds the task bodies,
:mod:`gpuvec.datanode.runtime` the Dask cluster they run on."""
