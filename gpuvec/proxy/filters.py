"""The proxy's filter handling: compiles ``filter`` / ``filter_params`` against a
collection's schema once (a small cache of compiled filters per client) and names each
compiled filter with a key that segments use to cache its masks.

The key must tell apart any two requests that could compile differently, since segments
reuse masks by key: params are keyed by their exact JSON form (NumPy values as plain
Python values, never by ``repr``, which abbreviates large arrays). Params that have no
exact key (other objects, integers too long to print) are compiled every time under a
key of their own. Every error is a :class:`~gpuvec.errors.GpuvecError`.
"""

from __future__ import annotations

import itertools
import json
import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import numpy as np

from gpuvec.errors import InvalidArgumentError
from gpuvec.expr import Filter, compile_filter
from gpuvec.schema import CollectionSchema

_CACHED = 256
_unique = itertools.count()


@dataclass(frozen=True)
class CompiledFilter:
    filter: Filter
    key: str  # the same text + params + schema give the same key
    text: str = ""  # the source, for nodes that compile it again (cluster mode)
    params: Any = None


class FilterCompiler:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._cache: OrderedDict[str, CompiledFilter | None] = OrderedDict()

    def compile(
        self,
        collection_id: int,
        schema: CollectionSchema,
        text: Any,
        params: Any = None,
    ) -> CompiledFilter | None:
        """None for an empty filter; InvalidArgumentError (naming the position) if bad."""
        if text is None:
            return None
        if not isinstance(text, str):
            raise InvalidArgumentError(f"filter must be a string, got {type(text).__name__}")
        if params is not None and not isinstance(params, dict):
            raise InvalidArgumentError(f"filter_params must be a dict, got {type(params).__name__}")
        pkey = params_key(params)
        cacheable = pkey is not None
        if pkey is None:
            pkey = f"\x01uncached-{next(_unique)}"
        # fields only grow (add_collection_field): their count tells schema versions apart
        key = f"{collection_id}\x00{len(schema.fields)}\x00{text}\x00{pkey}"
        with self._lock:
            if key in self._cache:
                self._cache.move_to_end(key)
                return self._cache[key]
        flt = compile_filter(text, schema, params)
        out = None if flt is None else CompiledFilter(flt, key, text, params)
        if cacheable:
            with self._lock:
                self._cache[key] = out
                while len(self._cache) > _CACHED:
                    self._cache.popitem(last=False)
        return out


def params_key(params: dict[Any, Any] | None) -> str | None:
    """Exact text of ``params`` (equal only for params that compile alike), "" for none, or
    None when they have no exact key. The text never holds a NUL character."""
    if not params:
        return ""
    if not all(isinstance(k, str) for k in params):
        return None
    try:
        return json.dumps({k: _plain(v, 0) for k, v in params.items()}, sort_keys=True)
    except (TypeError, ValueError, RecursionError):  # ValueError: an int too long to print
        return None


def _plain(value: Any, level: int) -> Any:
    """A template value as plain JSON-able Python, as the filter compiler reads it."""
    if level > 64:
        raise ValueError("nested too deeply to key")
    if isinstance(value, np.ndarray):
        value = value.tolist()
    elif isinstance(value, np.generic):
        value = value.item()
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, list | tuple):
        return [_plain(v, level + 1) for v in value]
    raise TypeError(f"no exact key for {type(value).__name__}")
