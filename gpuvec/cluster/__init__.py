"""The cluster layout: each role as its own process (coordinator, streaming node, query
node, proxy), their Arrow Flight RPC, discovery and assignment through etcd, settings and
the local launcher (``gpuvec cluster up``). The embedded layout is :mod:`gpuvec.runtime`."""
