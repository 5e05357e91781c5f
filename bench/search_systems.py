"""The systems ``bench/search.py`` compares (gpuvec through ``MilvusClient``, raw faiss,
hnswlib, Milvus Lite), each behind one small ``System`` interface: build, then search at a
sweep parameter."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

K = 10
SYSTEMS = ("gpuvec", "faiss", "hnswlib", "milvus-lite")

Search = Callable[[np.ndarray], np.ndarray]  # queries [nq, d] -> ids [nq, K]


def ids_of(res: Any) -> np.ndarray:
    """Milvus search result (list per query of hit dicts) → [nq, K] ids, -1 padded."""
    out = np.full((len(res), K), -1, np.int64)
    for i, hits in enumerate(res):
        got = [h["id"] for h in hits][:K]
        out[i, : len(got)] = got
    return out


class System:
    """One engine under test: ``build`` once per index type, then ``searcher(param)``."""

    name = ""
    b1_queries: int | None = None  # None: args.b1_queries
    b100_queries: int | None = None
    build_s: float = 0.0
    info: dict[str, Any]

    def searcher(self, param: int, batch: int, mask: np.ndarray | None = None) -> Search:
        raise NotImplementedError

    def close(self) -> None:
        pass


def _milvus_schema(dim: int, lite: bool) -> Any:
    """The benchmark schema, built by gpuvec's or pymilvus's client (each takes its own)."""
    if lite:
        from pymilvus import DataType, MilvusClient
    else:
        from gpuvec import DataType, MilvusClient

    s = MilvusClient.create_schema(auto_id=False)
    s.add_field("id", DataType.INT64, is_primary=True)
    s.add_field("vector", DataType.FLOAT_VECTOR, dim=dim)
    s.add_field("attr", DataType.INT64)
    return s


def _rows(base: np.ndarray, attr: np.ndarray, start: int, stop: int) -> list[dict]:
    return [{"id": i, "vector": base[i], "attr": int(attr[i])} for i in range(start, stop)]


def _param_name(itype: str) -> str:
    return "ef" if itype == "HNSW" else "nprobe"


class GpuvecSystem(System):
    name = "gpuvec"

    def __init__(self, root: str, data: dict[str, Any], itype: str, build: dict[str, int]) -> None:
        from gpuvec import MilvusClient
        from gpuvec.config import Config

        self.itype, self.metric = itype, "COSINE" if data["metric"] == "ip" else "L2"
        cfg = Config(seal_idle_s=3600, seal_rows=10**7, dashboard_address="")
        self.client = MilvusClient(root, config=cfg)
        base, attr = data["base"], data["attr"]
        idx = self.client.prepare_index_params()
        idx.add_index("vector", index_type=itype, metric_type=self.metric, params=build)
        self.client.create_collection(
            "b", schema=_milvus_schema(base.shape[1], False), index_params=idx
        )
        t0 = time.perf_counter()
        for s in tqdm(range(0, len(base), 10_000), desc=f"gpuvec {itype} insert", leave=False):
            self.client.insert("b", _rows(base, attr, s, min(s + 10_000, len(base))))
        self.insert_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        self.client.flush("b")
        if not self.client._engine.wait_for_indexes("b", timeout=3600):
            raise RuntimeError("gpuvec index build did not finish within an hour")
        self.build_s = time.perf_counter() - t0
        self.info = {
            "insert_s": self.insert_s,
            "describe_index": self.client.describe_index("b", "vector"),
        }

    def searcher(self, param: int, batch: int, mask: np.ndarray | None = None) -> Search:
        sp = {"metric_type": self.metric, "params": {_param_name(self.itype): param}}
        flt = getattr(self, "filter_expr", "") if mask is not None else ""

        def fn(q: np.ndarray) -> np.ndarray:
            return ids_of(self.client.search("b", data=q, limit=K, search_params=sp, filter=flt))

        return fn

    def close(self) -> None:
        self.client.close()


class FaissSystem(System):
    name = "faiss"

    def __init__(self, data: dict[str, Any], itype: str, build: dict[str, int]) -> None:
        import faiss

        self.faiss, self.itype = faiss, itype
        base = data["base"]
        d = base.shape[1]
        fm = faiss.METRIC_INNER_PRODUCT if data["metric"] == "ip" else faiss.METRIC_L2
        self.max_threads = faiss.omp_get_max_threads()
        t0 = time.perf_counter()
        if itype == "HNSW":
            self.index = faiss.IndexHNSWFlat(d, build["M"], fm)
            self.index.hnsw.efConstruction = build["efConstruction"]
        else:
            quant = (
                faiss.IndexFlatIP(d) if fm == faiss.METRIC_INNER_PRODUCT else faiss.IndexFlatL2(d)
            )
            self.index = faiss.IndexIVFFlat(quant, d, build["nlist"], fm)
            self.index.train(base)
            self._quant = quant
        self.index.add(base)
        self.build_s = time.perf_counter() - t0
        self.info = {"index": type(self.index).__name__, "threads": self.max_threads}

    def searcher(self, param: int, batch: int, mask: np.ndarray | None = None) -> Search:
        faiss = self.faiss
        if self.itype == "HNSW":
            sp = faiss.SearchParametersHNSW()
            sp.efSearch = param
        else:
            sp = faiss.SearchParametersIVF()
            sp.nprobe = param
        bits = None  # the selector points into it: kept alive by the closure below
        if mask is not None:
            bits = np.packbits(mask, bitorder="little")
            sp.sel = faiss.IDSelectorBitmap(len(mask), faiss.swig_ptr(bits))
        threads = 1 if batch < 16 else self.max_threads

        def fn(q: np.ndarray) -> np.ndarray:
            _ = bits  # the selector reads these bytes: hold them while searching
            faiss.omp_set_num_threads(threads)
            try:
                return self.index.search(q, K, params=sp)[1]
            finally:
                faiss.omp_set_num_threads(self.max_threads)

        return fn


class HnswlibSystem(System):
    name = "hnswlib"

    def __init__(self, data: dict[str, Any], build: dict[str, int]) -> None:
        import hnswlib

        base = data["base"]
        self.index = hnswlib.Index(
            space="ip" if data["metric"] == "ip" else "l2", dim=base.shape[1]
        )
        t0 = time.perf_counter()
        self.index.init_index(
            max_elements=len(base), ef_construction=build["efConstruction"], M=build["M"]
        )
        self.index.add_items(base, np.arange(len(base)), num_threads=-1)
        self.build_s = time.perf_counter() - t0
        self.info = {"version": metadata.version("hnswlib")}

    def searcher(self, param: int, batch: int, mask: np.ndarray | None = None) -> Search:
        if mask is not None:
            raise NotImplementedError("hnswlib filters call back into Python per node")
        threads = 1 if batch < 16 else -1

        def fn(q: np.ndarray) -> np.ndarray:
            self.index.set_ef(max(param, K))
            return self.index.knn_query(q, k=K, num_threads=threads)[0].astype(np.int64)

        return fn


class LiteSystem(System):
    """Milvus Lite: one collection, inserted once; ``reindex`` swaps the index type."""

    name = "milvus-lite"

    def __init__(self, root: str, data: dict[str, Any], b1: int, b100: int) -> None:
        from pymilvus import MilvusClient as LiteClient

        self.b1_queries, self.b100_queries = b1, b100
        self.metric = "COSINE" if data["metric"] == "ip" else "L2"
        self.client = LiteClient(str(Path(root) / "lite.db"))
        base, attr = data["base"], data["attr"]
        self.client.create_collection("b", schema=_milvus_schema(base.shape[1], True))
        t0 = time.perf_counter()
        for s in tqdm(range(0, len(base), 10_000), desc="milvus-lite insert", leave=False):
            self.client.insert("b", _rows(base, attr, s, min(s + 10_000, len(base))))
        self.client.flush("b")
        self.insert_s = time.perf_counter() - t0
        self.itype = ""
        self.info = {"insert_s": self.insert_s, "accepted": {}}

    def reindex(self, itype: str, build: dict[str, int]) -> None:
        c = self.client
        with contextlib.suppress(Exception):  # not loaded yet
            c.release_collection("b")
        if self.itype:
            c.drop_index("b", "vector")
        idx = c.prepare_index_params()
        idx.add_index("vector", index_type=itype, metric_type=self.metric, params=build)
        t0 = time.perf_counter()
        c.create_index("b", idx)
        c.load_collection("b")
        self.build_s = time.perf_counter() - t0
        self.itype = itype
        self.info["accepted"][itype] = c.describe_index("b", "vector")

    def searcher(self, param: int, batch: int, mask: np.ndarray | None = None) -> Search:
        sp = {"metric_type": self.metric, "params": {_param_name(self.itype): param}}
        flt = getattr(self, "filter_expr", "") if mask is not None else ""

        def fn(q: np.ndarray) -> np.ndarray:
            res = self.client.search("b", data=q.tolist(), limit=K, search_params=sp, filter=flt)
            return ids_of(res)

        return fn

    def close(self) -> None:
        self.client.close()


# --- the run -----------------------------------------------------------------------------------
