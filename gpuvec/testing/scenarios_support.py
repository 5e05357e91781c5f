"""Helpers of the end-to-end scenario suites (:mod:`gpuvec.testing.scenarios_data`,
:mod:`gpuvec.testing.scenarios_collections`, :mod:`gpuvec.testing.scenarios_endpoint`):
the small data sets they insert, the brute-force reference their searches are checked
against, and runtime-neutral error assertions.

Runtimes raise different exception *types* for the same refusal: pymilvus (against
``gpuvec serve`` or a cluster proxy) raises :class:`pymilvus.MilvusException`, the embedded
``gpuvec.MilvusClient`` raises :class:`gpuvec.errors.GpuvecError` subclasses. Both carry a
Milvus ``code`` and a ``message``; :func:`raises_milvus_error` accepts either.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from pymilvus import MilvusException

from gpuvec.errors import GpuvecError
from gpuvec.testing.knn_reference import ref_knn

DIM = 8
N = 300

MILVUS_ERRORS: tuple[type[BaseException], ...] = (MilvusException, GpuvecError)


def raises_milvus_error(match: str | None = None) -> Any:
    """``pytest.raises`` for a Milvus error of any runtime (``MilvusException`` or
    ``GpuvecError``), optionally matching the message by ``re.search``. The caught
    exception has ``code`` and ``message`` attributes either way."""
    return pytest.raises(MILVUS_ERRORS, match=match)


def data(seed: int = 0, n: int = N) -> tuple[np.ndarray, list[dict]]:
    """``n`` random vectors and the rows of a quick-setup collection holding them: primary
    key ``id``, ``vector`` and the dynamic fields ``tag`` (t0/t1/t2), ``n`` (= id), ``w``."""
    rng = np.random.default_rng(seed)
    vecs = rng.standard_normal((n, DIM)).astype(np.float32)
    rows = [
        {"id": i, "vector": vecs[i].tolist(), "tag": f"t{i % 3}", "n": i, "w": float(i) / 7}
        for i in range(n)
    ]
    return vecs, rows


def rows(n: int, start: int = 0, seed: int = 0) -> list[dict]:
    """``n`` quick-setup rows with ids ``start..start+n-1`` (fields ``tag`` and ``n``)."""
    rng = np.random.default_rng(seed)
    vecs = rng.standard_normal((n, DIM)).astype(np.float32)
    return [
        {"id": start + i, "vector": vecs[i].tolist(), "tag": f"t{(start + i) % 3}", "n": start + i}
        for i in range(n)
    ]


def brute_cosine(vecs: np.ndarray, q: np.ndarray, k: int, keep: np.ndarray | None = None) -> list:
    """Row indices (= ids of :func:`data`) of the ``k`` nearest by cosine similarity, best
    first, among the rows where ``keep`` is true (all when None)."""
    _, idx, _ = ref_knn(vecs, np.asarray(q, dtype=np.float32)[None, :], k, "COSINE", keep)
    return [int(i) for i in idx[0] if i >= 0]


def count(client: Any, collection: str) -> int:
    """``count(*)`` of a collection."""
    return int(client.query(collection, filter="", output_fields=["count(*)"])[0]["count(*)"])


def wait_indexed(milvus: Any, name: str, index: str, rows: int, timeout: float = 120.0) -> None:
    """Until ``describe_index`` reports ``rows`` indexed and state Finished (polled)."""
    import time

    deadline = time.monotonic() + timeout
    while True:
        desc = milvus.describe_index(name, index)
        if int(desc.get("indexed_rows", 0)) >= rows and desc.get("state") == "Finished":
            return
        assert time.monotonic() < deadline, f"index {index} not built: {desc}"
        time.sleep(0.2)
