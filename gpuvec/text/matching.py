"""``text_match`` and ``phrase_match``: an inverted index of one segment's analysed text.

A :class:`TextIndex` belongs to one (segment, VARCHAR field with ``enable_match``): it
analyses each row's text once with the field's analyzer and keeps, per token, the rows
holding it and, per row, its tokens with their positions. Rows are only ever appended to
a segment, so a later, longer table extends the index by its tail; a shorter table (an
older snapshot) reads a prefix.

* ``text_match(field, 'a b c')`` matches rows holding any of the query's tokens (with
  ``minimum_should_match`` m: at least m distinct ones), as Milvus's TEXT_MATCH does;
* ``phrase_match(field, 'a b c', slop)`` matches rows holding the query's tokens in order,
  with at most ``slop`` extra positions between them in all (0: adjacent), as Milvus's
  PHRASE_MATCH does. Positions are those of the tokenizer's stream, so a stop word a
  filter removed still counts as a position (as in Milvus).

Null texts match nothing. Thread-safe: a lock guards the extension.
"""

from __future__ import annotations

import threading
from typing import Any

import numpy as np

from gpuvec.text.analyzer import Analyzer

__all__ = ["TextIndex"]


class TextIndex:
    def __init__(self, analyzer: Analyzer) -> None:
        self.analyzer = analyzer
        self._lock = threading.Lock()
        self._postings: dict[str, list[int]] = {}
        self._rows: list[list[tuple[str, int]]] = []  # per row: (token, position)

    def __len__(self) -> int:
        return len(self._rows)

    def extend(self, tail: list[Any], start: int) -> None:
        """Index the rows ``start, start + 1, ...`` holding ``tail`` (rows already indexed
        are skipped: a column's first rows never change)."""
        with self._lock:
            have = len(self._rows)
            if start > have:
                raise ValueError(f"rows {have}..{start} of the column were never indexed")
            for i, text in enumerate(tail[have - start :], have):
                if not isinstance(text, str) or not text:
                    self._rows.append([])
                    continue
                toks = [(d["token"], int(d["position"])) for d in self.analyzer.detail(text)]
                self._rows.append(toks)
                for tok in {t for t, _ in toks}:
                    self._postings.setdefault(tok, []).append(i)

    def match(self, query: str, n: int, minimum_should_match: int = 1) -> np.ndarray:
        """Rows among the first ``n`` holding at least ``minimum_should_match`` of the
        query's distinct tokens."""
        counts = np.zeros(n, np.int32)
        for tok in set(self.analyzer.tokens(query)):
            rows = np.asarray(self._postings.get(tok, ()), np.int64)
            counts[rows[rows < n]] += 1
        return counts >= max(1, int(minimum_should_match))

    def phrase(self, query: str, n: int, slop: int = 0) -> np.ndarray:
        """Rows among the first ``n`` holding the query's tokens in order within ``slop``."""
        want = [t for t, _ in sorted(((d["token"], d["position"])
                                      for d in self.analyzer.detail(query)), key=lambda x: x[1])]
        mask = np.zeros(n, bool)
        if not want:
            return mask
        cand: set[int] | None = None
        for tok in set(want):
            rows = {r for r in self._postings.get(tok, ()) if r < n}
            cand = rows if cand is None else cand & rows
            if not cand:
                return mask
        for r in sorted(cand or ()):
            if _in_order(self._rows[r], want, slop):
                mask[r] = True
        return mask


def _in_order(tokens: list[tuple[str, int]], want: list[str], slop: int) -> bool:
    """Whether ``want`` occurs in ``tokens`` in order with at most ``slop`` positions of
    gap in all (a search over every start position of the first token)."""
    where: dict[str, list[int]] = {}
    for tok, pos in tokens:
        where.setdefault(tok, []).append(pos)
    for first in where.get(want[0], ()):
        prev, gaps, ok = first, 0, True
        for tok in want[1:]:
            nxt = [p for p in where.get(tok, ()) if p > prev]
            if not nxt:
                ok = False
                break
            gaps += nxt[0] - prev - 1
            prev = nxt[0]
            if gaps > slop:
                ok = False
                break
        if ok:
            return True
    return False
