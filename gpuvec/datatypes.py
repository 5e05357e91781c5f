"""Milvus's field data types (``DataType``, numbered exactly as on the wire) and the type
groups the schema rules and row conversion share."""

from __future__ import annotations

from enum import IntEnum
from typing import Any

from gpuvec.errors import SchemaError


class DataType(IntEnum):
    """Field data types, numbered exactly as Milvus numbers them."""

    NONE = 0
    BOOL = 1
    INT8 = 2
    INT16 = 3
    INT32 = 4
    INT64 = 5
    FLOAT = 10
    DOUBLE = 11
    STRING = 20
    VARCHAR = 21
    ARRAY = 22
    JSON = 23
    GEOMETRY = 24
    TEXT = 25
    TIMESTAMPTZ = 26
    BINARY_VECTOR = 100
    FLOAT_VECTOR = 101
    FLOAT16_VECTOR = 102
    BFLOAT16_VECTOR = 103
    SPARSE_FLOAT_VECTOR = 104
    INT8_VECTOR = 105
    STRUCT = 201
    UNKNOWN = 999

    @property
    def is_vector(self) -> bool:
        return 100 <= self.value < 200

    @classmethod
    def parse(cls, value: Any) -> DataType:
        """Accept a DataType, pymilvus's DataType, its int value or its name."""
        try:
            if isinstance(value, str):
                return cls[value.strip().upper()]
            if not isinstance(value, bool):
                return cls(int(value))
        except (KeyError, TypeError, ValueError):
            pass
        raise SchemaError(f"unknown data type {value!r}")


INT_TYPES = (DataType.INT8, DataType.INT16, DataType.INT32, DataType.INT64)
INT_RANGES = {
    t: (-(2 ** (b - 1)), 2 ** (b - 1) - 1) for t, b in zip(INT_TYPES, (8, 16, 32, 64), strict=True)
}
FLOAT_TYPES = (DataType.FLOAT, DataType.DOUBLE)
SCALAR_TYPES = (DataType.BOOL, *INT_TYPES, *FLOAT_TYPES, DataType.VARCHAR)  # also: ARRAY elements
