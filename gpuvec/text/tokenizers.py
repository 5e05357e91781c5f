"""Tokenizers: split raw text into ``(token, start, end)`` triples, offsets in characters.

Each tokenizer is built from its Milvus ``analyzer_params["tokenizer"]`` entry by
:func:`build_tokenizer`, which validates the entry and raises
:class:`~gpuvec.errors.InvalidArgumentError` naming the offending key and value.
Tokenizers are stateless after construction (jieba's dictionary loads lazily, once, under
jieba's own lock), so one instance may serve many threads.
"""

from __future__ import annotations

import itertools
import logging
import re
import threading
from typing import Any

import regex

from gpuvec.errors import InvalidArgumentError

Span = tuple[str, int, int]  # (token text, start offset, end offset), in characters

# Milvus's default "standard" tokenizer cuts the text into maximal runs of alphanumeric
# characters (Unicode Alphabetic or Numeric), dropping everything else.
_ALNUM_RUN = regex.compile(r"[\p{Alphabetic}\p{N}]+")
# UAX #29 word boundaries (the ``regex`` package's "w" flag).
_WORD_BOUNDARY = regex.compile(r"(?w)\b")
# A UAX #29 segment is a token when it holds a letter, a digit or an emoji.
_WORDLIKE = regex.compile(
    r"[\p{Alphabetic}\p{N}\p{Extended_Pictographic}\p{Emoji_Presentation}"
    r"\p{Regional_Indicator}\u20e3]"
)
_NON_SPACE_RUN = re.compile(r"\S+")  # str patterns: \s is Unicode whitespace
_MAX_TOKEN_LENGTH_DEFAULT = 255
_MAX_TOKEN_LENGTH_LIMIT = 1024 * 1024

# Tokenizers Milvus offers that gpuvec has not implemented.
UNSUPPORTED_TOKENIZERS = frozenset(
    {"lindera", "icu", "language_identifier", "char_group", "grpc", "ngram", "thai",
     "custom_delimiter"}
)  # fmt: skip


def _bad(message: str) -> InvalidArgumentError:
    return InvalidArgumentError(f"analyzer_params: {message}")


class StandardTokenizer:
    """Milvus's ``standard`` tokenizer.

    By default (as in Milvus) a token is a maximal run of alphanumeric characters, so
    ``"fox's 3.14"`` gives ``fox``, ``s``, ``3``, ``14``. With ``uax29: true`` the text is
    cut at Unicode word boundaries (UAX #29) instead, keeping ``fox's`` and ``3.14`` whole;
    segments without a letter, digit or emoji are dropped, and segments longer than
    ``max_token_length`` characters are cut into chunks of that length.
    """

    name = "standard"

    def __init__(self, uax29: bool = False, max_token_length: int | None = None) -> None:
        self.uax29 = uax29
        self.max_token_length = max_token_length or _MAX_TOKEN_LENGTH_DEFAULT

    def tokenize(self, text: str) -> list[Span]:
        if not self.uax29:
            return [(m.group(), m.start(), m.end()) for m in _ALNUM_RUN.finditer(text)]
        cuts = [m.start() for m in _WORD_BOUNDARY.finditer(text)]
        if not cuts or cuts[0] != 0:
            cuts.insert(0, 0)
        if cuts[-1] != len(text):
            cuts.append(len(text))
        out: list[Span] = []
        limit = self.max_token_length
        for start, end in itertools.pairwise(cuts):
            segment = text[start:end]
            if not _WORDLIKE.search(segment):
                continue
            if end - start <= limit:
                out.append((segment, start, end))
                continue
            for chunk in range(start, end, limit):
                stop = min(chunk + limit, end)
                out.append((text[chunk:stop], chunk, stop))
        return out


class WhitespaceTokenizer:
    """Milvus's ``whitespace`` tokenizer: tokens are the runs between whitespace
    characters (any Unicode whitespace); punctuation stays attached to its word."""

    name = "whitespace"

    def tokenize(self, text: str) -> list[Span]:
        return [(m.group(), m.start(), m.end()) for m in _NON_SPACE_RUN.finditer(text)]


_jieba_lock = threading.Lock()


def _jieba_module() -> Any:
    """Import jieba once, with its start-up chatter turned down."""
    with _jieba_lock:
        import jieba

        jieba.setLogLevel(logging.WARNING)
        return jieba


class JiebaTokenizer:
    """Milvus's ``jieba`` tokenizer for Chinese (the ``jieba`` package).

    ``mode`` is ``"search"`` (Milvus's default: long words are also emitted as their
    dictionary 2- and 3-character sub-words, so tokens may overlap) or ``"exact"``;
    ``hmm`` turns jieba's HMM for unknown words on or off; ``dict`` lists extra words,
    where ``"_default_"`` keeps jieba's own dictionary (a list without it uses only the
    listed words). Whitespace tokens are dropped; punctuation tokens are kept (the
    ``chinese`` analyzer's ``cnalphanumonly`` filter removes them).
    """

    name = "jieba"

    def __init__(self, words: tuple[str, ...] = (), use_default: bool = True,
                 mode: str = "search", hmm: bool = True) -> None:  # fmt: skip
        self.words = words
        self.use_default = use_default
        self.mode = "search" if mode == "search" else "default"
        self.hmm = hmm
        self._engine: Any = None
        self._engine_lock = threading.Lock()

    def _get_engine(self) -> Any:
        if self._engine is not None:
            return self._engine
        with self._engine_lock:
            if self._engine is None:
                jieba = _jieba_module()
                if self.use_default and not self.words:
                    engine = jieba.dt  # the shared default tokenizer
                elif self.use_default:
                    engine = jieba.Tokenizer()
                    for word in self.words:
                        engine.add_word(word)
                else:  # only the listed words: an empty dictionary, then the words
                    engine = jieba.Tokenizer()
                    engine.FREQ, engine.total, engine.initialized = {}, 0, True
                    for word in self.words:
                        engine.add_word(word, freq=1)
                self._engine = engine
        return self._engine

    def tokenize(self, text: str) -> list[Span]:
        engine = self._get_engine()
        return [(word, start, end)
                for word, start, end in engine.tokenize(text, mode=self.mode, HMM=self.hmm)
                if word and not word.isspace()]  # fmt: skip


Tokenizer = StandardTokenizer | WhitespaceTokenizer | JiebaTokenizer


def _bool(spec: dict, key: str, default: bool) -> bool:
    value = spec.get(key, default)
    if not isinstance(value, bool):
        raise _bad(f"tokenizer {spec['type']!r}: {key!r} must be true or false, got {value!r}")
    return value


def _only_keys(spec: dict, allowed: set[str]) -> None:
    for key in spec:
        if key not in allowed:
            raise _bad(f"tokenizer {spec['type']!r}: unknown parameter {key!r}")


def build_tokenizer(spec: Any) -> Tokenizer:
    """The tokenizer for an ``analyzer_params["tokenizer"]`` value: a name (``"jieba"``)
    or a dict with ``"type"`` and the tokenizer's parameters."""
    if isinstance(spec, str):
        spec = {"type": spec}
    elif not isinstance(spec, dict):
        raise _bad(f"'tokenizer' must be a name or an object, got {spec!r}")
    name = spec.get("type")
    if not isinstance(name, str):
        raise _bad(f"tokenizer 'type' must be a string, got {name!r}")
    if name == "standard":
        _only_keys(spec, {"type", "uax29", "max_token_length"})
        uax29 = _bool(spec, "uax29", False)
        limit = spec.get("max_token_length")
        if limit is not None:
            if not uax29:
                raise _bad("tokenizer 'standard': 'max_token_length' needs 'uax29': true")
            if (not isinstance(limit, int) or isinstance(limit, bool)
                    or not 1 <= limit <= _MAX_TOKEN_LENGTH_LIMIT):  # fmt: skip
                raise _bad(f"tokenizer 'standard': 'max_token_length' must be an integer "
                           f"in [1, {_MAX_TOKEN_LENGTH_LIMIT}], got {limit!r}")  # fmt: skip
        return StandardTokenizer(uax29, limit)
    if name == "whitespace":
        _only_keys(spec, {"type"})
        return WhitespaceTokenizer()
    if name == "jieba":
        _only_keys(spec, {"type", "dict", "mode", "hmm"})
        words = spec.get("dict", ["_default_"])
        if not isinstance(words, list) or not all(isinstance(w, str) for w in words):
            raise _bad(f"tokenizer 'jieba': 'dict' must be a list of strings, got {words!r}")
        mode = spec.get("mode", "search")
        if mode not in ("search", "exact"):
            raise _bad(f"tokenizer 'jieba': 'mode' must be 'search' or 'exact', got {mode!r}")
        custom = tuple(w for w in words if w != "_default_" and w)
        return JiebaTokenizer(custom, "_default_" in words, mode, _bool(spec, "hmm", True))
    if name in UNSUPPORTED_TOKENIZERS:
        raise _bad(f"gpuvec does not support tokenizer {name!r} yet")
    raise _bad(f"unknown tokenizer {name!r}")
