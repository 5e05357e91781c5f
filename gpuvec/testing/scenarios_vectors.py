"""End-to-end vector-type scenarios, runtime-independent (issue 18, item 2): FLOAT16,
BFLOAT16 and INT8 vectors (NumPy arrays of those dtypes, float lists, raw bytes) and
BINARY vectors (packed bytes; HAMMING and JACCARD; BIN_FLAT and BIN_IVF_FLAT), several
vector fields in one collection, each searched against a float64 brute-force reference
over the stored values, before (growing, exact) and after a flush (sealed, indexed);
output fields return the stored bytes as pymilvus decodes them from Milvus; the index /
metric combinations Milvus refuses are refused.

Run it as :mod:`gpuvec.testing.scenarios_data` says (fixture ``milvus``)::

    class TestVectorTypeScenarios(VectorTypeScenarios):
        pass
"""

from __future__ import annotations

from typing import Any

import ml_dtypes
import numpy as np

from gpuvec.testing.scenarios_support import raises_milvus_error

N, DIM, BITS, K = 240, 16, 64, 10


def _dtype(name: str) -> Any:
    from pymilvus import DataType

    return getattr(DataType, name)


def _ref(base: np.ndarray, q: np.ndarray, metric: str, k: int) -> tuple[list[int], np.ndarray]:
    """Exact top-k rows and scores in float64 (L2: squared distance)."""
    b, v = base.astype(np.float64), q.astype(np.float64)
    if metric == "L2":
        s = ((b - v) ** 2).sum(1)
        order = np.argsort(s, kind="stable")
    else:
        if metric == "COSINE":
            b = b / np.maximum(np.linalg.norm(b, axis=1, keepdims=True), 1e-30)
            v = v / max(float(np.linalg.norm(v)), 1e-30)
        s = b @ v
        order = np.argsort(-s, kind="stable")
    return order[:k].tolist(), s[order[:k]]


def _bits_ref(base: np.ndarray, q: np.ndarray, metric: str) -> np.ndarray:
    """HAMMING / JACCARD distance of each packed row of ``base`` to ``q``."""
    a, b = np.unpackbits(base, axis=1).astype(bool), np.unpackbits(q)[None, :].astype(bool)
    if metric == "HAMMING":
        return (a ^ b).sum(1).astype(np.float64)
    inter, union = (a & b).sum(1), (a | b).sum(1)
    return np.where(union > 0, 1.0 - inter / np.maximum(union, 1), 0.0)


def _search(milvus: Any, coll: str, field: str, q: Any, **kw: Any) -> list[dict[str, Any]]:
    return milvus.search(coll, data=[q], anns_field=field, limit=K, **kw)[0]


class VectorTypeScenarios:
    def _dense_collection(self, milvus: Any) -> dict[str, np.ndarray]:
        schema = milvus.create_schema(auto_id=False)
        schema.add_field("id", _dtype("INT64"), is_primary=True)
        schema.add_field("h", _dtype("FLOAT16_VECTOR"), dim=DIM)
        schema.add_field("bf", _dtype("BFLOAT16_VECTOR"), dim=DIM)
        schema.add_field("i8", _dtype("INT8_VECTOR"), dim=DIM)
        schema.add_field("tag", _dtype("INT64"))
        ip = milvus.prepare_index_params()
        ip.add_index("h", index_type="HNSW", metric_type="L2", M=16, efConstruction=64)
        ip.add_index("bf", index_type="IVF_FLAT", metric_type="IP", nlist=4)
        ip.add_index("i8", index_type="HNSW", metric_type="COSINE")
        milvus.create_collection("vt", schema=schema, index_params=ip,
                                 consistency_level="Strong")  # fmt: skip
        rng = np.random.default_rng(7)
        data = {
            "h": rng.standard_normal((N, DIM)).astype(np.float16),
            "bf": rng.standard_normal((N, DIM)).astype(ml_dtypes.bfloat16),
            "i8": rng.integers(-128, 128, (N, DIM)).astype(np.int8),
        }
        rows = [{"id": i, "tag": i % 3, **{f: m[i] for f, m in data.items()}} for i in range(N)]
        milvus.insert("vt", rows)
        return data

    def test_float16_bfloat16_int8_vectors(self, milvus: Any) -> None:
        data = self._dense_collection(milvus)
        metrics = {"h": "L2", "bf": "IP", "i8": "COSINE"}
        for phase in ("growing", "sealed"):
            for field, metric in metrics.items():
                for qi in (3, 101, 230):
                    q = data[field][qi]
                    want, scores = _ref(data[field], q, metric, K)
                    hits = _search(milvus, "vt", field, q)
                    got = [h["id"] for h in hits]
                    if phase == "growing":  # exact search over the stored values
                        assert got == want, (field, qi, got, want)
                        dist = np.array([h["distance"] for h in hits])
                        assert np.allclose(dist, scores, rtol=2e-3, atol=2e-3), (field, dist)
                    else:  # indexed (HNSW / IVF_FLAT over 240 rows): near exact
                        assert len(set(got) & set(want)) >= K - 1, (field, qi, got, want)
                        assert got[0] == want[0]
            if phase == "growing":
                milvus.flush("vt")
        # filters and output fields: the stored bytes, as pymilvus gives them
        hits = _search(milvus, "vt", "h", data["h"][5], filter="tag == 2",
                       output_fields=["bf", "i8"])  # fmt: skip
        assert hits and all(h["id"] % 3 == 2 for h in hits)
        top = hits[0]["entity"]
        assert bytes(top["i8"]) == data["i8"][hits[0]["id"]].tobytes()
        assert bytes(top["bf"]) == data["bf"][hits[0]["id"]].tobytes()
        got = milvus.query("vt", filter="id in [7, 8]", output_fields=["h", "bf", "i8"])
        for row in got:
            i = row["id"]
            assert row["h"] == [data["h"][i].tobytes()]  # query: bytes in a one-element list
            assert row["bf"] == [data["bf"][i].tobytes()]
            assert row["i8"] == [data["i8"][i].tobytes()]

    def test_float_lists_and_bytes_into_half_precision_fields(self, milvus: Any) -> None:
        schema = milvus.create_schema(auto_id=False)
        schema.add_field("id", _dtype("INT64"), is_primary=True)
        schema.add_field("h", _dtype("FLOAT16_VECTOR"), dim=4)
        ip = milvus.prepare_index_params()
        ip.add_index("h", index_type="FLAT", metric_type="L2")
        milvus.create_collection("vl", schema=schema, index_params=ip,
                                 consistency_level="Strong")  # fmt: skip
        floats = [0.1, 0.2, 0.3, 70000.0 / 7]
        raw = np.array([1.5, -2.0, 0.25, 8.0], np.float16)
        milvus.insert("vl", [{"id": 1, "h": floats}])  # pymilvus sends float32 values
        milvus.insert("vl", [{"id": 2, "h": raw.tobytes()}])  # raw float16 bytes
        got = {r["id"]: r["h"][0] for r in milvus.query("vl", filter="id > 0",
                                                        output_fields=["h"])}  # fmt: skip
        assert got[1] == np.array(floats, np.float32).astype(np.float16).tobytes()
        assert got[2] == raw.tobytes()
        hits = _search(milvus, "vl", "h", raw)
        assert hits[0]["id"] == 2 and abs(hits[0]["distance"]) < 1e-6
        with raises_milvus_error("NaN or infinity"):  # past float16's range
            milvus.insert("vl", [{"id": 3, "h": [1.0, 2.0, 3.0, 1e6]}])

    def _binary_collection(self, milvus: Any, name: str, itype: str, metric: str,
                           **params: Any) -> np.ndarray:  # fmt: skip
        schema = milvus.create_schema(auto_id=False)
        schema.add_field("id", _dtype("INT64"), is_primary=True)
        schema.add_field("b", _dtype("BINARY_VECTOR"), dim=BITS)
        schema.add_field("tag", _dtype("INT64"))
        ip = milvus.prepare_index_params()
        ip.add_index("b", index_type=itype, metric_type=metric, **params)
        milvus.create_collection(name, schema=schema, index_params=ip,
                                 consistency_level="Strong")  # fmt: skip
        rng = np.random.default_rng(11)
        centres = rng.integers(0, 2, (6, BITS))
        flips = rng.random((N, BITS)) < 0.15
        bits = centres[np.arange(N) % 6] ^ flips
        packed = np.packbits(bits.astype(np.uint8), axis=1)
        milvus.insert(name, [{"id": i, "tag": i % 3, "b": packed[i].tobytes()}
                             for i in range(N)])  # fmt: skip
        return packed

    def test_binary_vectors_hamming_and_jaccard(self, milvus: Any) -> None:
        cases = (("bh", "BIN_IVF_FLAT", "HAMMING", {"nlist": 4}), ("bj", "BIN_FLAT", "JACCARD", {}))
        for name, itype, metric, params in cases:
            packed = self._binary_collection(milvus, name, itype, metric, **params)
            for phase in ("growing", "sealed"):
                for qi in (0, 77, 199):
                    ref = _bits_ref(packed, packed[qi], metric)
                    kw = {"search_params": {"params": {"nprobe": 4}}} if params else {}
                    hits = _search(milvus, name, "b", packed[qi].tobytes(), **kw)
                    dist = np.array([h["distance"] for h in hits])
                    assert np.allclose(dist, np.sort(ref)[:K], atol=1e-6), (name, phase, dist)
                    assert all(abs(ref[h["id"]] - h["distance"]) < 1e-6 for h in hits)
                hits = _search(milvus, name, "b", packed[9].tobytes(), filter="tag == 1",
                               output_fields=["b"])  # fmt: skip
                assert hits and all(h["id"] % 3 == 1 for h in hits)
                assert bytes(hits[0]["entity"]["b"]) == packed[hits[0]["id"]].tobytes()
                if phase == "growing":
                    milvus.flush(name)
            radius = 12.0 if metric == "HAMMING" else 0.3
            hits = milvus.search(name, data=[packed[4].tobytes()], anns_field="b", limit=N,
                                 search_params={"params": {"radius": radius}})[0]  # fmt: skip
            ref = _bits_ref(packed, packed[4], metric)
            assert sorted(h["id"] for h in hits) == np.flatnonzero(ref < radius).tolist()

    def test_vector_types_refused_as_milvus_refuses_them(self, milvus: Any) -> None:
        schema = milvus.create_schema(auto_id=False)
        schema.add_field("id", _dtype("INT64"), is_primary=True)
        schema.add_field("h", _dtype("FLOAT16_VECTOR"), dim=8)
        schema.add_field("i8", _dtype("INT8_VECTOR"), dim=8)
        schema.add_field("b", _dtype("BINARY_VECTOR"), dim=16)
        milvus.create_collection("vr", schema=schema, consistency_level="Strong")
        bad = [
            ("h", "BIN_FLAT", "HAMMING", "BIN_FLAT"),
            ("h", "HNSW", "HAMMING", "HAMMING"),
            ("i8", "IVF_FLAT", "L2", "IVF_FLAT"),
            ("b", "HNSW", "L2", "HNSW"),
            ("b", "BIN_FLAT", "L2", "L2"),
        ]
        for field, itype, metric, needle in bad:
            ip = milvus.prepare_index_params()
            with raises_milvus_error(needle):
                ip.add_index(field, index_type=itype, metric_type=metric)
                milvus.create_index("vr", ip)
        assert milvus.list_indexes("vr") == []
        ip = milvus.prepare_index_params()
        ip.add_index("h", index_type="HNSW", metric_type="L2")
        ip.add_index("i8", index_type="HNSW", metric_type="IP")
        ip.add_index("b", index_type="BIN_FLAT")  # HAMMING: binary vectors' default
        milvus.create_index("vr", ip)
        assert milvus.describe_index("vr", "b")["metric_type"] == "HAMMING"
        milvus.load_collection("vr")
        ok = {"h": np.zeros(8, np.float16), "i8": np.zeros(8, np.int8), "b": b"\x00\x01"}
        for field, value, needle in (
            ("b", b"\x00", "'b'"),  # one byte for 16 bits
            ("i8", np.array([300] * 8), "out of range|int8"),  # pymilvus: its own check
            ("h", np.zeros(5, np.float16), "'h'"),
        ):
            with raises_milvus_error(needle):
                milvus.insert("vr", [{"id": 1, **ok, field: value}])
        assert milvus.query("vr", filter="id >= 0", output_fields=["count(*)"])[0][
            "count(*)"] == 0  # fmt: skip

    def test_search_iterator_over_binary_vectors(self, milvus: Any) -> None:
        packed = self._binary_collection(milvus, "bi", "BIN_FLAT", "HAMMING")
        it = milvus.search_iterator("bi", data=[packed[0].tobytes()], anns_field="b",
                                    batch_size=50, limit=N)  # fmt: skip
        seen: list[tuple[int, float]] = []
        while page := it.next():
            seen += [(h["id"], h["distance"]) for h in page]
        it.close()
        ref = _bits_ref(packed, packed[0], "HAMMING")
        assert sorted(i for i, _ in seen) == list(range(N))  # every row exactly once
        dist = [d for _, d in seen]
        assert dist == sorted(dist)  # HAMMING is a distance: pages ascend
        assert all(abs(ref[i] - d) < 1e-6 for i, d in seen)
