"""Observability: Prometheus metrics (:mod:`.metrics` for requests and writes,
:mod:`.internals` for index builds, compactions and WAL appends), the weak registry of live
engines (:mod:`.engines`) that the scrape-time collector (:mod:`.collector`) and the
dashboard pages read, the ``/metrics`` endpoint (:mod:`.exporter`), the data of Milvus's
``GetMetrics`` / ``GetComponentStates`` (:mod:`.system_info`), and the gpuvec pages on the
Dask dashboard."""
