"""Index builds in the engine: sealed segments get their index files from Dask data-node
tasks, the query node swaps them in, searches keep answering throughout and stay close to
brute force; growing data is still searched by brute force."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest

from gpuvec import MilvusClient
from gpuvec.config import Config
from gpuvec.errors import InvalidArgumentError

DIM = 16


def clustered(n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centers = rng.standard_normal((32, DIM)) * 4
    return (centers[rng.integers(0, 32, n)] + rng.standard_normal((n, DIM))).astype(np.float32)


def brute(base: np.ndarray, q: np.ndarray, k: int, metric: str) -> np.ndarray:
    if metric == "L2":
        d = ((base[None] - q[:, None]) ** 2).sum(-1)
        return np.argsort(d, axis=1, kind="stable")[:, :k]
    if metric == "COSINE":
        base = base / np.linalg.norm(base, axis=1, keepdims=True)
        q = q / np.linalg.norm(q, axis=1, keepdims=True)
    return np.argsort(-(q @ base.T), axis=1, kind="stable")[:, :k]


def recall(res: list, ref: np.ndarray) -> float:
    return float(np.mean([len({h["id"] for h in hits} & set(r)) / len(r) for hits, r in
                          zip(res, ref, strict=True)]))  # fmt: skip


@pytest.fixture(scope="module")
def cfg() -> Config:
    return Config(seal_idle_s=3600, datanode_processes=False, index_min_rows=500,
                  dashboard_address="")  # fmt: skip


@pytest.mark.parametrize(
    "itype,params,search",
    [
        ("HNSW", {"M": 16, "efConstruction": 100}, {"ef": 64}),
        ("IVF_FLAT", {"nlist": 32}, {"nprobe": 8}),
        ("IVF_SQ8", {"nlist": 32}, {"nprobe": 8}),
        ("IVF_PQ", {"nlist": 32, "m": 4}, {"nprobe": 8}),
        ("AUTOINDEX", {}, {}),
        ("GPU_CAGRA", {}, {}),
    ],
)
@pytest.mark.parametrize("metric", ["L2", "IP", "COSINE"])
def test_index_built_and_served(
    tmp_path: Path, cfg: Config, itype: str, params: dict, search: dict, metric: str
) -> None:
    base = clustered(4000, 1)
    qs = clustered(20, 2)
    c = MilvusClient(str(tmp_path / "db"), config=cfg)
    try:
        idx = c.prepare_index_params()
        idx.add_index("vector", index_type=itype, metric_type=metric, params=params)
        c.create_collection("c", schema=_schema(), index_params=idx)
        c.insert("c", [{"id": i, "vector": base[i], "tag": i % 10} for i in range(3000)])
        c.flush("c")
        c.insert("c", [{"id": i, "vector": base[i], "tag": i % 10} for i in range(3000, 4000)])
        assert c._engine.wait_for_indexes("c", timeout=60)
        info = c.describe_index("c", "vector")
        assert info["indexed_segments"] == info["sealed_segments"] == 1
        assert "faiss" in info["backend"] or itype in ("FLAT",), info
        sp = {"metric_type": metric, "params": search}
        res = c.search("c", data=qs, limit=10, search_params=sp)
        floor = 0.5 if itype == "IVF_PQ" else 0.8  # approximate: IP on raw vectors is hardest
        assert recall(res, brute(base, qs, 10, metric)) >= floor
        res = c.search("c", data=qs, limit=10, search_params=sp, filter="tag == 3")
        allowed = np.flatnonzero(np.arange(4000) % 10 == 3)
        ref = allowed[brute(base[allowed], qs, 10, metric)]
        assert all(h["id"] % 10 == 3 for hits in res for h in hits)
        assert recall(res, ref) >= (0.6 if itype == "IVF_PQ" else 0.95)
    finally:
        c.close()


def _schema():  # type: ignore[no-untyped-def]
    from gpuvec.schema import DataType

    s = MilvusClient.create_schema()
    s.add_field("id", DataType.INT64, is_primary=True)
    s.add_field("vector", DataType.FLOAT_VECTOR, dim=DIM)
    s.add_field("tag", DataType.INT64)
    return s


def test_index_survives_restart_and_redefinition(tmp_path: Path, cfg: Config) -> None:
    base = clustered(2000, 3)
    c = MilvusClient(str(tmp_path / "db"), config=cfg)
    try:
        idx = c.prepare_index_params()
        idx.add_index("vector", index_type="HNSW", metric_type="L2", params={"M": 8})
        c.create_collection("c", schema=_schema(), index_params=idx)
        c.insert("c", [{"id": i, "vector": base[i], "tag": 0} for i in range(2000)])
        c.flush("c")
        assert c._engine.wait_for_indexes("c", timeout=60)
    finally:
        c.close()
    c = MilvusClient(str(tmp_path / "db"), config=cfg)
    try:  # reopened: the committed index file is loaded, not rebuilt
        assert c.describe_index("c", "vector")["indexed_segments"] == 1
        idx = c.prepare_index_params()
        idx.add_index("vector", index_type="IVF_FLAT", metric_type="L2", params={"nlist": 16})
        with pytest.raises(InvalidArgumentError, match="one distinct index"):
            c.create_index("c", idx)
        with pytest.raises(InvalidArgumentError, match="release"):
            c.drop_index("c", "vector")
        c.release_collection("c")
        c.drop_index("c", "vector")
        assert c.list_indexes("c") == []
        c.drop_index("c", "vector")  # a missing index: a harmless repeat, as in Milvus
        assert c.list_indexes("c") == []
        c.create_index("c", idx)
        c.load_collection("c")
        assert c._engine.wait_for_indexes("c", timeout=60)
        info = c.describe_index("c", "vector")
        assert info["index_type"] == "IVF_FLAT" and "IVF16" in info["backend"], info
    finally:
        c.close()


@pytest.mark.parametrize("metric", ["L2", "IP", "COSINE"])
def test_range_search_over_indexed_and_growing(tmp_path: Path, cfg: Config, metric: str) -> None:
    """radius / range_filter as Milvus: L2 keeps range_filter <= d < radius, IP/COSINE keep
    radius < s <= range_filter; the best ``limit`` inside the range, exact here."""
    base = clustered(3000, 5)
    q = clustered(4, 6)
    c = MilvusClient(str(tmp_path / "db"), config=cfg)
    try:
        idx = c.prepare_index_params()
        idx.add_index("vector", index_type="IVF_FLAT", metric_type=metric, params={"nlist": 8})
        c.create_collection("c", schema=_schema(), index_params=idx)
        c.insert("c", [{"id": i, "vector": base[i], "tag": 0} for i in range(2000)])
        c.flush("c")
        c.insert("c", [{"id": i, "vector": base[i], "tag": 0} for i in range(2000, 3000)])
        assert c._engine.wait_for_indexes("c", timeout=60)
        b = base.astype(np.float64)
        qq = q.astype(np.float64)
        if metric == "L2":
            d = ((b[None] - qq[:, None]) ** 2).sum(-1)
            lo, hi = np.quantile(d, 0.01), np.quantile(d, 0.05)
            params, inside = {"radius": hi, "range_filter": lo}, (d >= lo) & (d < hi)
            order = np.argsort(np.where(inside, d, np.inf), axis=1, kind="stable")
        else:
            if metric == "COSINE":
                b = b / np.linalg.norm(b, axis=1, keepdims=True)
                qq = qq / np.linalg.norm(qq, axis=1, keepdims=True)
            d = qq @ b.T
            lo, hi = np.quantile(d, 0.95), np.quantile(d, 0.99)
            params, inside = {"radius": lo, "range_filter": hi}, (d > lo) & (d <= hi)
            order = np.argsort(np.where(inside, -d, np.inf), axis=1, kind="stable")
        sp = {"metric_type": metric, "params": {**params, "nprobe": 8}}
        res = c.search("c", data=q, limit=20, search_params=sp)
        for i, hits in enumerate(res):
            want = [int(r) for r in order[i, :20] if inside[i, r]]
            assert len(hits) == len(want)
            assert len({h["id"] for h in hits} & set(want)) >= 0.95 * len(want)
            assert all(inside[i, h["id"]] for h in hits)
        with pytest.raises(InvalidArgumentError, match="range"):
            c.search("c", data=q, limit=5, search_params={"params": {"radius": "far"}})
    finally:
        c.close()


def test_failing_build_registers_nothing(
    tmp_path: Path, cfg: Config, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A build that raises (after Dask's retries) leaves no index record; brute force keeps
    serving exact results."""
    from gpuvec.coord import indexing

    tries = tmp_path / "tries"

    def broken(*args: object) -> dict:  # pickled by value: count tries in a file
        with open(tries, "a") as f:
            f.write("x")
        raise RuntimeError("disk full while writing the index file")

    monkeypatch.setattr(indexing, "build_index_task", broken)
    base = clustered(1500, 7)
    c = MilvusClient(str(tmp_path / "db"), config=cfg)
    try:
        idx = c.prepare_index_params()
        idx.add_index("vector", index_type="HNSW", metric_type="L2", params={"M": 8})
        c.create_collection("c", schema=_schema(), index_params=idx)
        c.insert("c", [{"id": i, "vector": base[i], "tag": 0} for i in range(1500)])
        c.flush("c")
        eng = c._engine
        eng.indexer.schedule(eng.get("c").meta)
        deadline = time.monotonic() + 30
        while not eng.indexer.failed and time.monotonic() < deadline:
            time.sleep(0.05)
        assert eng.indexer.failed and "disk full" in next(iter(eng.indexer.failed.values()))[0]
        assert tries.read_text() == "xxx"  # the first try and Dask's two retries
        assert eng.catalog.segment_indexes(eng.get("c").meta.id) == {}
        assert c.describe_index("c", "vector")["indexed_segments"] == 0
        res = c.search("c", data=base[:5], limit=1)
        assert [r[0]["id"] for r in res] == [0, 1, 2, 3, 4]
    finally:
        c.close()
