"""Reference k-NN for tests: a float64 full-matrix brute force and the assertion that a
result matches it (distances close; indices equal except between near-equal distances).
Shared by the CPU (``tests/unit``) and GPU (``tests/gpu``) suites of ``gpuvec.ops``."""

from __future__ import annotations

import numpy as np

from gpuvec.ops import pad_value


def ref_scores(base: np.ndarray, queries: np.ndarray, metric: str) -> np.ndarray:
    """Reported distances [nq, n] in float64: squared L2, inner product or cosine."""
    b = base.astype(np.float64)
    q = queries.astype(np.float64)
    if metric == "L2":
        return np.stack([((b - qi) ** 2).sum(axis=1) for qi in q])
    if metric == "COSINE":
        bn = np.linalg.norm(b, axis=1, keepdims=True)
        qn = np.linalg.norm(q, axis=1, keepdims=True)
        b = np.divide(b, bn, out=np.zeros_like(b), where=bn > 0)
        q = np.divide(q, qn, out=np.zeros_like(q), where=qn > 0)
    return q @ b.T


def ref_knn(
    base: np.ndarray, queries: np.ndarray, k: int, metric: str, valid: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(dist [nq, k], idx [nq, k], all scores [nq, n]) with -1/pad for empty slots."""
    scores = ref_scores(base, queries, metric)
    key = scores if metric == "L2" else -scores
    if valid is not None:
        key = np.where(valid[None, :], key, np.inf)
    order = np.argsort(key, axis=1, kind="stable")  # excluded rows (inf) sort last
    nq, n = key.shape
    dist = np.full((nq, k), pad_value(metric))
    idx = np.full((nq, k), -1, dtype=np.int64)
    top = order[:, : min(k, n)]
    hit = np.isfinite(np.take_along_axis(key, top, 1))
    idx[:, : top.shape[1]] = np.where(hit, top, -1)
    dist[:, : top.shape[1]] = np.where(hit, np.take_along_axis(scores, top, 1), pad_value(metric))
    return dist, idx, scores


def tolerance(base: np.ndarray, queries: np.ndarray, metric: str) -> float:
    """Absolute error a float32 GEMM may make on these inputs."""
    bn = float(np.max(np.einsum("ij,ij->i", base, base), initial=0.0))
    qn = float(np.max(np.einsum("ij,ij->i", queries, queries), initial=0.0))
    if metric == "L2":
        return 1e-4 * (bn + qn + 1.0)
    if metric == "IP":
        return 1e-4 * (np.sqrt(bn * qn) + 1.0)
    return 1e-4


def assert_matches(
    got: tuple[np.ndarray, np.ndarray],
    ref: tuple[np.ndarray, np.ndarray, np.ndarray],
    tol: float,
    valid: np.ndarray | None = None,
) -> None:
    """Distances close; indices equal wherever the reference has no near-tie there."""
    gd, gi = got
    rd, ri, scores = ref
    assert isinstance(gd, np.ndarray) and isinstance(gi, np.ndarray), "results must be on the host"
    assert gd.dtype == np.float32 and gi.dtype == np.int64 and gd.shape == rd.shape
    np.testing.assert_array_equal(gi < 0, ri < 0)  # same number of hits, padding last
    pad = rd[ri < 0]
    np.testing.assert_array_equal(gd[gi < 0], pad)
    hit = ri >= 0
    np.testing.assert_allclose(gd[hit], rd[hit], rtol=1e-4, atol=tol)
    for r in range(gi.shape[0]):
        row = gi[r][gi[r] >= 0]
        assert len(set(row.tolist())) == len(row), "duplicate index in a row"
        if valid is not None:
            assert valid[row].all(), "a masked row was returned"
        for j in np.flatnonzero(gi[r] != ri[r]):
            # a swap is only allowed between (near-)equal reference distances
            assert abs(scores[r, gi[r, j]] - rd[r, j]) <= tol + 1e-4 * abs(rd[r, j]), (r, j)


def data(seed: int, n: int, d: int, nq: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return (
        rng.standard_normal((n, d), dtype=np.float32),
        rng.standard_normal((nq, d), dtype=np.float32),
    )


def mask(seed: int, n: int, kind: str) -> np.ndarray | None:
    rng = np.random.default_rng(seed + 1000)
    return {
        "none": None,
        "half": rng.random(n) < 0.5,
        "sparse": rng.random(n) < 0.01,
        "all_false": np.zeros(n, dtype=bool),
        "all_true": np.ones(n, dtype=bool),
    }[kind]
