"""Measurement helpers of ``bench/cluster.py``: the exact top 10, search runs (batch-1
latency, batch-100 QPS, concurrent batch-1 clients) with recall, the cluster's per-request
breakdown (a second proxy in this process whose etcd, TSO and Flight calls are counted and
timed) and a load-average sampler. Nothing here starts or stops servers."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

K = 10
LEVELS = ("Strong", "Bounded")
NAME = "bench"


def exact_topk(base: np.ndarray, q: np.ndarray, metric: str, k: int = K) -> np.ndarray:
    """Ids of the exact top ``k`` by brute force (NumPy), COSINE or L2."""
    if metric == "COSINE":
        b = base / np.maximum(np.linalg.norm(base, axis=1, keepdims=True), 1e-12)
        qq = q / np.maximum(np.linalg.norm(q, axis=1, keepdims=True), 1e-12)
        score = -(qq @ b.T)
    else:  # ||b||² − 2 q·b orders rows as ||q − b||² does
        score = np.einsum("ij,ij->i", base, base)[None, :] - 2.0 * (q @ base.T)
    part = np.argpartition(score, k, axis=1)[:, :k]
    order = np.argsort(np.take_along_axis(score, part, axis=1), axis=1)
    return np.take_along_axis(part, order, axis=1)


def recall(ids: np.ndarray, gt: np.ndarray) -> float:
    hits = sum(len(np.intersect1d(a[a >= 0], g)) for a, g in zip(ids, gt, strict=True))
    return hits / gt.size


def _search(client: Any, q: np.ndarray, batch: int, level: str, sp: dict) -> tuple:
    """(ids [n, K], per-call seconds) of searching ``q`` in batches of ``batch``."""
    ids = np.full((len(q), K), -1, np.int64)
    lat = []
    for s in range(0, len(q), batch):
        chunk = q[s : s + batch].tolist()
        t0 = time.perf_counter()
        res = client.search(NAME, chunk, limit=K, search_params=sp, consistency_level=level)
        lat.append(time.perf_counter() - t0)
        for i, hits in enumerate(res):
            got = [h["id"] for h in hits][:K]
            ids[s + i, : len(got)] = got
    return ids, lat


def _stats(lat: list[float], n: int, wall: float | None = None) -> dict[str, float]:
    ms = np.array(lat) * 1e3
    return {
        "qps": n / (wall if wall is not None else sum(lat)),
        "p50_ms": float(np.percentile(ms, 50)),
        "p99_ms": float(np.percentile(ms, 99)),
        "mean_ms": float(ms.mean()),
    }


def _concurrent(
    make_client: Callable[[], Any], q: np.ndarray, level: str, sp: dict, threads: int
) -> tuple[dict[str, float], np.ndarray]:
    """``threads`` clients, each its own connection, batch 1 over ``q[t::threads]``,
    released together; QPS = all queries / wall time of the slowest."""
    clients = [make_client() for _ in range(threads)]
    lat: list[list[float]] = [[] for _ in range(threads)]
    ids = np.full((len(q), K), -1, np.int64)
    errors: list[BaseException] = []
    gate = threading.Barrier(threads + 1)

    def work(t: int) -> None:
        try:
            _search(clients[t], q[t : t + 1], 1, level, sp)  # warm this connection
            gate.wait()
            got, lat[t] = _search(clients[t], q[t::threads], 1, level, sp)
            ids[t::threads] = got
        except BaseException as e:
            errors.append(e)
            with contextlib.suppress(threading.BrokenBarrierError):
                gate.abort()

    workers = [threading.Thread(target=work, args=(t,)) for t in range(threads)]
    for w in workers:
        w.start()
    with contextlib.suppress(threading.BrokenBarrierError):
        gate.wait()
    t0 = time.perf_counter()
    for w in workers:
        w.join()
    wall = time.perf_counter() - t0
    for c in clients:
        with contextlib.suppress(Exception):
            c.close()
    if errors:
        raise errors[0]
    return {**_stats([x for xs in lat for x in xs], len(q), wall), "threads": threads}, ids


def measure(
    make_client: Callable[[], Any],
    q: np.ndarray,
    gt: np.ndarray,
    sp: dict,
    label: str,
    threads: int,
    shared: bool = False,
) -> dict[str, Any]:
    """Batch 1 (sequential), batch 100 (best of 3) and ``threads`` concurrent batch-1
    clients, at each consistency level, with recall@10. ``shared``: ``make_client``
    returns one client that every thread uses (the embedded runtime)."""
    client = make_client()
    out: dict[str, Any] = {}
    try:
        _search(client, q[: min(20, len(q))], 1, "Bounded", sp)  # warm up
        for level in LEVELS:
            ids, lat = _search(client, q, 1, level, sp)
            b1 = {**_stats(lat, len(q)), "recall": recall(ids, gt)}
            best: tuple[float, list[float], np.ndarray] | None = None
            for _ in range(3):
                ids, lat = _search(client, q, 100, level, sp)
                if best is None or sum(lat) < best[0]:
                    best = (sum(lat), lat, ids)
            assert best is not None
            b100 = {**_stats(best[1], len(q)), "recall": recall(best[2], gt)}
            factory = (lambda: _Shared(client)) if shared else make_client
            conc, ids = _concurrent(factory, q, level, sp, threads)
            conc["recall"] = recall(ids, gt)
            out[level] = {"b1": b1, "b100": b100, "concurrent": conc}
            print(
                f"  {label:<11} {level:<8} b1 {b1['qps']:7.1f} QPS p50 {b1['p50_ms']:6.2f} ms "
                f"p99 {b1['p99_ms']:6.2f} ms | b100 {b100['qps']:8.0f} q/s | "
                f"{threads} clients {conc['qps']:7.1f} QPS | recall {b1['recall']:.3f}",
                flush=True,
            )
    finally:
        if not shared:
            client.close()
    return out


class _Shared:
    """One embedded client handed to several threads; ``close`` leaves it open."""

    def __init__(self, client: Any) -> None:
        self.search = client.search

    def close(self) -> None:
        pass


# --- the cluster's per-request overhead ---------------------------------------------------
class _Counter:
    """Records (kind, start, end) of every wrapped call."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, float, float]] = []
        self.handler: dict[str, list[float]] = {}  # seconds inside the node, per Flight call

    def timed(self, key: str, fn: Callable[..., Any], *a: Any, **kw: Any) -> Any:
        t0 = time.perf_counter()
        try:
            return fn(*a, **kw)
        finally:
            self.calls.append((key, t0, time.perf_counter()))

    def wrap(self, key: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        return lambda *a, **kw: self.timed(key, fn, *a, **kw)


def _covered(intervals: list[tuple[float, float]]) -> float:
    """Seconds covered by at least one of ``intervals`` (overlapping calls count once)."""
    out, end = 0.0, float("-inf")
    for a, b in sorted(intervals):
        if b > end:
            out += b - max(a, end)
            end = b
    return out


def _per_request(counter: _Counter, windows: list[tuple[float, float]]) -> dict[str, Any]:
    """Calls of each kind inside each request's window, averaged over the requests. The
    critical path is the time covered by at least one call (the proxy overlaps the
    streaming-node call, the segment-list read and the query-node calls)."""
    kinds = sorted({k for k, _, _ in counter.calls})
    per: dict[str, dict[str, list[float]]] = {k: {"n": [], "sum": []} for k in kinds}
    path, total = [], []
    for t0, t1 in windows:
        inside = [(k, a, b) for k, a, b in counter.calls if t0 <= a <= t1]
        for k in kinds:
            d = [b - a for kk, a, b in inside if kk == k]
            per[k]["n"].append(len(d))
            per[k]["sum"].append(sum(d))
        path.append(_covered([(a, b) for _, a, b in inside]))
        total.append(t1 - t0)
    calls = {
        k: {"calls_per_request": float(np.mean(v["n"])),
            "ms_per_request": 1e3 * float(np.mean(v["sum"])),
            "ms_per_call": 1e3 * float(np.sum(v["sum"]) / max(1, np.sum(v["n"]))),
            "node_ms_per_call": 1e3 * float(np.mean(counter.handler.get(k) or [0.0]))}
        for k, v in per.items()
    }  # fmt: skip
    return {"requests": len(windows), "p50_ms": 1e3 * float(np.median(total)),
            "mean_ms": 1e3 * float(np.mean(total)), "calls": calls,
            "critical_path_ms": 1e3 * float(np.mean(path)),
            "other_ms": 1e3 * float(np.mean(total) - np.mean(path))}  # fmt: skip


def overhead_breakdown(
    config_path: Path, q: np.ndarray, sp: dict, n: int = 50, inserts: list[list[dict]] | None = None
) -> dict[str, Any]:
    """The RPCs behind one request, through a second proxy started in this process (the
    ``gpuvec proxy`` code: ``ClusterEngine`` behind the Milvus gRPC servicer; a pymilvus
    client): etcd requests, coordinator RPCs and Flight calls to streaming and query nodes
    per batch-1 Bounded search (and per insert of each of ``inserts``, which are written to
    the collection), with their milliseconds, plus the round trip of a no-op Flight call
    (``status``) to each kind of node. "rest" = request − the time covered by calls (they
    overlap): gRPC, protobuf and the proxy's own Python. Client and proxy share this
    process's GIL here, so totals are a little above the real proxy's."""
    from pymilvus import MilvusClient

    from gpuvec.cluster import rpc
    from gpuvec.cluster.proxy import ClusterEngine
    from gpuvec.cluster.sessions import sessions
    from gpuvec.cluster.settings import ClusterSettings
    from gpuvec.server.app import ServerOptions, start_server

    counter = _Counter()
    engine = ClusterEngine(ClusterSettings.load(config_path))
    roles = {i["address"]: r for r in ("streamingnode", "querynode")
             for i in sessions(engine.meta, r).values()}  # fmt: skip
    rtt: dict[str, list[float]] = {}
    for addr, role in roles.items():
        node = rpc.RpcClient(addr)
        for _ in range(21):
            t0 = time.perf_counter()
            node.call("status")
            rtt.setdefault(role, []).append(time.perf_counter() - t0)
        node.close()
    for name in ("get", "range", "txn"):
        setattr(engine.meta, name, counter.wrap(f"etcd {name}", getattr(engine.meta, name)))
    original = rpc.RpcClient.call

    def call(self: Any, method: str, *a: Any, **kw: Any) -> Any:
        key = f"flight {roles.get(self.address, 'coordinator')} {method}"
        out = counter.timed(key, original, self, method, *a, **kw)
        counter.handler.setdefault(key, []).append(rpc.last_server_seconds())
        return out

    rpc.RpcClient.call = call  # type: ignore[method-assign]
    server = start_server("cluster", ServerOptions(port=0, flush_on_stop=False), engine=engine)
    client = MilvusClient(uri=f"http://127.0.0.1:{server.port}", timeout=600)
    out: dict[str, Any] = {}
    try:
        for level in LEVELS:
            _search(client, q[:10], 1, level, sp)  # warm: connections, caches
        counter.calls.clear()
        counter.handler.clear()
        windows = []
        for v in q[:n]:
            t0 = time.perf_counter()
            client.search(NAME, [v.tolist()], limit=K, search_params=sp,
                          consistency_level="Bounded")  # fmt: skip
            windows.append((t0, time.perf_counter()))
        out["search"] = _per_request(counter, windows)
        counter.calls.clear()
        counter.handler.clear()
        windows = []
        for rows in inserts or []:
            t0 = time.perf_counter()
            client.insert(NAME, rows)
            windows.append((t0, time.perf_counter()))
        if windows:
            out["insert"] = {**_per_request(counter, windows), "rows": len((inserts or [[]])[0])}
    finally:
        rpc.RpcClient.call = original  # type: ignore[method-assign]
        client.close()
        server.stop(grace=5)
    out["flight_noop_rtt_ms"] = {r: 1e3 * float(np.median(v)) for r, v in rtt.items()}
    return out


class LoadSampler:
    """Samples the 1-minute load average every ``period`` seconds in a daemon thread."""

    def __init__(self, period: float = 2.0) -> None:
        import os

        self.samples: list[float] = [os.getloadavg()[0]]
        self._stop = threading.Event()

        def run() -> None:
            while not self._stop.wait(period):
                self.samples.append(os.getloadavg()[0])

        threading.Thread(target=run, name="loadavg", daemon=True).start()

    def stop(self) -> dict[str, float]:
        self._stop.set()
        s = self.samples
        return {"max": round(max(s), 2), "mean": round(sum(s) / len(s), 2), "samples": len(s)}
