"""Scalar indexes: INVERTED, STL_SORT, Trie, BITMAP and AUTOINDEX on scalar fields.

Owns the Milvus rules for which scalar index type fits which field (:func:`check_field`,
with Milvus's messages), the definitions' parameters (JSON path indexes:
``json_path`` + ``json_cast_type``), and :class:`ScalarIndex`, the structure every type is
served by: the segment's distinct values sorted (NaN, nulls and — for JSON — rows without
the path kept apart) with, for each, the rows holding it (CSR postings, rows increasing).
An equality or ``in`` is one posting list per value, a range one contiguous run of
postings found by binary search; the filter engine (:mod:`gpuvec.expr.evaluate`) asks it
through :meth:`ScalarIndex.lookup` and scans instead whenever it answers None: a literal of
another type, a float column holding NaN, an ARRAY field of floats (its index is built and
reported, filters over it scanned), or a predicate matching — and not matching — more than
:data:`DENSE` of the rows, where setting that many mask bits one by one costs more than
the scan (``bench/scalar_index.py``). Results are always the scan's. A JSON field's index
holds the values at its ``json_path`` of its ``json_cast_type``
(:mod:`gpuvec.index.scalar_json`) and answers comparisons of that path with a literal of
that type; an ARRAY field's index holds each element value's rows
(:mod:`gpuvec.index.scalar_array`) and answers ``array_contains`` / ``_any`` / ``_all``.

Built by the data-node task of :mod:`gpuvec.pipelines.build` per sealed segment, stored as
an index file (:func:`gpuvec.index.registry.dump`, ``impl: "scalar"``), attached to the
segment by the query node like a vector index.
"""

from __future__ import annotations

import io
import json
from typing import Any

import numpy as np
import pyarrow as pa

from gpuvec.errors import InvalidArgumentError
from gpuvec.index import scalar_array, scalar_json
from gpuvec.schema import DataType, FieldSchema

DENSE = 0.1  # an index answers when it scatters at most this share of the rows

__all__ = ["SCALAR_TYPES", "ScalarIndex", "canonical_type", "check_field", "is_scalar_type"]

SCALAR_TYPES = ("INVERTED", "STL_SORT", "Trie", "BITMAP")
_CANON = {t.upper(): t for t in SCALAR_TYPES}
JSON_CAST = {"INVERTED": ("BOOL", "DOUBLE", "VARCHAR"), "STL_SORT": ("DOUBLE", "VARCHAR"),
             "BITMAP": ("BOOL", "VARCHAR")}  # fmt: skip
_INTS = (DataType.INT8, DataType.INT16, DataType.INT32, DataType.INT64)
_NUMERIC = (*_INTS, DataType.FLOAT, DataType.DOUBLE)
# Milvus's names of the data types, as its errors print them
_MILVUS_NAMES = {
    DataType.BOOL: "Bool", DataType.INT8: "Int8", DataType.INT16: "Int16",
    DataType.INT32: "Int32", DataType.INT64: "Int64", DataType.FLOAT: "Float",
    DataType.DOUBLE: "Double", DataType.VARCHAR: "VarChar", DataType.JSON: "JSON",
    DataType.ARRAY: "Array", DataType.FLOAT_VECTOR: "FloatVector",
    DataType.FLOAT16_VECTOR: "Float16Vector", DataType.BFLOAT16_VECTOR: "BFloat16Vector",
    DataType.INT8_VECTOR: "Int8Vector", DataType.BINARY_VECTOR: "BinaryVector",
}  # fmt: skip


def canonical_type(index_type: str) -> str | None:
    """The scalar index type ``index_type`` names (any case), else None."""
    return _CANON.get(str(index_type).strip().upper())


def is_scalar_type(index_type: str) -> bool:
    return canonical_type(index_type) is not None


def milvus_name(dtype: DataType) -> str:
    return _MILVUS_NAMES.get(dtype, str(getattr(dtype, "name", dtype)))


def auto_type(field: FieldSchema) -> str:
    """What AUTOINDEX builds on a scalar field: BITMAP for BOOL, INVERTED otherwise."""
    return "BITMAP" if field.dtype == DataType.BOOL else "INVERTED"


def check_params(index_type: str, params: dict[str, Any]) -> dict[str, Any]:
    """The build params of a scalar index as stored: JSON path options only."""
    out = {}
    for key in ("json_path", "json_cast_type", "json_cast_function"):
        if key in params and params[key] not in (None, ""):
            out[key] = str(params[key])
    return out


def check_field(index_type: str, field: FieldSchema, params: dict[str, Any]) -> None:
    """Refuse a scalar index on a field it does not fit, as Milvus words it."""
    itype = canonical_type(index_type) or index_type
    dt = field.dtype
    if field.is_vector:
        raise InvalidArgumentError(
            f"index type {itype} is a scalar index: vector field {field.name!r} "
            f"({milvus_name(dt)}) needs a vector index type"
        )
    if itype == "BITMAP":
        if field.is_primary:
            raise InvalidArgumentError("create bitmap index on primary key not supported")
        if dt not in (DataType.BOOL, *_INTS, DataType.VARCHAR, DataType.ARRAY, DataType.JSON):
            raise InvalidArgumentError(
                "bitmap index are only supported on bool, int, string and array field"
            )
        elems = (DataType.BOOL, *_INTS, DataType.VARCHAR)
        if dt == DataType.ARRAY and field.element_type not in elems:
            raise InvalidArgumentError(
                "bitmap index are only supported on bool, int, string for array field"
            )
    elif itype == "STL_SORT":
        if dt not in (*_NUMERIC, DataType.VARCHAR, DataType.JSON):
            raise InvalidArgumentError(
                "STL_SORT are only supported on numeric, varchar, timestamptz, date or time "
                f"field, got {milvus_name(dt)}"
            )
    elif itype == "Trie":
        if dt != DataType.VARCHAR:
            raise InvalidArgumentError("TRIE are only supported on varchar field")
    elif itype == "INVERTED" and dt not in (
        DataType.BOOL, *_NUMERIC, DataType.VARCHAR, DataType.ARRAY, DataType.JSON
    ):  # fmt: skip
        raise InvalidArgumentError(f"INVERTED are not supported on {milvus_name(dt)} field")
    if dt == DataType.JSON:
        cast = params.get("json_cast_type")
        if not cast:
            raise InvalidArgumentError("json index must specify cast type: json_cast_type missing")
        allowed = JSON_CAST.get(itype, ())
        if str(cast).upper() not in allowed:
            suffix = "" if itype == "INVERTED" else f" for {itype} index"
            raise InvalidArgumentError(f"json_cast_type {cast} is not supported{suffix}")
        if not params.get("json_path"):
            raise InvalidArgumentError("json index must specify json path: json_path missing")
        scalar_json.parse_json_path(str(params["json_path"]), field.name)


class ScalarIndex:
    """Sorted distinct values + postings of one scalar column (module docstring)."""

    impl = "scalar"

    def __init__(
        self,
        index_type: str,
        field: str,
        values: np.ndarray,
        offsets: np.ndarray,
        rows: np.ndarray,
        null_rows: np.ndarray,
        n: int,
        *,
        kind: str,
        has_nan: bool = False,
        params: dict[str, Any] | None = None,
        big_ints: bool = False,
        value_kind: str | None = None,
    ) -> None:
        self.index_type, self.field, self.kind = index_type, field, kind
        self.values, self.offsets, self.rows = values, offsets, rows
        self.null_rows, self.ntotal, self.has_nan = null_rows, int(n), bool(has_nan)
        self.params = dict(params or {})
        self.big_ints = bool(big_ints)  # a JSON path index holding ints past 2**53
        self.dim = 0
        self.metric = ""
        # a JSON path index: the path it answers for and the kind of its values; None when
        # it answers no filter (no path, a cast function, an ARRAY field)
        self.path: tuple[str, ...] | None = None
        self.value_kind = value_kind or kind  # an ARRAY index: its elements' kind ("array": none)
        if kind == "json" and self.params.get("json_path") and self.params.get(
            "json_cast_type", "").upper() in ("DOUBLE", "VARCHAR", "BOOL") and not (
            self.params.get("json_cast_function")):  # fmt: skip
            self.path = scalar_json.parse_json_path(self.params["json_path"], field)
            self.value_kind = scalar_json.value_kind(self.params["json_cast_type"])

    # --- build -------------------------------------------------------------------------------
    @classmethod
    def build(
        cls, index_type: str, field: FieldSchema, column: pa.Array | pa.ChunkedArray,
        params: dict[str, Any] | None = None,
    ) -> ScalarIndex:  # fmt: skip
        """Index ``column`` (the segment's values of ``field``, one per row)."""
        itype = canonical_type(index_type) or index_type
        if isinstance(column, pa.ChunkedArray):
            column = column.combine_chunks() if column.num_chunks != 1 else column.chunk(0)
        n = len(column)
        kind = _kind(field)
        probe = cls(itype, field.name, np.empty(0), np.zeros(1, np.int64), np.empty(0, np.int64),
                    np.empty(0, np.int64), n, kind=kind, params=params)  # fmt: skip
        if probe.path is not None:  # a JSON path index
            vals, rows, nulls, big = scalar_json.path_values(
                column, probe.path, probe.params["json_cast_type"])
            order = np.argsort(vals, kind="stable")
            uniq, starts = np.unique(vals[order], return_index=True)
            offsets = np.append(starts, len(vals)).astype(np.int64)
            return cls(itype, field.name, uniq, offsets, rows[order], nulls, n, kind=kind,
                       params=params, big_ints=big)  # fmt: skip
        elem = scalar_array.element_kind(field.element_type) if kind == "array" else None
        if elem is not None:  # an ARRAY of ints, strings or booleans: element postings
            vals, offsets, rows, nulls = scalar_array.postings(column, elem)
            return cls(itype, field.name, vals, offsets, rows, nulls, n, kind=kind,
                       params=params, value_kind=elem)  # fmt: skip
        if kind in ("array", "json"):  # built and reported; filters over them are scanned
            vals = np.empty(0, np.int64)  # (an object array would not load back)
            return cls(itype, field.name, vals, np.zeros(1, np.int64), np.empty(0, np.int64),
                       np.empty(0, np.int64), n, kind=kind, params=params)  # fmt: skip
        valid = np.ones(n, bool)
        if column.null_count:
            valid = ~np.asarray(column.is_null().to_numpy(zero_copy_only=False), bool)
            fill = {"bool": False, "int": 0, "float": 0.0, "string": ""}[kind]
            column = column.fill_null(pa.scalar(fill, column.type))
        raw = column.to_numpy(zero_copy_only=False)
        if kind == "string":
            raw = np.asarray(raw, dtype=object).astype(str)
        keep = valid.copy()
        has_nan = kind == "float" and bool(np.isnan(raw[valid]).any())
        if has_nan:
            keep &= ~np.isnan(raw)
        rows_kept = np.flatnonzero(keep)
        vals = raw[rows_kept]
        order = np.argsort(vals, kind="stable")
        sorted_vals = vals[order]
        uniq, starts = np.unique(sorted_vals, return_index=True)
        offsets = np.append(starts, len(sorted_vals)).astype(np.int64)
        return cls(itype, field.name, uniq, offsets, rows_kept[order].astype(np.int64),
                   np.flatnonzero(~valid).astype(np.int64), n, kind=kind, has_nan=has_nan,
                   params=params)  # fmt: skip

    # --- lookups -----------------------------------------------------------------------------
    def _compatible(self, value: Any) -> bool:
        if self.kind == "json":
            return scalar_json.literal_fits(self.value_kind, value, self.big_ints)
        if self.kind == "bool":
            return isinstance(value, bool | np.bool_)
        if self.kind in ("int", "float"):
            return isinstance(value, int | float | np.integer | np.floating) and not isinstance(
                value, bool | np.bool_)  # fmt: skip
        if self.kind == "string":
            return isinstance(value, str)
        return False

    def _mark(self, spans: list[tuple[int, int]]) -> np.ndarray:
        mask = np.zeros(self.ntotal, bool)
        for a, b in spans:
            if b > a:
                mask[self.rows[self.offsets[a] : self.offsets[b]]] = True
        return mask

    def _answer(self, spans: list[tuple[int, int]]) -> tuple[np.ndarray, np.ndarray | None] | None:
        """The rows of the value ``spans`` as a mask: scattered directly when they are few,
        as the complement of the other values' rows when those are few, else None (a scan
        is cheaper than scattering more than :data:`DENSE` of the rows)."""
        hit = sum(int(self.offsets[b] - self.offsets[a]) for a, b in spans if b > a)
        if hit <= DENSE * self.ntotal:
            return self._mark(spans), self._valid()
        if self.kind == "json" or len(self.rows) - hit > DENSE * self.ntotal:
            return None  # (a JSON path index does not list the rows outside it)
        free = np.ones(len(self.values), np.int8)  # values outside the spans
        for a, b in spans:
            free[a:b] = 0
        d = np.diff(np.concatenate(([0], free, [0])))
        others = [(int(a), int(b)) for a, b in
                  zip(np.flatnonzero(d == 1), np.flatnonzero(d == -1), strict=True)]  # fmt: skip
        res = ~self._mark(others)
        res[self.null_rows] = False
        return res, self._valid()

    def _valid(self) -> np.ndarray | None:
        if not len(self.null_rows):
            return None
        valid = np.ones(self.ntotal, bool)
        valid[self.null_rows] = False
        return valid

    def lookup(
        self, op: str, value: Any = None, *, values: list[Any] | None = None,
        lo: Any = None, lo_incl: bool = True, hi: Any = None, hi_incl: bool = True,
        **kw: Any,
    ) -> tuple[np.ndarray, np.ndarray | None] | None:  # fmt: skip
        """``(res, valid)`` masks of a comparison (``==``, ``!=``, ``<``, ``<=``, ``>``,
        ``>=``), ``in`` (``values``) or ``range`` (``lo``/``hi`` bounds, either None) over
        the indexed rows, with the evaluator's null semantics (a null row: res False,
        valid False); None when the index cannot answer exactly (the caller scans). A JSON
        path index answers for its path only (the caller checks it) and, as the scan does,
        counts a row without the path or of another type as not equal to anything. An ARRAY
        index answers ``contains`` (``values``, ``mode`` one / any / all) only."""
        if self.kind == "array":
            if op != "contains" or self.value_kind == "array":
                return None
            mask = scalar_array.contains(self.values, self.offsets, self.rows, self.ntotal,
                                         str(kw.get("mode", "one")), tuple(values or ()),
                                         self.value_kind, DENSE)  # fmt: skip
            return None if mask is None else (mask, self._valid())
        if self.kind == "json":
            if self.path is None:
                return None
            if op == "!=":  # JSON's NotEqual: every non-null row that is not equal
                eq = self.lookup("==", value)
                if eq is None:
                    return None
                res = ~eq[0]
                if eq[1] is not None:
                    res &= eq[1]
                return res, eq[1]
        elif self.kind not in ("bool", "int", "float", "string") or self.has_nan:
            return None
        v = self.values
        if op == "in":
            if values is None or not all(self._compatible(x) for x in values):
                return None
            spans = []
            for x in dict.fromkeys(values):
                i = int(np.searchsorted(v, x, side="left"))
                if i < len(v) and v[i] == x:
                    spans.append((i, i + 1))
            return self._answer(spans)
        if op == "range":
            for bound in (lo, hi):
                if bound is not None and not self._compatible(bound):
                    return None
            a, b = 0, len(v)
            if lo is not None:
                a = int(np.searchsorted(v, lo, side="left" if lo_incl else "right"))
            if hi is not None:
                b = int(np.searchsorted(v, hi, side="right" if hi_incl else "left"))
            return self._answer([(a, max(a, b))])
        if not self._compatible(value):
            return None
        left = int(np.searchsorted(v, value, side="left"))
        right = int(np.searchsorted(v, value, side="right"))
        span = {"==": [(left, right)], "!=": [(0, left), (right, len(v))],
                "<": [(0, left)], "<=": [(0, right)], ">": [(right, len(v))],
                ">=": [(left, len(v))]}.get(op)  # fmt: skip
        if span is None:
            return None
        return self._answer(span)

    # --- file --------------------------------------------------------------------------------
    @property
    def nbytes(self) -> int:
        return int(self.offsets.nbytes + self.rows.nbytes + self.null_rows.nbytes
                   + (self.values.nbytes if self.values.dtype != object else 0))  # fmt: skip

    def describe(self) -> dict[str, Any]:
        return {
            "index_type": self.index_type,
            "field": self.field,
            "rows": self.ntotal,
            "distinct_values": len(self.values),
            "backend": "gpuvec sorted values + postings",
            "nbytes": self.nbytes,
            **({"note": f"{self.kind} field: filters over it are scanned"}
               if (self.kind == "array" and self.value_kind == "array")
               or (self.kind == "json" and self.path is None) else {}),
            **({"json_path": self.params["json_path"], "json_cast_type":
                self.params["json_cast_type"]} if self.path is not None else {}),
        }  # fmt: skip

    def header_extra(self) -> dict[str, Any]:
        return {"field": self.field, "kind": self.kind, "has_nan": self.has_nan,
                "big_ints": self.big_ints, "value_kind": self.value_kind}  # fmt: skip

    def payload(self) -> bytes:
        buf = io.BytesIO()
        strings = self.kind == "string" or self.value_kind == "string"
        vals = self.values.astype(str) if strings else self.values
        np.savez(buf, values=vals, offsets=self.offsets, rows=self.rows, null_rows=self.null_rows)
        return buf.getvalue()

    @classmethod
    def from_payload(cls, header: dict[str, Any], payload: bytes) -> ScalarIndex:
        with np.load(io.BytesIO(payload), allow_pickle=False) as z:
            values, offsets = z["values"], z["offsets"]
            rows, null_rows = z["rows"], z["null_rows"]
        return cls(header["index_type"], header["field"], values, offsets, rows, null_rows,
                   int(header["rows"]), kind=header["kind"], has_nan=header["has_nan"],
                   params=header.get("params"), big_ints=header.get("big_ints", False),
                   value_kind=header.get("value_kind"))  # fmt: skip

    def __repr__(self) -> str:
        return f"ScalarIndex({self.index_type}, {self.field!r}, {json.dumps(self.describe())})"


def _kind(field: FieldSchema) -> str:
    dt = field.dtype
    if dt == DataType.BOOL:
        return "bool"
    if dt in _INTS:
        return "int"
    if dt in (DataType.FLOAT, DataType.DOUBLE):
        return "float"
    if dt == DataType.VARCHAR:
        return "string"
    if dt == DataType.ARRAY:
        return "array"
    return "json"
