"""Decoded JSON columns and typed per-path arrays, cached per segment.

A :class:`JsonCache` belongs to one segment (the caller keeps it). Each JSON column is
decoded once — one ``json.loads`` over all rows — and for every (column, path) a filter
reads, the values at that path become :class:`JsonValues`: a kind code per row plus typed
NumPy/Arrow arrays (int64, float64, bool, string), built once and reused by every later
filter. Rows are only ever appended to a segment, so when a table has grown since the
last call only the new tail is decoded and extracted; a table shorter than what is cached
(an older snapshot of the same segment) is served from a prefix of the cache.

Invariants: the rows ``[0, n)`` of every table given for one cache are the same rows
(append-only); each non-null cell is valid JSON text (``gpuvec.rows`` guarantees it).
"""

from __future__ import annotations

import gc
import json
import threading
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
import pyarrow as pa

from gpuvec.expr.arith import INT64_MAX, INT64_MIN

try:  # faster when present (pymilvus brings it); the standard library otherwise
    from orjson import loads as _fast_loads
except ImportError:  # pragma: no cover - depends on the environment
    _fast_loads = json.loads

K_MISSING, K_NULL, K_BOOL, K_INT, K_FLOAT, K_STR, K_LIST, K_OBJ = range(8)
MAX_CACHED_PATHS = 128  # per cache; the least recently used path is dropped beyond it


class _Missing:
    def __repr__(self) -> str:
        return "MISSING"


MISSING: Any = _Missing()  # no value at this path (key absent, index out of range, null row)


def _as_float(v: int) -> float:
    try:
        return float(v)
    except OverflowError:
        return float("inf") if v > 0 else float("-inf")


def is_empty(v: Any) -> bool:
    """Milvus's notion of an absent JSON value for ``exists``: null, or an array/object
    whose members are all absent."""
    stack = [v]
    while stack:
        x = stack.pop()
        t = type(x)
        if t is list:
            stack.extend(x)
        elif t is dict:
            stack.extend(x.values())
        elif x is not None:
            return False
    return True


def _normal(v: Any) -> Any:
    t = type(v)
    if t is int:
        return v if INT64_MIN <= v <= INT64_MAX else _normal(_as_float(v))
    if t is float:
        return int(v) if v.is_integer() and -(2.0**63) <= v < 2.0**63 else v
    if t is list:
        return [_normal(x) for x in v]
    if t is dict:
        return {k: _normal(x) for k, x in v.items()}
    return v


def canonical(v: Any) -> str | None:
    """Text equal for equal JSON values (numbers by value, 1 == 1.0; keys sorted)."""
    try:
        return json.dumps(_normal(v), separators=(",", ":"), sort_keys=True, ensure_ascii=False)
    except (RecursionError, ValueError):
        return None


def walk(doc: Any, path: tuple[str, ...]) -> Any:
    """The value at a JSON-pointer path (MISSING when there is none)."""
    for key in path:
        t = type(doc)
        if t is dict:
            doc = doc.get(key, MISSING)
        elif t is list and key.isascii() and key.isdigit() and (key == "0" or key[0] != "0"):
            if len(key) > 18:  # past any list's length (and never a too-long int())
                return MISSING
            i = int(key)
            doc = doc[i] if i < len(doc) else MISSING
        else:
            return MISSING
    return doc


class JsonValues:
    """One JSON value per row, typed: ``kind`` codes (K_*) and per-type arrays (ints,
    floats, bools: NumPy; strs: an Arrow string array null where not a string). The
    canonical text of arrays/objects and the flattened array elements are built lazily."""

    __slots__ = ("_canon", "_elems", "_masks", "bools", "floats", "ints", "kind", "raw", "strs")

    def __init__(self, raw: list[Any]) -> None:
        n = len(raw)
        self.raw = raw
        kind = np.zeros(n, np.int8)
        ints, floats = np.zeros(n, np.int64), np.zeros(n, np.float64)
        bools = np.zeros(n, np.bool_)
        strs: list[str | None] = [None] * n
        idx: dict[int, list[int]] = {k: [] for k in range(1, 8)}
        ivals: list[int] = []
        fvals: list[float] = []
        for i, v in enumerate(raw):
            t = type(v)
            if t is int:
                if INT64_MIN <= v <= INT64_MAX:
                    idx[K_INT].append(i)
                    ivals.append(v)
                else:
                    idx[K_FLOAT].append(i)
                    fvals.append(_as_float(v))
            elif t is float:
                idx[K_FLOAT].append(i)
                fvals.append(v)
            elif t is str:
                idx[K_STR].append(i)
                strs[i] = v
            elif t is bool:
                idx[K_BOOL].append(i)
            elif t is list:
                idx[K_LIST].append(i)
            elif t is dict:
                idx[K_OBJ].append(i)
            elif v is None:
                idx[K_NULL].append(i)
        for k, rows in idx.items():
            kind[rows] = k
        ints[idx[K_INT]] = ivals
        floats[idx[K_FLOAT]] = fvals
        bools[idx[K_BOOL]] = [raw[i] for i in idx[K_BOOL]]
        self.kind, self.ints, self.floats, self.bools = kind, ints, floats, bools
        self.strs = pa.array(strs, pa.string())
        self._canon: pa.Array | None = None
        self._elems: tuple[np.ndarray, JsonValues] | None = None
        self._masks: dict[str, np.ndarray] = {}

    def __len__(self) -> int:
        return len(self.raw)

    def mask(self, kind: int) -> np.ndarray:
        """Rows whose value has this kind (cached)."""
        key = str(kind)
        m = self._masks.get(key)
        if m is None:
            m = self._masks[key] = self.kind == kind
        return m

    def exists(self) -> np.ndarray:
        """Rows whose value exists in Milvus's sense (present and not empty)."""
        m = self._masks.get("exists")
        if m is None:
            m = self.kind >= K_BOOL
            for i in np.flatnonzero(self.kind >= K_LIST):
                m[i] = not is_empty(self.raw[i])
            self._masks["exists"] = m
        return m

    def canon(self) -> pa.Array:
        """Canonical JSON text of array/object values (null elsewhere)."""
        if self._canon is None:
            texts: list[str | None] = [None] * len(self.raw)
            with _no_gc():
                for i in np.flatnonzero(self.kind >= K_LIST):
                    texts[i] = canonical(self.raw[i])
            self._canon = pa.array(texts, pa.string())
        return self._canon

    def elements(self) -> tuple[np.ndarray, JsonValues]:
        """(offsets[n+1], elements) of the rows holding arrays (other rows: no elements)."""
        if self._elems is None:
            lengths = np.zeros(len(self.raw), np.int64)
            flat: list[Any] = []
            with _no_gc():
                for i in np.flatnonzero(self.kind == K_LIST):
                    items = self.raw[i]
                    lengths[i] = len(items)
                    flat.extend(items)
                elements = JsonValues(flat)
            offsets = np.zeros(len(self.raw) + 1, np.int64)
            np.cumsum(lengths, out=offsets[1:])
            self._elems = (offsets, elements)
        return self._elems

    def extended(self, tail: JsonValues) -> JsonValues:
        """A new JsonValues of these rows followed by ``tail``'s (lazy parts carried)."""
        out = object.__new__(JsonValues)
        out.raw = self.raw + tail.raw  # pointers only: the values are shared
        out.kind = np.concatenate([self.kind, tail.kind])
        out.ints = np.concatenate([self.ints, tail.ints])
        out.floats = np.concatenate([self.floats, tail.floats])
        out.bools = np.concatenate([self.bools, tail.bools])
        out.strs = pa.concat_arrays([self.strs, tail.strs])
        out._masks = {}
        out._canon = None
        if self._canon is not None:
            out._canon = pa.concat_arrays([self._canon, tail.canon()])
        out._elems = None
        if self._elems is not None:
            (off_a, el_a), (off_b, el_b) = self._elems, tail.elements()
            offsets = np.concatenate([off_a, off_b[1:] + off_a[-1]])
            out._elems = (offsets, el_a.extended(el_b))
        return out

    def head(self, n: int) -> JsonValues:
        """The first n rows (an older snapshot of an append-only column)."""
        if n == len(self.raw):
            return self
        out = object.__new__(JsonValues)
        out.raw = self.raw[:n]
        out.kind, out.ints, out.floats = self.kind[:n], self.ints[:n], self.floats[:n]
        out.bools, out.strs = self.bools[:n], self.strs.slice(0, n)
        out._masks = {}
        out._canon = None if self._canon is None else self._canon.slice(0, n)
        out._elems = None
        if self._elems is not None:
            offsets, elems = self._elems
            out._elems = (offsets[: n + 1], elems.head(int(offsets[n])))
        return out


@contextmanager
def _no_gc() -> Iterator[None]:
    """Pause the cyclic garbage collector while building millions of small objects that
    cannot form cycles (it would otherwise rescan them repeatedly: 3x the decode time)."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def decode_json_column(arr: pa.Array) -> tuple[list[Any], np.ndarray | None]:
    """Python values of a JSON text column (MISSING for null cells) and its validity mask
    (None when no cell is null). One ``loads`` call decodes the whole column (a cell the
    fast decoder refuses, such as an integer beyond 64 bits, falls back to ``json``)."""
    texts = arr.to_pylist()
    try:
        docs = _fast_loads("[" + ",".join("null" if t is None else t for t in texts) + "]")
        if len(docs) != len(texts):
            raise ValueError("row count changed")
    except (ValueError, RecursionError):
        docs = [_loads_one(t) for t in texts]
    valid = None
    if arr.null_count:
        valid = np.asarray(arr.is_valid().to_numpy(zero_copy_only=False), np.bool_)
        for i in np.flatnonzero(~valid):
            docs[i] = MISSING
    return docs, valid


def _loads_one(text: str | None) -> Any:
    if text is None:
        return MISSING
    try:
        return json.loads(text)
    except (ValueError, RecursionError):
        return MISSING


class JsonCache:
    """Per-segment cache of decoded JSON columns and of typed values per (column, path).

    Construct with no arguments; pass the same instance to every
    :meth:`gpuvec.expr.Filter.evaluate` on one segment. Thread-safe.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._derived: dict[Any, Any] = {}  # other per-segment caches (text-match indexes)
        self._docs: dict[str, tuple[list[Any], np.ndarray | None]] = {}
        self._paths: OrderedDict[tuple[str, tuple[str, ...]], JsonValues] = OrderedDict()

    def derived(self, key: Any, make: Any) -> Any:
        """Another per-segment structure kept with this cache (made by ``make()`` once)."""
        with self._lock:
            got = self._derived.get(key)
            if got is None:
                got = self._derived[key] = make()
            return got

    def clear(self) -> None:
        with self._lock:
            self._derived.clear()
            self._docs.clear()
            self._paths.clear()

    @property
    def decoded_rows(self) -> dict[str, int]:
        """Rows decoded so far, per column (for tests and monitoring)."""
        with self._lock:
            return {name: len(docs) for name, (docs, _) in self._docs.items()}

    def values(
        self, name: str, column: pa.Array, path: tuple[str, ...]
    ) -> tuple[JsonValues, np.ndarray | None]:
        """Typed values at ``path`` for the rows of ``column`` (named ``name``) and the
        column's validity (None: no null rows)."""
        n = len(column)
        with self._lock, _no_gc():
            docs, valid = self._decoded(name, column)
            jv = self._paths.get((name, path))
            if jv is None:
                jv = JsonValues([walk(d, path) for d in docs])
            elif len(jv) < len(docs):
                jv = jv.extended(JsonValues([walk(d, path) for d in docs[len(jv) :]]))
            self._paths[(name, path)] = jv
            self._paths.move_to_end((name, path))
            while len(self._paths) > MAX_CACHED_PATHS:
                self._paths.popitem(last=False)
        return jv.head(n), None if valid is None else valid[:n]

    def _decoded(self, name: str, column: pa.Array) -> tuple[list[Any], np.ndarray | None]:
        n = len(column)
        docs, valid = self._docs.get(name, ([], None))
        if len(docs) < n:
            tail, tail_valid = decode_json_column(column.slice(len(docs)))
            if valid is not None or tail_valid is not None:
                head = valid if valid is not None else np.ones(len(docs), np.bool_)
                rest = tail_valid if tail_valid is not None else np.ones(len(tail), np.bool_)
                valid = np.concatenate([head, rest])
            docs = docs + tail
            self._docs[name] = (docs, valid)
        return docs, valid
