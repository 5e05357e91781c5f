"""Milvus 2.6 analyzers: ``analyzer_params`` in, token streams out.

An analyzer is one tokenizer followed by zero or more filters, applied in the order
listed. ``analyzer_params`` is either a built-in analyzer::

    {"type": "standard" | "english" | "chinese", "stop_words": [...]}

or a custom one::

    {"tokenizer": "standard" | {"type": ..., ...}, "filter": ["lowercase", {"type": ...}]}

``None`` or ``{}`` means ``{"type": "standard"}``. :func:`check_analyzer_params`
validates (parsing a JSON string first) and returns the canonical dict;
:func:`analyzer` returns the built :class:`Analyzer`, cached by its canonical params.
"""

from __future__ import annotations

import copy
import json
from functools import lru_cache

from gpuvec.errors import InvalidArgumentError
from gpuvec.text.filters import (
    Filter,
    MapFilter,
    build_filter,
    lowercase,
    stop_filter,
    stop_word_set,
    string_list,
)
from gpuvec.text.tokenizers import (
    JiebaTokenizer,
    StandardTokenizer,
    Tokenizer,
    build_tokenizer,
)

__all__ = ["Analyzer", "analyzer", "check_analyzer_params"]

BUILT_IN_TYPES = ("standard", "english", "chinese")
_CUSTOM_KEYS = {"tokenizer", "filter"}


def _bad(message: str) -> InvalidArgumentError:
    return InvalidArgumentError(f"analyzer_params: {message}")


class Analyzer:
    """A tokenizer and its filters, built from canonical ``analyzer_params``.

    Thread-safe: it keeps no per-call state.
    """

    def __init__(self, params: dict, tokenizer: Tokenizer, filters: list[Filter]) -> None:
        self.params = params
        self.tokenizer = tokenizer
        self.filters = filters

    def __repr__(self) -> str:
        return f"Analyzer({json.dumps(self.params, ensure_ascii=False)})"

    def _run(self, text: str | None) -> tuple[list[tuple[str, int, int]], list[tuple[str, int]]]:
        if text is None or text == "":
            return [], []
        if not isinstance(text, str):
            kind = type(text).__name__
            raise InvalidArgumentError(f"analyzer: text must be a string, got {kind}")
        spans = self.tokenizer.tokenize(text)
        toks = [(token, i) for i, (token, _, _) in enumerate(spans)]
        for f in self.filters:
            if not toks:
                break
            toks = f.apply(toks)
        return spans, toks

    def tokens(self, text: str | None) -> list[str]:
        """The token stream of ``text`` after every filter ([] for empty text)."""
        return [token for token, _ in self._run(text)[1]]

    def detail(self, text: str | None) -> list[dict]:
        """Per token: its text, ``start_offset``/``end_offset`` (characters of ``text``,
        those of the tokenizer's token it came from), ``position`` (that token's index in
        the tokenizer's stream, before filters dropped any) and ``position_length`` 1."""
        spans, toks = self._run(text)
        return [{"token": token, "start_offset": spans[i][1], "end_offset": spans[i][2],
                 "position": i, "position_length": 1}
                for token, i in toks]  # fmt: skip


# --- building ------------------------------------------------------------------------------
def _built_in(params: dict) -> tuple[Tokenizer, list[Filter]]:
    kind = params["type"]
    if not isinstance(kind, str):
        raise _bad(f"'type' must be a string, got {kind!r}")
    if kind not in BUILT_IN_TYPES:
        raise _bad(f"unknown analyzer type {kind!r} (one of {', '.join(BUILT_IN_TYPES)})")
    for key in params:
        if key in _CUSTOM_KEYS:
            raise _bad(f"'type' ({kind!r}) and {key!r} cannot both be given: use either a "
                       f"built-in analyzer or a custom tokenizer and filters")  # fmt: skip
        if key not in ("type", "stop_words"):
            raise _bad(f"analyzer type {kind!r}: unknown parameter {key!r}")
    extra: list[Filter] = []
    if "stop_words" in params:
        words = string_list(params["stop_words"], "'stop_words'")
        if words:
            extra.append(stop_filter(stop_word_set(words, "'stop_words'")))
    lower = MapFilter("lowercase", lowercase)
    if kind == "standard":
        return StandardTokenizer(), [lower, *extra]
    if kind == "english":
        stem = build_filter({"type": "stemmer", "language": "english"})
        english_stop = build_filter({"type": "stop", "stop_words": ["_english_"]})
        return StandardTokenizer(), [lower, stem, english_stop, *extra]
    only = build_filter("cnalphanumonly")
    return JiebaTokenizer(), [only, *extra]


def _custom(params: dict) -> tuple[Tokenizer, list[Filter]]:
    for key in params:
        if key == "char_filter":
            raise _bad("gpuvec does not support 'char_filter' yet")
        if key not in _CUSTOM_KEYS:
            raise _bad(f"unknown key {key!r}")
    if "tokenizer" not in params:
        raise _bad("give either 'type' (a built-in analyzer) or 'tokenizer'")
    tokenizer = build_tokenizer(params["tokenizer"])
    specs = params.get("filter", [])
    if not isinstance(specs, list):
        raise _bad(f"'filter' must be a list, got {specs!r}")
    return tokenizer, [build_filter(spec) for spec in specs]


def _parse(params: dict | str | None) -> dict:
    if params is None:
        return {}
    if isinstance(params, str):
        if not params.strip():
            return {}
        try:
            params = json.loads(params)
        except ValueError as exc:
            raise _bad(f"not valid JSON: {exc}") from None
    if not isinstance(params, dict):
        raise _bad(f"must be an object, got {type(params).__name__}")
    return params


def _build(params: dict | str | None) -> tuple[dict, Tokenizer, list[Filter]]:
    canon = copy.deepcopy(_parse(params)) or {"type": "standard"}
    tokenizer, filters = _built_in(canon) if "type" in canon else _custom(canon)
    return canon, tokenizer, filters


def check_analyzer_params(params: dict | str | None) -> dict:
    """Validate ``analyzer_params`` (a dict, a JSON string, or None) and return its
    canonical dict (``{"type": "standard"}`` for None or empty). Raises
    :class:`InvalidArgumentError` naming the offending key or value."""
    return _build(params)[0]


def _key(canon: dict) -> str:
    return json.dumps(canon, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


@lru_cache(maxsize=256)
def _by_canonical(key: str) -> Analyzer:
    canon, tokenizer, filters = _build(key)
    return Analyzer(canon, tokenizer, filters)


@lru_cache(maxsize=1024)
def _by_raw(raw: str) -> Analyzer:
    return _by_canonical(_key(check_analyzer_params(raw)))


def analyzer(params: dict | str | None = None) -> Analyzer:
    """The built analyzer for ``analyzer_params``, shared by every caller that gives equal
    params (as a dict or as JSON)."""
    if params is None:
        return _by_raw("")
    if isinstance(params, str):
        return _by_raw(params)
    try:
        raw = json.dumps(params, sort_keys=True)
    except (TypeError, ValueError):
        raw = None
    if raw is None:  # not JSON-serialisable: validation names the problem
        check_analyzer_params(params)
        raise _bad(f"not JSON-serialisable: {params!r}")
    return _by_raw(raw)
