"""The coordinator's decisions about data-node work, as pure functions: which index builds
a collection's sealed segments need, how far each index is built, and which segments a
compaction rewrites. No I/O, no clock, no Dask: the callers (:class:`~gpuvec.coord.indexing.
IndexBuilder`, :class:`~gpuvec.coord.compaction.Compactor`, the runtimes' ``describe_index``)
read the catalog, call these, and carry out the returned actions — as
:mod:`gpuvec.cluster.assign` does for channels and segments.

Rules (Milvus's, unless noted):

* a sealed segment needs a build of each index definition whose type builds anything
  (not FLAT / GPU_BRUTE_FORCE) once it has ``min_rows`` rows (gpuvec: smaller segments are
  searched exactly) and has no committed build of that definition;
* an index is ``Finished`` once no segment needs a build, ``Failed`` when a segment that
  needs one failed its last build (with that reason), else ``InProgress``;
* compaction, per partition and channel: merge two or more segments under ``small_rows``
  rows into one; rewrite a segment alone when more than ``deleted_ratio`` of its rows are
  deleted. Manual: merge every group of two or more, and rewrite a lone segment only past
  the same ``deleted_ratio`` (Milvus's single-segment threshold): a handful of deletes is
  not worth rebuilding a finished index for.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from gpuvec.records import NO_BUILD, SegmentMeta, index_id

BUILD_PREFIX = "gpuvec-build-index-"

# (segment id, field) → the committed build record of that segment's field
Built = Mapping[tuple[int, str], Mapping[str, Any]]


def build_key(segment_id: int, field: str, iid: str) -> str:
    """The Dask task key of one segment's build of one index definition."""
    return f"{BUILD_PREFIX}{segment_id}-{field}-{iid}"


@dataclass(frozen=True)
class BuildAction:
    """Build ``definition`` (id ``index_id``) of ``field`` for ``segment``."""

    key: str
    segment: SegmentMeta
    definition: dict[str, Any]
    index_id: str
    field: str


def _needs_build(segments: Iterable[SegmentMeta], built: Built, definition: dict[str, Any],
                 min_rows: int) -> list[SegmentMeta]:  # fmt: skip
    if definition.get("index_type") in NO_BUILD:
        return []
    iid, field = index_id(definition), definition["field_name"]
    return [
        s
        for s in segments
        if s.rows >= min_rows and built.get((s.id, field), {}).get("index_id") != iid
    ]


def plan_builds(
    index_params: list[dict[str, Any]],
    segments: list[SegmentMeta],
    built: Built,
    min_rows: int,
    skip: Callable[[str], bool] = lambda key: False,
) -> list[BuildAction]:
    """The builds to submit now: every segment that needs a build of a definition, minus
    those ``skip(key)`` holds back (in flight, or failed too recently to retry)."""
    out = []
    for d in index_params:
        iid, field = index_id(d), d["field_name"]
        for s in _needs_build(segments, built, d, min_rows):
            key = build_key(s.id, field, iid)
            if not skip(key):
                out.append(BuildAction(key, s, d, iid, field))
    out.sort(key=lambda a: (a.segment.id, a.field))
    return out


def index_progress(
    segments: list[SegmentMeta],
    built: Built,
    definition: dict[str, Any],
    min_rows: int,
    failure: Callable[[str], str | None] = lambda key: None,
) -> dict[str, Any]:
    """Milvus's build progress of one definition: ``total_rows`` (committed sealed
    segments), ``indexed_rows`` (with a committed build, or searched exactly by design),
    ``pending_index_rows``, ``state`` and, when ``Failed``, ``index_state_fail_reason``
    (``failure(key)`` says why a segment's last build failed, None if it did not)."""
    waiting = _needs_build(segments, built, definition, min_rows)
    total = sum(s.rows for s in segments)
    pending = sum(s.rows for s in waiting)
    iid, field = index_id(definition), definition["field_name"]
    reasons = [r for s in waiting if (r := failure(build_key(s.id, field, iid)))]
    out: dict[str, Any] = {
        "total_rows": total,
        "indexed_rows": total - pending,
        "pending_index_rows": pending,
        "state": "Failed" if reasons else "InProgress" if pending else "Finished",
    }
    if reasons:
        out["index_state_fail_reason"] = reasons[0]
    return out


def plan_compactions(
    segments: list[SegmentMeta],
    deleted: Callable[[SegmentMeta], float],
    small_rows: int,
    deleted_ratio: float,
    manual: bool = False,
) -> list[list[SegmentMeta]]:
    """The rewrites one compaction job runs: lists of segments, each merged into one new
    segment (``deleted(s)`` is the fraction of ``s``'s rows deleted)."""
    groups: dict[tuple[int, str], list[SegmentMeta]] = {}
    for sm in segments:
        groups.setdefault((sm.partition_id, sm.channel), []).append(sm)
    plans: list[list[SegmentMeta]] = []
    for segs in groups.values():
        if manual:
            if len(segs) >= 2 or deleted(segs[0]) > deleted_ratio:
                plans.append(segs)
            continue
        small = [s for s in segs if s.rows < small_rows]
        if len(small) >= 2:
            plans.append(small)
            segs = [s for s in segs if s not in small]
        plans += [[s] for s in segs if deleted(s) > deleted_ratio]
    return plans
