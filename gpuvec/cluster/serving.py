"""What a streaming or query node answers for one read: searches and row matches over the
segments it holds, returned as one Arrow table so the proxy can merge any number of nodes.

Search replies have one row per hit: ``_q`` (query number), ``_d`` (distance), ``_seg``
(segment id), the primary key and the requested output columns, best first per query and
segment group. ``per_segment=True`` (streaming nodes) keeps each segment's own top-k so
the proxy can drop segments a query node served; otherwise the node reduces its segments
to one top-k. Match replies have ``_seg``, the primary key and the requested columns.
Filters arrive as text + params and are compiled here, under the same cache key on every
node, so masks are cached per node as in the embedded runtime.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa

from gpuvec.proxy.fetch import fetch_rows
from gpuvec.proxy.filters import CompiledFilter, FilterCompiler
from gpuvec.proxy.reduce import reduce_hits
from gpuvec.query.fanout import map_segments
from gpuvec.query.segdata import SegmentData, visible_matches, visible_rows_of
from gpuvec.records import CollectionMeta, Hits

_COMPILER = FilterCompiler()


def stale(meta: CollectionMeta, args: dict[str, Any]) -> bool:
    """Whether a node's record of a collection predates a field the proxy already knows
    (``args["nfields"]``: fields only grow): the node re-reads it before compiling the
    filter, or a field added a moment ago would compile as a dynamic key."""
    return int(args.get("nfields", 0)) > len(meta.schema.get("fields", []))


def compile_filter(meta: CollectionMeta, args: dict[str, Any]) -> CompiledFilter | None:
    return _COMPILER.compile(
        meta.id, meta.collection_schema(), args.get("filter"), args.get("filter_params")
    )


def _hit_table(
    meta: CollectionMeta,
    segs: list[SegmentData],
    hits: list[tuple[np.ndarray, np.ndarray, np.ndarray]],
    columns: list[str],
) -> pa.Table:
    """Rows of (dist [nq,k], seg index [nq,k], row [nq,k]) triples, flattened."""
    schema = meta.collection_schema()
    pk = schema.primary_field.name  # type: ignore[union-attr]
    cols = tuple(dict.fromkeys((pk, *columns)))
    qs, ds, si, rs = [], [], [], []
    for dist, seg, row in hits:
        flat = seg >= 0
        q = np.broadcast_to(np.arange(dist.shape[0])[:, None], dist.shape)
        qs.append(q[flat])
        ds.append(dist[flat])
        si.append(seg[flat])
        rs.append(row[flat])
    q_all = np.concatenate(qs) if qs else np.zeros(0, np.int64)
    s_all = np.concatenate(si) if si else np.zeros(0, np.int64)
    r_all = np.concatenate(rs) if rs else np.zeros(0, np.int64)
    d_all = np.concatenate(ds) if ds else np.zeros(0, np.float32)
    table = fetch_rows(schema, segs, s_all, r_all, cols)
    ids = np.array([s.segment_id for s in segs], np.int64)
    seg_ids = ids[s_all] if len(s_all) else np.zeros(0, np.int64)
    table = table.add_column(0, "_seg", pa.array(seg_ids, pa.int64()))
    table = table.add_column(0, "_d", pa.array(np.asarray(d_all, np.float32)))
    return table.add_column(0, "_q", pa.array(np.asarray(q_all, np.int32)))


def search_table(
    meta: CollectionMeta,
    segs: list[SegmentData],
    args: dict[str, Any],
    queries: np.ndarray,
    read_ts: int,
    per_segment: bool,
) -> pa.Table:
    """Search ``segs`` (see the module docstring for the reply's shape)."""
    flt = compile_filter(meta, args)
    field, k, metric = args["field"], int(args["k"]), args["metric"]
    knobs = args.get("params") or {}
    key = None if flt is None else flt.key
    masks = [None if flt is None else s.filter_mask(flt.filter, flt.key) for s in segs]
    parts: list[Hits] = map_segments(
        lambda i: segs[i].search(field, queries, k, metric, read_ts, masks[i], knobs, key),
        len(segs), lambda i: segs[i].search_work(field, len(queries)), len(queries),
    )  # fmt: skip
    columns = list(args.get("columns") or [])
    if not parts:
        return _hit_table(meta, [], [], columns)
    if per_segment:
        triples = []
        for i, h in enumerate(parts):
            rows = np.asarray(h.rows, np.int64)
            seg = np.where(rows >= 0, i, -1)
            triples.append((np.asarray(h.distances, np.float32), seg, rows))
        return _hit_table(meta, segs, triples, columns)
    return _hit_table(meta, segs, [reduce_hits(parts, k, metric)], columns)


def match_table(
    meta: CollectionMeta,
    segs: list[SegmentData],
    args: dict[str, Any],
    read_ts: int,
) -> pa.Table:
    """Rows visible at ``read_ts`` matching the filter, or with the given primary keys."""
    schema = meta.collection_schema()
    pk = schema.primary_field.name  # type: ignore[union-attr]
    cols = tuple(dict.fromkeys((pk, *(args.get("columns") or []))))
    pks = args.get("pks")
    flt = None if pks is not None else compile_filter(meta, args)
    if pks is not None:
        keys = np.array(pks, object if segs and not segs[0].pk_is_int else np.int64)
        found = visible_rows_of(segs, keys, read_ts)
    elif flt is not None:
        found = visible_matches(segs, flt.filter, flt.key, read_ts)
    else:
        found = visible_matches(segs, None, None, read_ts)
    held = [s for s, _ in found]
    if found:
        seg_idx = np.concatenate([np.full(len(r), i) for i, (_, r) in enumerate(found)])
        rows = np.concatenate([r for _, r in found])
    else:
        seg_idx = rows = np.zeros(0, np.int64)
    table = fetch_rows(schema, held, seg_idx, rows, cols)
    ids = np.array([s.segment_id for s in held], np.int64)
    seg_ids = ids[seg_idx] if len(seg_idx) else np.zeros(0, np.int64)
    return table.add_column(0, "_seg", pa.array(seg_ids, pa.int64()))


def bm25_stats_table(segs: list[SegmentData], args: dict[str, Any], dims: np.ndarray) -> pa.Table:
    """Each segment's part of BM25's statistics (:meth:`SegmentData.bm25_stats`) over the
    query terms ``dims``: a row per segment (``docs``, ``total``, ``df`` per term)."""
    parts = [s.bm25_stats(args["field"], dims, int(args["read_ts"])) for s in segs]
    return pa.table({
        "docs": pa.array([p[0] for p in parts], pa.int64()),
        "total": pa.array([p[1] for p in parts], pa.float64()),
        "df": pa.array([p[2].tolist() for p in parts], pa.list_(pa.int64())),
    })  # fmt: skip


def stats_parts(tables: list[pa.Table], ndims: int) -> list[tuple[int, float, np.ndarray]]:
    """The statistics rows of the nodes' replies, as :func:`gpuvec.text.bm25.merge_stats`
    takes them."""
    out = []
    for t in tables:
        for docs, total, df in zip(t.column("docs").to_pylist(), t.column("total").to_pylist(),
                                   t.column("df").to_pylist(), strict=True):  # fmt: skip
            out.append((int(docs), float(total), np.asarray(df, np.int64).reshape(ndims)))
    return out
