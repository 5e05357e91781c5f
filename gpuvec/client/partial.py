"""Upsert in merge mode (Milvus 2.6's ``upsert(..., partial_update=True)``): the rows of
an upsert carry the primary key and only the fields to change.

Each row whose key exists is merged over the stored entity — its fields, its vectors and
its dynamic keys (a dynamic key the row names is replaced or added, the others kept) —
and the merged rows are upserted as whole rows, so the rules, messages and atomicity are
those of a plain upsert. A row whose key does not exist is inserted as given: it must
carry every field a new row needs, or the upsert fails naming the missing field, and
nothing is written. The read is a strong-consistency ``get``, as Milvus's merge reads
the entity before it writes; concurrent writers of the same key race as they do in Milvus.
"""

from __future__ import annotations

from typing import Any

from gpuvec.errors import DataError
from gpuvec.schema import CollectionSchema

__all__ = ["as_rows", "merge_rows"]


def as_rows(schema: CollectionSchema, data: Any) -> list[dict[str, Any]]:
    """Row dicts of upsert ``data``: rows as given, column data (a dict of arrays, a
    DataFrame, an Arrow table) row by row."""
    from gpuvec.columns import is_column_data

    if isinstance(data, dict) and not is_column_data(schema, data):
        return [data]
    if not is_column_data(schema, data):
        return list(data)
    if hasattr(data, "to_pylist"):  # an Arrow table
        return list(data.to_pylist())
    if hasattr(data, "to_dict"):  # a DataFrame
        return list(data.to_dict("records"))
    names = list(data)
    columns = [list(data[k]) for k in names]
    return [dict(zip(names, vals, strict=True)) for vals in zip(*columns, strict=True)]


def _stored(schema: CollectionSchema, entity: dict[str, Any]) -> dict[str, Any]:
    """A ``get`` result as an upsert row: byte vectors come back as ``[bytes]`` (pymilvus's
    shape), which a row gives as the bytes themselves; a function's output is left out
    (the upsert computes it again from the merged input)."""
    out = {k: v for k, v in entity.items() if k not in schema.function_outputs()}
    for field in schema.fields:
        value = out.get(field.name)
        if field.is_vector and isinstance(value, list) and len(value) == 1 and isinstance(
            value[0], bytes | bytearray):  # fmt: skip
            out[field.name] = bytes(value[0])
    return out


def merge_rows(client: Any, collection_name: str, schema: CollectionSchema,
               data: Any) -> list[dict[str, Any]]:  # fmt: skip
    """The whole rows to upsert for partial ``data`` (module docstring)."""
    rows = as_rows(schema, data)
    pk = schema.primary_field.name  # type: ignore[union-attr]
    for i, row in enumerate(rows):
        if not isinstance(row, dict):
            raise DataError(f"upsert with partial_update: row {i} is not a dict ({row!r:.80})")
        if pk not in row or row[pk] is None:
            raise DataError(
                f"upsert with partial_update: row {i} has no value for the primary key "
                f"field {pk!r}; a partial update names the entity it changes"
            )
    keys = list(dict.fromkeys(row[pk] for row in rows))
    found = client.get(collection_name, ids=keys, output_fields=["*"]) if keys else []
    stored = {e[pk]: _stored(schema, e) for e in found}
    merged = []
    for row in rows:
        old = stored.get(row[pk])
        merged.append(row if old is None else {**old, **row})
    return merged
