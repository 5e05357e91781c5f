"""The proxy's filter handling: compiles ``filter`` / ``filter_params`` against a
collection's schema once (a small cache of compiled filters per client) and names each
compiled filter with a key that segments use to cache its masks."""

from __future__ import annotations

import json
import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from gpuvec.errors import InvalidArgumentError
from gpuvec.expr import Filter, compile_filter
from gpuvec.schema import CollectionSchema

_CACHED = 256


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
        try:
            pkey = json.dumps(params, sort_keys=True, default=repr) if params else ""
        except (TypeError, ValueError):
            pkey = repr(params)
        key = f"{collection_id}\x00{text}\x00{pkey}"
        with self._lock:
            if key in self._cache:
                self._cache.move_to_end(key)
                return self._cache[key]
        flt = compile_filter(text, schema, params)
        out = None if flt is None else CompiledFilter(flt, key, text, params)
        with self._lock:
            self._cache[key] = out
            while len(self._cache) > _CACHED:
                self._cache.popitem(last=False)
        return out
