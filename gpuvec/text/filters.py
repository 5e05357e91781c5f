"""Token filters: rewrite or drop the tokens a tokenizer produced, one filter at a time.

A filter works on a list of ``(text, source)`` pairs, where ``source`` indexes the
tokenizer's output (so offsets and positions survive filtering), and returns the new
list. :func:`build_filter` turns one ``analyzer_params["filter"]`` entry (a name such as
``"lowercase"`` or a dict with ``"type"``) into a filter, raising
:class:`~gpuvec.errors.InvalidArgumentError` naming the offending key and value.
"""

from __future__ import annotations

import threading
import unicodedata
from collections.abc import Callable
from functools import cache, lru_cache
from typing import Any

import regex

from gpuvec.errors import InvalidArgumentError

Toks = list[tuple[str, int]]  # (token text, index of the tokenizer's token it came from)

# The English stop words of Lucene/tantivy, which Milvus's "_english_" stands for.
ENGLISH_STOP_WORDS = frozenset(
    {"a", "an", "and", "are", "as", "at", "be", "but", "by", "for", "if", "in", "into", "is",
     "it", "no", "not", "of", "on", "or", "such", "that", "the", "their", "then", "there",
     "these", "they", "this", "to", "was", "will", "with"}
)  # fmt: skip
# Milvus's other built-in stop-word lists, which gpuvec does not carry (refused, not
# silently taken as literal words).
UNSUPPORTED_STOP_LISTS = frozenset(
    {"_danish_", "_dutch_", "_finnish_", "_french_", "_german_", "_hungarian_", "_italian_",
     "_norwegian_", "_portuguese_", "_russian_", "_spanish_", "_swedish_", "_chinese_"}
)  # fmt: skip
# Filters Milvus offers that gpuvec has not implemented.
UNSUPPORTED_FILTERS = frozenset({"synonym", "pinyin", "arabic_normalization", "decimal_digit"})


def _bad(message: str) -> InvalidArgumentError:
    return InvalidArgumentError(f"analyzer_params: {message}")


class MapFilter:
    """A filter that rewrites every token with ``fn``."""

    def __init__(self, name: str, fn: Callable[[str], str]) -> None:
        self.name, self.fn = name, fn

    def apply(self, toks: Toks) -> Toks:
        fn = self.fn
        return [(fn(text), src) for text, src in toks]


class KeepFilter:
    """A filter that keeps the tokens for which ``keep`` is true."""

    def __init__(self, name: str, keep: Callable[[str], Any]) -> None:
        self.name, self.keep = name, keep

    def apply(self, toks: Toks) -> Toks:
        keep = self.keep
        return [(text, src) for text, src in toks if keep(text)]


# --- lowercase -----------------------------------------------------------------------------
def lowercase(text: str) -> str:
    """Lowercase, character by character (capital sigma always becomes σ, as in Milvus)."""
    if "Σ" in text:
        text = text.replace("Σ", "σ")
    return text.lower()


# --- asciifolding --------------------------------------------------------------------------
_FOLD_SPECIAL = {
    "ß": "ss", "ẞ": "SS", "æ": "ae", "Æ": "AE", "œ": "oe", "Œ": "OE", "ø": "o", "Ø": "O",
    "đ": "d", "Đ": "D", "ð": "d", "Ð": "D", "ł": "l", "Ł": "L", "ħ": "h", "Ħ": "H",
    "ı": "i", "ŀ": "l", "Ŀ": "L", "þ": "th", "Þ": "TH", "ŋ": "n", "Ŋ": "N", "ĸ": "q",
    "ſ": "s", "ƒ": "f", "‘": "'", "’": "'", "‚": "'", "‛": "'", "“": '"', "”": '"',
    "„": '"', "‟": '"', "«": '"', "»": '"', "‐": "-", "‑": "-", "‒": "-", "–": "-",
    "—": "-", "―": "-",
}  # fmt: skip


class _FoldTable(dict):
    """``str.translate`` table that works out each non-ASCII character's folding on first
    sight: its compatibility decomposition without combining marks, when that is plain
    ASCII (é → e, ﬁ → fi, Ａ → A), else a few special cases, else the character itself.
    Scripts that do not decompose to ASCII (CJK, Cyrillic, Hangul...) are left alone."""

    def __missing__(self, code: int) -> str:
        ch = chr(code)
        folded = _FOLD_SPECIAL.get(ch)
        if folded is None:
            decomposed = unicodedata.normalize("NFKD", ch)
            bare = "".join(c for c in decomposed if not unicodedata.combining(c))
            folded = bare if bare and bare.isascii() else ch
        self[code] = folded
        return folded


_FOLD_TABLE = _FoldTable()


def asciifold(text: str) -> str:
    """Fold accented Latin letters (and other characters with an ASCII equivalent) to
    ASCII: ``"Crème Brûlée"`` → ``"Creme Brulee"``."""
    return text if text.isascii() else text.translate(_FOLD_TABLE)


# --- character-class filters ---------------------------------------------------------------
_HAN = regex.compile(r"\p{Han}")
_HAN_OR_ASCII_ALNUM = regex.compile(r"[\p{Han}a-zA-Z0-9]")
_PUNCT_OR_SPACE = regex.compile(r"[\p{P}\s]")


def is_ascii_alnum(text: str) -> bool:
    """True when every character is an ASCII letter or digit."""
    return text.isascii() and (text.isalnum() or not text)


SIMPLE_FILTERS: dict[str, Callable[[], MapFilter | KeepFilter]] = {
    "lowercase": lambda: MapFilter("lowercase", lowercase),
    "asciifolding": lambda: MapFilter("asciifolding", asciifold),
    "alphanumonly": lambda: KeepFilter("alphanumonly", is_ascii_alnum),
    # As Milvus does (and its documented example shows: "2.0" survives), these keep a
    # token that contains at least one character of the class.
    "cncharonly": lambda: KeepFilter("cncharonly", _HAN.search),
    "cnalphanumonly": lambda: KeepFilter("cnalphanumonly", _HAN_OR_ASCII_ALNUM.search),
    "removepunct": lambda: KeepFilter("removepunct", lambda t: not _PUNCT_OR_SPACE.search(t)),
}


# --- stop words ----------------------------------------------------------------------------
def string_list(value: Any, where: str) -> list[str]:
    """``value`` as a list of strings, or an error naming ``where``."""
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise _bad(f"{where} must be a list of strings (e.g. [\"_english_\"]), got {value!r}")
    return value


def stop_word_set(words: list[str], where: str) -> frozenset[str]:
    """The stop words a ``stop_words`` list stands for ("_english_" expands)."""
    out: set[str] = set()
    for word in words:
        if word == "_english_":
            out |= ENGLISH_STOP_WORDS
        elif word in UNSUPPORTED_STOP_LISTS:
            raise _bad(f"{where}: gpuvec has no {word!r} stop-word list yet "
                       f"(only '_english_'); list the words instead")  # fmt: skip
        else:
            out.add(word)
    return frozenset(out)


def stop_filter(words: frozenset[str]) -> KeepFilter:
    return KeepFilter("stop", lambda text: text not in words)


# --- stemmer -------------------------------------------------------------------------------
class _Stemmer:
    """A Snowball stemmer with a per-language word cache (the stemmer object is not safe
    to share between threads, so misses run under a lock)."""

    def __init__(self, language: str) -> None:
        import snowballstemmer

        self._stemmer = snowballstemmer.stemmer(language)
        self._lock = threading.Lock()
        self.stem = lru_cache(maxsize=1 << 16)(self._stem_uncached)

    def _stem_uncached(self, word: str) -> str:
        with self._lock:
            return self._stemmer.stemWord(word)


@cache
def _stemmer(language: str) -> _Stemmer:
    return _Stemmer(language)


@lru_cache(maxsize=1)
def stemmer_languages() -> frozenset[str]:
    import snowballstemmer

    return frozenset(snowballstemmer.algorithms())


# --- decompounder --------------------------------------------------------------------------
class DecompounderFilter:
    """Split a token into dictionary words when it is made entirely of them, taking the
    longest dictionary word at each step (``"dampfschifffahrt"`` → ``dampf``, ``schiff``,
    ``fahrt``); a token that cannot be covered is kept whole. The parts share the
    original token's offsets and position."""

    name = "decompounder"

    def __init__(self, words: list[str]) -> None:
        self.words = frozenset(words)
        self.longest = max(len(w) for w in words)

    def split(self, text: str) -> list[str] | None:
        parts, pos, words = [], 0, self.words
        while pos < len(text):
            for size in range(min(self.longest, len(text) - pos), 0, -1):
                if text[pos:pos + size] in words:
                    parts.append(text[pos:pos + size])
                    pos += size
                    break
            else:
                return None
        return parts

    def apply(self, toks: Toks) -> Toks:
        out: Toks = []
        for text, src in toks:
            parts = self.split(text)
            out += [(part, src) for part in parts] if parts else [(text, src)]
        return out


Filter = MapFilter | KeepFilter | DecompounderFilter


def _only_keys(spec: dict, allowed: set[str]) -> None:
    for key in spec:
        if key not in allowed:
            raise _bad(f"filter {spec['type']!r}: unknown parameter {key!r}")


def build_filter(spec: Any) -> Filter:
    """The filter for one ``analyzer_params["filter"]`` entry."""
    if isinstance(spec, str):
        if spec in SIMPLE_FILTERS:
            return SIMPLE_FILTERS[spec]()
        if spec in ("length", "stop", "stemmer", "decompounder", "regex"):
            raise _bad(f"filter {spec!r} needs parameters: give it as "
                       f"{{\"type\": \"{spec}\", ...}}")  # fmt: skip
        if spec in UNSUPPORTED_FILTERS:
            raise _bad(f"gpuvec does not support filter {spec!r} yet")
        raise _bad(f"unknown filter {spec!r}")
    if not isinstance(spec, dict):
        raise _bad(f"each 'filter' entry must be a name or an object, got {spec!r}")
    kind = spec.get("type")
    if not isinstance(kind, str):
        raise _bad(f"filter 'type' must be a string, got {kind!r}")
    if kind in SIMPLE_FILTERS:
        _only_keys(spec, {"type"})
        return SIMPLE_FILTERS[kind]()
    if kind == "length":
        _only_keys(spec, {"type", "max"})
        limit = spec.get("max")
        if not isinstance(limit, int) or isinstance(limit, bool) or limit < 1:
            raise _bad(f"filter 'length': 'max' must be a positive integer, got {limit!r}")
        return KeepFilter("length", lambda text: len(text) <= limit)
    if kind == "stop":
        _only_keys(spec, {"type", "stop_words", "stop_words_file"})
        if "stop_words_file" in spec:
            raise _bad("filter 'stop': gpuvec does not support 'stop_words_file' yet")
        words = string_list(spec.get("stop_words", []), "filter 'stop': 'stop_words'")
        return stop_filter(stop_word_set(words, "filter 'stop'"))
    if kind == "stemmer":
        _only_keys(spec, {"type", "language"})
        language = spec.get("language")
        if not isinstance(language, str) or language.lower() not in stemmer_languages():
            raise _bad(f"filter 'stemmer': unknown 'language' {language!r} (one of "
                       f"{', '.join(sorted(stemmer_languages()))})")  # fmt: skip
        return MapFilter("stemmer", _stemmer(language.lower()).stem)
    if kind == "decompounder":
        _only_keys(spec, {"type", "word_list", "word_list_file"})
        if "word_list_file" in spec:
            raise _bad("filter 'decompounder': gpuvec does not support 'word_list_file' yet")
        words = string_list(spec.get("word_list"), "filter 'decompounder': 'word_list'")
        words = [w for w in words if w]
        if not words:
            raise _bad("filter 'decompounder': 'word_list' is empty")
        return DecompounderFilter(words)
    if kind == "regex":
        _only_keys(spec, {"type", "expr"})
        expr = spec.get("expr")
        if not isinstance(expr, str):
            raise _bad(f"filter 'regex': 'expr' must be a string, got {expr!r}")
        try:
            pattern = regex.compile(expr)
        except regex.error as exc:
            raise _bad(f"filter 'regex': invalid 'expr' {expr!r}: {exc}") from None
        return KeepFilter("regex", pattern.search)
    if kind in UNSUPPORTED_FILTERS:
        raise _bad(f"gpuvec does not support filter {kind!r} yet")
    raise _bad(f"unknown filter {kind!r}")
