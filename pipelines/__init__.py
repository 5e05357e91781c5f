"""Dask job definitions — bulk import, offline index build, compaction — installed as
``gpuvec.pipelines`` (DESIGN §6). Jobs arrive with the index issue."""
