"""gpuvec's dataflow half: every job body that runs on the Dask data nodes, installed as
``gpuvec.pipelines`` (DESIGN §6). Each is a pure function of its arguments over object
storage, safe to retry, that never touches meta storage (the coordinator commits results
in guarded transactions):

* :mod:`.build` — build one sealed segment's index (``gpuvec-build-index-…``);
* :mod:`.compact` — merge sealed segments, dropping old deletes (``gpuvec-compact-…``);
* :mod:`.importing` — one chunk of a bulk import → sealed segments (``gpuvec-import-…``),
  reading its sources with :mod:`.sources` (Parquet, ``.npy`` groups, JSON; local or S3);
* :mod:`.artifact` — one piece of a standalone index artifact (``gpuvec-artifact-…``), and
  how an import adopts pieces; :mod:`.infer` reads a schema off files' columns;
* :mod:`.common` — the object-store handle workers open, the progress events tasks send,
  and the vector fingerprint artifacts are matched by.

The coordinator's side (what to run, when, and the commits) is :mod:`gpuvec.coord`.
"""
