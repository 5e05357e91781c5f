"""Offline Dask pipelines (bulk import, offline index build), installed as
``gpuvec.pipelines`` (DESIGN §6). Not written yet: this package is empty. The data-node
tasks that exist today (index build, compaction rewrite) are in
:mod:`gpuvec.datanode.tasks`, scheduled by :mod:`gpuvec.coord.maintenance`."""
