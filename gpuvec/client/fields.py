"""The field part of ``MilvusClient`` (pymilvus names and behaviour):
``add_collection_field`` (a nullable scalar field added to a live collection) and
``alter_collection_field`` (a field's ``max_length``, ``max_capacity`` or ``mmap.enabled``,
as Milvus 2.6 lets them change). A part (base class) of :class:`gpuvec.MilvusClient`
over its ``_engine``, ``_db`` and ``_names``; the new schema is one meta update, which
every runtime's readers and writers pick up (in a cluster the proxies' watched cache).
"""

from __future__ import annotations

from typing import Any

from gpuvec.datatypes import DataType
from gpuvec.errors import InvalidArgumentError, NotSupportedYetError
from gpuvec.proxy.names import NameResolver
from gpuvec.runtime.base import Runtime
from gpuvec.schema import MAX_ARRAY_CAPACITY, MAX_VARCHAR_LENGTH

__all__ = ["FieldMethods"]

_MMAP = ("mmap.enabled", "mmap_enabled")  # Milvus's key and pymilvus's spelling


class FieldMethods:
    _engine: Runtime
    _db: str
    _names: NameResolver

    def add_collection_field(
        self,
        collection_name: str,
        field_name: str,
        data_type: Any,
        desc: str = "",
        timeout: float | None = None,
        **kwargs: Any,
    ) -> None:
        """Add a scalar field to an existing collection, as Milvus 2.6 does: it must be
        nullable (rows written before read it as null); not a vector, primary or partition
        key field. A ``default_value`` is refused: rows written before the field existed
        would read null, not the default, and gpuvec does not serve that half-way."""
        from gpuvec.schema import CollectionSchema, FieldSchema

        name = self._names.resolve(self._db, collection_name)
        meta = self._engine.get(name).meta
        if kwargs.get("default_value") is not None:
            raise NotSupportedYetError(
                f"add_collection_field {field_name!r}: default_value is not supported yet "
                "(add the field without one: earlier rows read it as null)"
            )
        field = FieldSchema(field_name, data_type, description=desc, **kwargs)
        if field.is_vector:
            raise InvalidArgumentError(
                f"add_collection_field {field_name!r}: adding a vector field to an existing "
                "collection is not supported"
            )
        if field.is_primary or field.is_partition_key or field.auto_id:
            raise InvalidArgumentError(
                f"add_collection_field {field_name!r}: a primary key, partition key or "
                "auto_id field cannot be added to an existing collection"
            )
        if not field.nullable:
            raise InvalidArgumentError(
                f"added field must be nullable, please check it, field name = {field_name}"
            )
        schema = CollectionSchema.from_dict(meta.schema)
        if any(f.name == field_name for f in schema.fields):
            raise InvalidArgumentError(f"duplicate field name: {field_name}")
        schema.add_field(field_name, field.dtype, description=desc, **kwargs)
        new = schema.to_dict()
        CollectionSchema.from_dict(new)  # the whole schema still validates

        def add(m: Any) -> None:
            if any(f["name"] == field_name for f in m.schema.get("fields", [])):
                raise InvalidArgumentError(f"duplicate field name: {field_name}")
            m.schema = new

        self._engine.update_meta(name, add)

    def alter_collection_field(
        self,
        collection_name: str,
        field_name: str,
        field_params: dict[str, Any],
        timeout: float | None = None,
        **kwargs: Any,
    ) -> None:
        """Change a field's ``max_length`` (VARCHAR, or an ARRAY of VARCHAR; 1..65535),
        ``max_capacity`` (ARRAY; 1..4096) or ``mmap.enabled`` (any field; shown by
        ``describe_collection``), as Milvus does; the primary key and the partition key
        cannot be altered. Rows are checked against the new limits from the next write."""
        from gpuvec.schema import CollectionSchema

        name = self._names.resolve(self._db, collection_name)
        schema = CollectionSchema.from_dict(self._engine.get(name).meta.schema)
        field = schema.field(field_name)
        if not isinstance(field_params, dict) or not field_params:
            raise InvalidArgumentError("field_params must be a non-empty dict")
        if field.is_primary or field.is_partition_key:
            what = "primary key" if field.is_primary else "partition key"
            raise InvalidArgumentError(f"cannot alter the {what} field {field_name!r}")
        changes = {k: _field_value(field, k, v) for k, v in field_params.items()}
        new = schema.to_dict()
        for raw in new["fields"]:
            if raw["name"] == field_name:
                params = raw.setdefault("params", {})
                params.update({("mmap.enabled" if k in _MMAP else k): v
                               for k, v in changes.items()})  # fmt: skip
        CollectionSchema.from_dict(new).validate()  # the whole schema still validates

        def alter(m: Any) -> None:
            m.schema = new

        self._engine.update_meta(name, alter)


def _field_value(field: Any, key: str, value: Any) -> Any:
    """One altered property's checked value, or InvalidArgumentError naming it."""
    def whole(lo: int, hi: int) -> int:
        ok = isinstance(value, int | str) and not isinstance(value, bool)
        if ok and str(value).strip().isdigit() and lo <= int(value) <= hi:
            return int(value)
        raise InvalidArgumentError(
            f"alter field {field.name!r}: {key} = {value!r} is invalid; allowed: [{lo}, {hi}]"
        )

    strings = DataType.VARCHAR in (field.dtype, field.element_type)
    if key == "max_length" and strings:
        return whole(1, MAX_VARCHAR_LENGTH)
    if key == "max_capacity" and field.dtype == DataType.ARRAY:
        return whole(1, MAX_ARRAY_CAPACITY)
    if key in _MMAP:
        text = str(value).strip().lower()
        if text not in ("true", "false"):
            raise InvalidArgumentError(
                f"alter field {field.name!r}: {key} = {value!r} must be true or false"
            )
        return text == "true"
    if key in ("max_length", "max_capacity"):
        raise InvalidArgumentError(
            f"alter field {field.name!r}: {key} does not apply to a {field.dtype.name} field"
        )
    raise InvalidArgumentError(
        f"alter field {field.name!r}: {key} cannot be altered (max_length, max_capacity, "
        "mmap.enabled can)"
    )
