"""Filtered search keeps recall at every selectivity, including filters correlated with
the vectors (the hard case for graphs and IVF lists): the widened ``ef``/``nprobe`` and the
cost rule that hands a filter to an exact scan when that is no dearer."""

from __future__ import annotations

import numpy as np
import pytest

from gpuvec.index.registry import build_index
from gpuvec.index.search import exact_cheaper

N, DIM, K = 12_000, 24, 10


@pytest.fixture(scope="module")
def data() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(7)
    centers = rng.standard_normal((60, DIM)) * 3
    x = centers[rng.integers(0, 60, N)] + rng.standard_normal((N, DIM))
    q = centers[rng.integers(0, 60, 100)] + rng.standard_normal((100, DIM))
    return x.astype(np.float32), q.astype(np.float32)


def _recall(rows: np.ndarray, ref: np.ndarray) -> float:
    return float(np.mean([len(set(a) & set(b)) / K for a, b in zip(rows, ref, strict=True)]))


@pytest.mark.parametrize(
    "itype,build,search",
    [("HNSW", {"M": 16, "efConstruction": 100}, {"ef": 48}),
     ("IVF_FLAT", {"nlist": 128}, {"nprobe": 16})],
)  # fmt: skip
@pytest.mark.parametrize("passing", [0.05, 0.1, 0.2, 0.3, 0.5])
def test_correlated_filter_recall(
    data: tuple[np.ndarray, np.ndarray], itype: str, build: dict, search: dict, passing: float
) -> None:
    x, q = data
    idx = build_index(x, "L2", itype, build)
    d2 = ((q[:, None, :] - x[None]) ** 2).sum(-1)
    _, rows = idx.search(q, K, search)
    assert _recall(rows, np.argsort(d2, axis=1)[:, :K]) >= 0.95  # the operating point
    # a half-space filter: whole regions of the space pass or fail together
    proj = x[:, 0] + x[:, 1]
    valid = proj < np.quantile(proj, passing)
    ref = np.argsort(np.where(valid[None], d2, np.inf), axis=1)[:, :K]
    _, got = idx.search(q, K, search, valid=valid, base=x, valid_key=("half", passing))
    assert valid[got[got >= 0]].all()
    assert _recall(got, ref) >= 0.95, (itype, passing)


def test_cost_rule() -> None:
    # HNSW: scan when the passing rows cost less than the walk's random-access distances
    assert exact_cheaper("HNSW", 100_000, 20_000, 50, ef=480, M=16)
    assert not exact_cheaper("HNSW", 100_000, 50_000, 50, ef=192, M=16)
    # higher dims shrink the random-access penalty: the same walk loses to fewer rows
    assert exact_cheaper("HNSW", 100_000, 30_000, 50, ef=320, M=16)
    assert not exact_cheaper("HNSW", 100_000, 30_000, 384, ef=320, M=16)
    # IVF: scan when the passing rows are at most twice the list entries read
    assert exact_cheaper("IVF", 100_000, 20_000, 50, nprobe=143, nlist=1264)
    assert not exact_cheaper("IVF", 100_000, 50_000, 50, nprobe=181, nlist=1264)
    # degenerate counts
    assert exact_cheaper("HNSW", 1000, 0, 8, ef=10, M=8)
    assert not exact_cheaper("IVF", 1000, 1000, 8, nprobe=1, nlist=10)
