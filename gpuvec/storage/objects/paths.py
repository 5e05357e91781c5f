"""Every object path gpuvec writes in object storage (a local Zarr directory or S3), in one
place, relative to the store's root::

    collections/<cid>/segments/<sid>/v1/                       a sealed segment (Zarr group)
    collections/<cid>/segments/<sid>/v1/index/<index id>/<field>.gpuvecix
                                                               a built index of one field
    collections/<cid>/deltas/<channel>/<position>.parquet      a delta log (pk, ts)
    imports/<job id>/rejected-<chunk>.jsonl                    rows an import rejected
    imports/<job id>/cancelled                                 the import failed: skip work

A segment written by a seal and one written by a compaction share the layout (a new segment
id each). Paths are deterministic, so a retried task overwrites the same objects.
"""

from __future__ import annotations

SEGMENT_VERSION = 1


def collection_prefix(collection_id: int) -> str:
    return f"collections/{collection_id}/"


def segment_path(collection_id: int, segment_id: int) -> str:
    return f"collections/{collection_id}/segments/{segment_id}/v{SEGMENT_VERSION}"


def segment_root(path: str) -> str:
    """The directory of every version of the segment at ``path`` (what garbage collection
    removes: Zarr keeps a group record at each level, so removing ``v1`` alone would leave
    ``segments/<sid>/zarr.json`` behind)."""
    return path.rstrip("/").rsplit("/", 1)[0]


def index_path(segment_path: str, index_id: int | str, field: str) -> str:
    return f"{segment_path}/index/{index_id}/{field}.gpuvecix"


def delta_path(collection_id: int, channel: str, checkpoint: int) -> str:
    return f"collections/{collection_id}/deltas/{channel}/{checkpoint:020d}.parquet"


def import_cancelled_path(job_id: int) -> str:
    """Marks a failed import: its chunk tasks that have not started skip their work."""
    return f"imports/{job_id}/cancelled"


def rejected_rows_path(job_id: int, chunk: int) -> str:
    return f"imports/{job_id}/rejected-{chunk:06d}.jsonl"
