"""Fusing the results of a hybrid search's requests into one ranking, as Milvus does.

* **RRF** (``RRFRanker(k)``): a hit's score is the sum over the requests that returned it
  of ``1 / (k + rank)``, rank counted from 1; ``k`` in (0, 16384), default 60.
* **Weighted** (``WeightedRanker(*weights, norm_score=True)``): the sum of
  ``weight_i × f(score_i)``; one weight per request, each in [0, 1]. With ``norm_score``,
  ``f`` maps each metric's score into [0, 1] with larger better — COSINE ``(1 + s) / 2``,
  IP ``0.5 + atan(s) / π``, L2 (a distance) ``1 − 2·atan(d) / π``; without it the scores
  are taken as they are, a distance still turned by ``1 − 2·atan(d) / π`` so that larger
  is better for every request.

A hit returned by several requests is one hit (its primary key); the fused list is sorted
by score, descending, ties by key.
"""

from __future__ import annotations

import math
from typing import Any

from gpuvec.errors import InvalidArgumentError

RRF_K_DEFAULT = 60.0


def ranker_spec(ranker: Any, requests: int) -> tuple[str, dict[str, Any]]:
    """``(strategy, params)`` of a pymilvus ranker (``RRFRanker``, ``WeightedRanker``) or
    of its ``dict()`` form; checked against the number of requests."""
    spec = ranker.dict() if hasattr(ranker, "dict") else ranker
    if not isinstance(spec, dict) or "strategy" not in spec:
        raise InvalidArgumentError(
            f"hybrid_search: ranker must be an RRFRanker or a WeightedRanker, got {ranker!r:.80}"
        )
    strategy = str(spec["strategy"]).lower()
    params = dict(spec.get("params") or {})
    if strategy == "rrf":
        k = float(params.get("k", RRF_K_DEFAULT))
        if not 0 < k < 16384:
            raise InvalidArgumentError(f"The rank params k should be in range (0, 16384), got {k}")
        return "rrf", {"k": k}
    if strategy == "weighted":
        weights = [float(w) for w in params.get("weights", [])]
        if len(weights) != requests:
            raise InvalidArgumentError(
                f"the length of weights param mismatch with ann search requests: invalid "
                f"parameter[expected={requests}][actual={len(weights)}]"
            )
        bad = [w for w in weights if not 0 <= w <= 1]
        if bad:
            raise InvalidArgumentError(f"rank param weight should be in range [0, 1], got {bad[0]}")
        return "weighted", {"weights": weights, "norm_score": bool(params.get("norm_score", True))}
    raise InvalidArgumentError(f"unsupported rank type {spec['strategy']!r} (rrf, weighted)")


def _score_fn(metric: str, norm: bool) -> Any:
    metric = metric.upper()
    if metric == "COSINE":
        return (lambda s: (1 + s) * 0.5) if norm else (lambda s: s)
    if metric == "IP":
        return (lambda s: 0.5 + math.atan(s) / math.pi) if norm else (lambda s: s)
    return lambda d: 1.0 - 2 * math.atan(d) / math.pi  # distances: larger is better after


def fuse(
    results: list[list[dict[str, Any]]], metrics: list[str], strategy: str,
    params: dict[str, Any], limit: int, offset: int = 0,
) -> list[dict[str, Any]]:  # fmt: skip
    """One query's hits of every request (best first, ``{"id", "distance", "entity"}``)
    → the fused hits ``[offset, offset + limit)``, ``distance`` the fused score."""
    score: dict[Any, float] = {}
    entity: dict[Any, dict[str, Any]] = {}
    for r, hits in enumerate(results):
        fn = None if strategy == "rrf" else _score_fn(metrics[r], params["norm_score"])
        for rank, hit in enumerate(hits, start=1):
            key = hit["id"]
            if strategy == "rrf":
                part = 1.0 / (params["k"] + rank)
            else:
                part = params["weights"][r] * fn(float(hit["distance"]))  # type: ignore[misc]
            score[key] = score.get(key, 0.0) + part
            entity.setdefault(key, hit.get("entity", {}))
    order = sorted(score, key=lambda k: (-score[k], k))  # ties: by primary key
    return [{"id": k, "distance": float(score[k]), "entity": entity[k]}
            for k in order[offset : offset + limit]]  # fmt: skip
