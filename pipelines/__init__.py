"""gpuvec's dataflow half: every job body that runs on the Dask data nodes, installed as
``gpuvec.pipelines`` (DESIGN §6). Each is a pure function of its arguments over object
storage, safe to retry, that never touches meta storage (the coordinator commits results
in guarded transactions):

* :mod:`.build` — build one sealed segment's index (``gpuvec-build-index-…``);
* :mod:`.compact` — merge sealed segments, dropping old deletes (``gpuvec-compact-…``);
* :mod:`.common` — the object-store handle workers open and the progress events tasks send.

The coordinator's side (what to run, when, and the commits) is :mod:`gpuvec.coord`.
"""
