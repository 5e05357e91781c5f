"""Load: 32 concurrent pymilvus clients mix inserts and searches against one ``gpuvec
serve`` for ``GPUVEC_LOAD_SECONDS`` (default 60); every call must succeed and no
acknowledged row may be missing at the end. Prints the throughput it saw."""

from __future__ import annotations

import os
import threading
import time

import numpy as np
from pymilvus import MilvusClient

from gpuvec.server.app import Server

CLIENTS = 32
DIM = 16
SECONDS = float(os.environ.get("GPUVEC_LOAD_SECONDS", "60"))


def test_32_clients_mixing_inserts_and_searches(server: Server) -> None:
    uri = f"http://{server.address}"
    setup = MilvusClient(uri=uri, timeout=60)
    setup.create_collection("load", dimension=DIM, consistency_level="Bounded")
    errors: list[str] = []
    acked = [0] * CLIENTS
    searches = [0] * CLIENTS
    latencies: list[float] = []
    lock = threading.Lock()
    stop = time.monotonic() + SECONDS
    start_gate = threading.Barrier(CLIENTS)

    def worker(w: int) -> None:
        rng = np.random.default_rng(w)
        client = MilvusClient(uri=uri, timeout=60)
        next_id = w * 10_000_000
        start_gate.wait()
        try:
            while time.monotonic() < stop:
                if rng.random() < 0.5:
                    n = int(rng.integers(1, 50))
                    vecs = rng.standard_normal((n, DIM)).astype(np.float32)
                    rows = [{"id": next_id + i, "vector": vecs[i].tolist(), "w": w}
                            for i in range(n)]  # fmt: skip
                    res = client.insert("load", rows)
                    if res["insert_count"] != n:
                        raise AssertionError(f"insert acked {res['insert_count']} of {n}")
                    acked[w] += n
                    next_id += n
                else:
                    t0 = time.perf_counter()
                    hits = client.search("load", [rng.standard_normal(DIM).tolist()], limit=5)
                    with lock:
                        latencies.append(time.perf_counter() - t0)
                    if len(hits) != 1:
                        raise AssertionError(f"search returned {len(hits)} result lists")
                    searches[w] += 1
        except Exception as exc:
            with lock:
                errors.append(f"client {w}: {type(exc).__name__}: {exc}")
        finally:
            client.close()

    threads = [threading.Thread(target=worker, args=(w,)) for w in range(CLIENTS)]
    t0 = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.monotonic() - t0
    assert not errors, errors[:5]
    total = sum(acked)
    count = setup.query("load", filter="", output_fields=["count(*)"],
                        consistency_level="Strong")[0]["count(*)"]  # fmt: skip
    per_client = setup.query("load", filter="w == 7", output_fields=["count(*)"],
                             consistency_level="Strong")[0]["count(*)"]  # fmt: skip
    setup.close()
    lat = np.sort(np.array(latencies)) * 1e3
    print(
        f"\nload: {CLIENTS} clients, {wall:.0f} s: {total} rows inserted "
        f"({total / wall:.0f}/s), {sum(searches)} searches ({sum(searches) / wall:.0f}/s), "
        f"search p50 {np.percentile(lat, 50):.1f} ms p99 {np.percentile(lat, 99):.1f} ms, "
        f"errors {len(errors)}, rows counted {count}"
    )
    assert count == total and per_client == acked[7]
    assert total > 0 and sum(searches) > 0
