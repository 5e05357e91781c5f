"""Every object path gpuvec writes in object storage (a local Zarr directory or S3), in one
place, relative to the store's root::

    collections/<cid>/segments/<sid>/v1/                       a sealed segment (Zarr group)
    collections/<cid>/segments/<sid>/v1/index/<index id>/<field>.gpuvecix
                                                               a built index of one field
    collections/<cid>/deltas/<channel>/<position>.parquet      a delta log (pk, ts)

A segment written by a seal and one written by a compaction share the layout (a new segment
id each). Paths are deterministic, so a retried task overwrites the same objects.
"""

from __future__ import annotations

SEGMENT_VERSION = 1


def collection_prefix(collection_id: int) -> str:
    return f"collections/{collection_id}/"


def segment_path(collection_id: int, segment_id: int) -> str:
    return f"collections/{collection_id}/segments/{segment_id}/v{SEGMENT_VERSION}"


def index_path(segment_path: str, index_id: int | str, field: str) -> str:
    return f"{segment_path}/index/{index_id}/{field}.gpuvecix"


def delta_path(collection_id: int, channel: str, checkpoint: int) -> str:
    return f"collections/{collection_id}/deltas/{channel}/{checkpoint:020d}.parquet"
