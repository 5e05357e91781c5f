"""JSON import sources: Milvus's row-based document ``{"rows": [{...}, ...]}`` (a bare
list of row objects is accepted too), and JSON lines — ``.jsonl``, or a ``.json`` file
holding one object per line — as pymilvus's ``LocalBulkWriter`` writes them, a row's
dynamic keys either inline or under ``$meta``.

A document is one chunk (it has to be parsed whole); JSON lines split by lines. Planning
parses a document and checks every row's keys (unknown keys without the dynamic field,
the auto_id primary key, missing required fields), naming the file and row; for JSON lines
it counts the lines and checks the first one. A chunk comes back as columns (lists of
Python values; ``$meta`` as one dict per row) for :func:`gpuvec.columns.columns_to_table`.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from gpuvec.pipelines.sources_io import Location

from gpuvec.columns import check_columns
from gpuvec.errors import DataError
from gpuvec.rows_json import load_json
from gpuvec.schema import DYNAMIC_FIELD_NAME, CollectionSchema

_LINE_MAX = 64 << 20  # bytes of one JSON line (one row)


def plan_json(
    schema: CollectionSchema, loc: Location, chunk_rows: int
) -> tuple[str, list[tuple[int, int]], float]:
    """(kind ``"json"`` or ``"jsonl"``, row ranges, bytes per row) of one file."""
    if loc.basename.endswith(".jsonl") or _is_lines(loc):
        n = 0
        for i, line in _lines(loc):
            if i == 0:
                _check_row(schema, load_json(line, f"{loc.name} row 0", max_bytes=_LINE_MAX),
                           loc.name, 0)  # fmt: skip
            n = i + 1
        ranges = [(a, min(n, a + chunk_rows)) for a in range(0, n, chunk_rows)]
        return "jsonl", ranges, loc.size() / max(1, n)
    rows = _document_rows(loc)
    for i, row in enumerate(rows):
        _check_row(schema, row, loc.name, i)
    return "json", [(0, len(rows))] if rows else [], loc.size() / max(1, len(rows))


def _is_lines(loc: Location) -> bool:
    """Does a ``.json`` file hold one object per line (rather than one document)? Its
    first non-blank line is a whole object (not ``{"rows": ...}``) and another follows."""
    with loc.open() as f:
        lines = (line.strip() for line in f)
        first = next((x for x in lines if x), b"")
        if not first.startswith(b"{"):
            return False
        text = first.decode("utf-8", "replace")
        try:
            obj, end = json.JSONDecoder().raw_decode(text)
        except json.JSONDecodeError:
            return False  # the start of a document spread over lines
        if end != len(text) or (isinstance(obj, dict) and "rows" in obj):
            return False
        return next((x for x in lines if x), b"").startswith(b"{")


def _document_rows(loc: Location) -> list[Any]:
    data = loc.read_bytes()
    doc = load_json(data, loc.name, max_bytes=max(1, len(data)))
    rows = doc.get("rows") if isinstance(doc, dict) else doc
    if not isinstance(rows, list):
        raise DataError(
            f'{loc.name}: expected a JSON document {{"rows": [{{...}}, ...]}}, a list of row '
            "objects, or one row object per line"
        )
    return rows


def _lines(loc: Location) -> Iterator[tuple[int, bytes]]:
    """(row number, text) of every non-blank line."""
    i = 0
    with loc.open() as f:
        for line in f:
            if line.strip():
                yield i, line
                i += 1


def _check_row(schema: CollectionSchema, row: Any, name: str, i: int) -> None:
    if not isinstance(row, dict):
        raise DataError(f"{name} row {i}: expected a JSON object, got {type(row).__name__}")
    check_columns(schema, row, f"{name} row {i}")


def read_json(
    kind: str, loc: Location, schema: CollectionSchema, start: int, stop: int
) -> dict[str, list[Any]]:
    """Rows ``[start, stop)`` of a JSON or JSON-lines file, as columns."""
    if kind == "json":
        rows = _document_rows(loc)[start:stop]
    else:
        rows = []
        for i, line in _lines(loc):
            if i >= stop:
                break
            if i >= start:
                rows.append(load_json(line, f"{loc.name} row {i}", max_bytes=_LINE_MAX))
    if len(rows) != stop - start:
        raise DataError(f"{loc.name}: has fewer rows than the {stop} planned (it changed)")
    return rows_to_columns(schema, rows, loc.name, start)


def rows_to_columns(
    schema: CollectionSchema, rows: list[Any], name: str, start: int
) -> dict[str, list[Any]]:
    """Row objects → columns: one list per field any row carries (None where a row lacks
    it), and with the dynamic field ``$meta``: per row, its ``$meta`` object merged with
    its keys that are not fields."""
    fields = set(schema.field_names)
    present: dict[str, None] = {}
    metas: list[dict[str, Any]] = []
    for i, row in enumerate(rows):
        _check_row(schema, row, name, start + i)
        present.update((k, None) for k in row if k in fields)
        if schema.enable_dynamic_field:
            dyn = row.get(DYNAMIC_FIELD_NAME)
            if isinstance(dyn, str):
                dyn = load_json(dyn, f"{name} row {start + i}, dynamic fields")
            if dyn is not None and not isinstance(dyn, dict):
                raise DataError(f"{name} row {start + i}, dynamic fields: "
                                f"{DYNAMIC_FIELD_NAME} must be a JSON object")  # fmt: skip
            extra = {k: v for k, v in row.items() if k not in fields and k != DYNAMIC_FIELD_NAME}
            metas.append({**(dyn or {}), **extra})
    cols: dict[str, list[Any]] = {k: [row.get(k) for row in rows] for k in present}
    if schema.enable_dynamic_field:
        cols[DYNAMIC_FIELD_NAME] = metas
    return cols
