"""``gpuvec import`` and ``gpuvec build-index``: the offline jobs from the command line, on
an embedded data directory, with a live progress bar and a final summary.

* ``gpuvec import --data DIR --collection C FILE...`` bulk-imports Parquet / NumPy / JSON
  files (:mod:`gpuvec.client.imports`); ``--create`` first creates the collection from
  the first file's columns (the ``--pk`` column, or an ``auto_id`` key when it is absent;
  every fixed-length float list / 2-D ``.npy`` as a vector field with an AUTOINDEX).
* ``gpuvec build-index --data DIR --collection C`` builds (or with ``--index-type``,
  ``--rebuild``, rebuilds) a collection's indexes and waits for every segment. Builds are
  committed per segment: an interrupted run resumes where it stopped.
* ``gpuvec build-index --source FILE... --out DIR`` builds the standalone index artifact of
  files (:mod:`gpuvec.pipelines.artifact`), piece by piece (resumable); ``gpuvec import
  --index-artifact DIR`` of the same files adopts it instead of building.

Both run their Dask tasks on ``--scheduler tcp://…`` when given (any ``dask scheduler`` with
workers that can read the data directory), else on an in-process cluster.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any


def add_parsers(sub: Any) -> None:
    imp = sub.add_parser("import", help="bulk-import Parquet / NumPy / JSON files")
    imp.add_argument("files", nargs="+", help="files or directories (s3:// URIs too)")
    imp.add_argument("--data", required=True, help="data directory (created if missing)")
    imp.add_argument("--collection", required=True, help="collection to import into")
    imp.add_argument("--partition", default=None, help="partition (default _default)")
    imp.add_argument(
        "--create",
        action="store_true",
        help="create the collection from the first file's columns if missing",
    )
    imp.add_argument("--pk", default="id", help="--create: the primary-key column (default id)")
    imp.add_argument("--metric", default="COSINE", help="--create: the vectors' metric")
    imp.add_argument(
        "--key", default=None, help="idempotency key: the same key never imports twice"
    )
    imp.add_argument(
        "--skip-bad-rows",
        action="store_true",
        help="import the valid rows; rejected ones go to imports/<job>/ in the "
        "object store (default: the first bad row fails the job)",
    )
    imp.add_argument(
        "--index-artifact",
        default=None,
        help="a directory 'gpuvec build-index --source' built from the same files: its "
        "indexes are adopted instead of built",
    )
    imp.add_argument("--scheduler", default="", help="a Dask scheduler (tcp://host:8786)")
    idx = sub.add_parser(
        "build-index",
        help="build or rebuild a collection's indexes, or (--source/--out) the index "
        "artifact of files",
    )
    idx.add_argument("--data", default="", help="data directory")
    idx.add_argument("--collection", default="", help="collection")
    idx.add_argument(
        "--source",
        nargs="+",
        default=None,
        help="Parquet / .npy files to build a standalone index artifact of (with --out)",
    )
    idx.add_argument("--out", default="", help="--source: the artifact directory to write")
    idx.add_argument("--pk", default="id", help="--source: the primary-key column (default id)")
    idx.add_argument(
        "--chunk-rows",
        type=int,
        default=0,
        help="--source: rows per piece (default: Config's import_chunk_rows, which the "
        "importing runtime must use too)",
    )
    idx.add_argument("--field", default="", help="vector field (default: the first one)")
    idx.add_argument(
        "--index-type",
        default="",
        help="index type (default: the existing definition, else AUTOINDEX)",
    )
    idx.add_argument("--metric", default="", help="metric (default: the existing one)")
    idx.add_argument("--params", default="{}", help='build parameters as JSON, e.g. {"M": 16}')
    idx.add_argument(
        "--rebuild", action="store_true", help="replace an existing, different index definition"
    )
    idx.add_argument("--scheduler", default="", help="a Dask scheduler (tcp://host:8786)")


def _client(data: str, scheduler: str) -> Any:
    from gpuvec import MilvusClient
    from gpuvec.config import Config

    opts = {"scheduler_address": scheduler} if scheduler else {}
    return MilvusClient(data, config=Config.load(**opts))


def _infer_schema(client: Any, first: str, pk: str, metric: str) -> tuple[Any, Any]:
    """A schema from the first file's columns and AUTOINDEX params for its vectors."""
    from gpuvec.datatypes import DataType
    from gpuvec.pipelines.infer import infer_schema, vector_fields

    schema = infer_schema(first, pk)
    index = client.prepare_index_params()
    for name in vector_fields(schema):
        binary = schema.field(name).dtype == DataType.BINARY_VECTOR
        fits = str(metric).upper() in ("HAMMING", "JACCARD")
        # a binary column gets its type's default (HAMMING) unless a binary metric is asked
        index.add_index(name, index_type="AUTOINDEX",
                        metric_type=metric if binary == fits else "")  # fmt: skip
    return schema, index


def run_import(args: argparse.Namespace) -> int:
    client = _client(args.data, args.scheduler)
    try:
        if not client.has_collection(args.collection):
            if not args.create:
                print(f"gpuvec import: no collection {args.collection!r} in {args.data} "
                      "(create it first, or pass --create)", file=sys.stderr)  # fmt: skip
                return 2
            schema, index = _infer_schema(client, args.files[0], args.pk, args.metric)
            client.create_collection(args.collection, schema=schema, index_params=index)
            print(f"created collection {args.collection!r}: "
                  + ", ".join(f"{f.name} {f.dtype.name}" for f in schema.fields))  # fmt: skip
        t0 = time.perf_counter()
        state = client.bulk_import(
            args.collection, args.files, args.partition, show_progress=True,
            idempotency_key=args.key, on_error="skip" if args.skip_bad_rows else "fail",
            index_artifact=args.index_artifact,
        )  # fmt: skip
        secs = time.perf_counter() - t0
        print(f"import job {state['job_id']}: {state['state']}, {state['row_count']:,} rows "
              f"in {secs:.1f} s ({state['row_count'] / max(secs, 1e-9):,.0f} rows/s), "
              f"{len(state['segments'])} segments"
              + (f", {state['adopted_indexes']} prebuilt indexes adopted"
                 if args.index_artifact else "")
              + (f", {state['rejected_rows']:,} rows rejected (imports/{state['job_id']}/ "
                 "in the object store)" if state["rejected_rows"] else ""))  # fmt: skip
        return 0
    except Exception as e:
        print(f"gpuvec import: {e}", file=sys.stderr)
        return 1
    finally:
        client.close()


def run_build_artifact(args: argparse.Namespace) -> int:
    """``gpuvec build-index --source FILE... --out DIR``: a standalone index artifact."""
    from tqdm import tqdm

    from gpuvec.config import Config
    from gpuvec.coord.artifacts import build_artifact

    if not args.out:
        print("gpuvec build-index: --source needs --out DIR", file=sys.stderr)
        return 2
    t0 = time.perf_counter()
    try:
        with tqdm(desc=f"build {args.index_type or 'AUTOINDEX'}", unit="row",
                  unit_scale=True) as bar:  # fmt: skip

            def show(done: int, total: int) -> None:
                bar.total, bar.n = total, done
                bar.refresh()

            manifest = build_artifact(
                args.source, args.out, field=args.field, pk=args.pk,
                index_type=args.index_type or "AUTOINDEX", metric=args.metric or "COSINE",
                params=json.loads(args.params),
                chunk_rows=args.chunk_rows or Config.load().import_chunk_rows,
                scheduler=args.scheduler, progress=show,
            )  # fmt: skip
    except Exception as e:
        print(f"gpuvec build-index: {e}", file=sys.stderr)
        return 1
    secs = time.perf_counter() - t0
    print(f"index artifact {args.out}: {manifest['index_type']} {manifest['metric_type']} on "
          f"{manifest['field']!r}, {manifest['rows']:,} rows in {len(manifest['pieces'])} "
          f"pieces, {secs:.1f} s; import the same files with --index-artifact {args.out} "
          "to adopt it")  # fmt: skip
    return 0


def run_build_index(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    if args.source:
        return run_build_artifact(args)
    if not args.data or not args.collection:
        print("gpuvec build-index: give --data and --collection (a collection's indexes) "
              "or --source and --out (an index artifact of files)", file=sys.stderr)  # fmt: skip
        return 2
    client = _client(args.data, args.scheduler)
    try:
        schema = client.describe_collection(args.collection)
        vectors = [f["name"] for f in schema["fields"] if "VECTOR" in str(f["type"]).upper()]
        field = args.field or vectors[0]
        current = next((client.describe_index(args.collection, n)
                        for n in client.list_indexes(args.collection, field)), None)  # fmt: skip
        itype = args.index_type or (current or {}).get("index_type") or "AUTOINDEX"
        metric = args.metric or (current or {}).get("metric_type") or "COSINE"
        params = json.loads(args.params)
        wanted = (itype, metric) if args.index_type else None
        if current and wanted and wanted != (current["index_type"], current["metric_type"]):
            if not args.rebuild:
                have = f"{current['index_type']} {current['metric_type']}"
                print(f"gpuvec build-index: field {field!r} has index {have}; pass --rebuild "
                      "to replace it", file=sys.stderr)  # fmt: skip
                return 2
            client.release_collection(args.collection)
            client.drop_index(args.collection, current["index_name"])
            current = None
        if current is None:
            idx = client.prepare_index_params()
            idx.add_index(field, index_type=itype, metric_type=metric, params=params)
            client.create_index(args.collection, idx, sync=False)
        name = client.list_indexes(args.collection, field)[0]
        t0 = time.perf_counter()
        with tqdm(desc=f"build {itype}", unit="row", unit_scale=True) as bar:
            while True:
                info = client.describe_index(args.collection, name)
                bar.total = info["total_rows"]
                bar.n = min(bar.total, info["indexed_rows"] + int(info.get("building_rows", 0)))
                bar.refresh()
                if info["state"] in ("Finished", "Failed"):
                    break
                time.sleep(0.5)
        if info["state"] == "Failed":
            print(f"gpuvec build-index: failed: {info['index_state_fail_reason']}",
                  file=sys.stderr)  # fmt: skip
            return 1
        client.load_collection(args.collection)
        client.wait_for_index(args.collection)
        info = client.describe_index(args.collection, name)
        print(f"index {name!r} ({info['index_type']}, {info['metric_type']}): "
              f"{info['indexed_rows']:,} rows in {info['indexed_segments']} segments, "
              f"{time.perf_counter() - t0:.1f} s, served by {info['backend']}")  # fmt: skip
        return 0
    except Exception as e:
        print(f"gpuvec build-index: {e}", file=sys.stderr)
        return 1
    finally:
        client.close()
