"""Observability: Prometheus metrics (:mod:`.metrics`), the live-engine registry the
dashboard pages read (:mod:`.registry`), and the gpuvec pages on the Dask dashboard."""
