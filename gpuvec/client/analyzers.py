"""The analyzer part of ``MilvusClient`` (a base class of it): ``run_analyzer``, as pymilvus
names it — the tokens an analyzer (given by its ``analyzer_params``, or a collection's
VARCHAR field's) makes of texts, with their offsets and positions (``with_detail``) and
the term ids a BM25 function gives them (``with_hash``). The analyzers themselves are
:mod:`gpuvec.text.analyzer`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from gpuvec import functions
from gpuvec.errors import InvalidArgumentError
from gpuvec.text.analyzer import analyzer
from gpuvec.text.bm25 import field_analyzer

__all__ = ["AnalyzeResult", "AnalyzerMethods"]


@dataclass
class AnalyzeResult:
    """One text's tokens: strings, or dicts (``token`` and, as asked, ``start_offset``,
    ``end_offset``, ``position``, ``position_length``, ``hash``) — pymilvus's shape."""

    tokens: list[Any]

    def __str__(self) -> str:
        return str(self.tokens)


class AnalyzerMethods:
    _coll: Any

    def run_analyzer(
        self,
        texts: str | list[str],
        analyzer_params: dict[str, Any] | str | None = None,
        with_hash: bool = False,
        with_detail: bool = False,
        collection_name: str | None = None,
        field_name: str | None = None,
        timeout: float | None = None,
        **kwargs: Any,
    ) -> AnalyzeResult | list[AnalyzeResult]:
        """Tokens of ``texts`` (one result per text; one result for one string)."""
        if collection_name and field_name:
            schema = self._coll(collection_name).schema
            if field_name not in schema:
                raise InvalidArgumentError(f"field {field_name!r} not found in collection "
                                           f"{collection_name!r}")  # fmt: skip
            an = field_analyzer(schema.field(field_name))
        else:
            an = analyzer(analyzer_params)
        items = [texts] if isinstance(texts, str) else list(texts)
        out = [AnalyzeResult(analyze(an, t, with_hash, with_detail)) for t in items]
        return out[0] if isinstance(texts, str) else out


def analyze(an: Any, text: str, with_hash: bool, with_detail: bool) -> list[Any]:
    """One text's tokens as ``run_analyzer`` returns them."""
    if not isinstance(text, str):
        raise InvalidArgumentError(f"run_analyzer takes text, got {type(text).__name__}")
    if not with_hash and not with_detail:
        return an.tokens(text)
    out = []
    for d in an.detail(text):
        item = {"token": d["token"]}
        if with_detail:
            item.update({k: d[k] for k in ("start_offset", "end_offset", "position",
                                           "position_length")})  # fmt: skip
        if with_hash:
            item["hash"] = functions.term_id(d["token"])
        out.append(item)
    return out
