"""End-to-end primary-key scenarios, runtime-independent: a key written twice is one
entity. Every read — ``query``, ``get``, ``search``, ``count(*)``, the iterators — sees
only the newest version of a key, whether the versions sit in one growing segment, in
growing and sealed ones, or in segments a compaction rewrote; an insert batch that repeats
a key keeps its last row; an upsert batch that repeats one is refused as Milvus refuses it
(``duplicate primary keys are not allowed in the same batch``); an upsert with
``partial_update=True`` changes only the fields its rows name (dynamic keys merged), and
a new key in it must carry every field; a delete naming a partition removes only the
keys that live in it (Milvus applies the delete to that partition). Searches are checked
against a brute-force reference over the newest versions.

Run it as :mod:`gpuvec.testing.scenarios_data` says (fixture ``milvus``)::

    class TestKeyScenarios(KeyScenarios):
        pass
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from gpuvec.testing.scenarios_support import DIM, brute_cosine, count, raises_milvus_error


def _rows(ids: range | list[int], version: str, seed: int) -> tuple[list[dict], np.ndarray]:
    vecs = np.random.default_rng(seed).standard_normal((len(ids), DIM)).astype(np.float32)
    rows = [{"id": i, "vector": vecs[j].tolist(), "v": version} for j, i in enumerate(ids)]
    return rows, vecs


class KeyScenarios:
    old: dict[int, np.ndarray]  # a superseded vector of keys 60, 125 and 200

    def _write_versions(self, m: Any) -> dict[int, tuple[str, np.ndarray]]:
        """Three versions of overlapping keys across a sealed and a growing segment, and a
        batch repeating a key; returns the newest (version, vector) per key."""
        m.create_collection("pk", dimension=DIM, consistency_level="Strong")
        newest: dict[int, tuple[str, np.ndarray]] = {}
        self.old = {}
        for ids, version, seed, flush in ((range(0, 100), "v1", 1, True),
                                          (range(50, 150), "v2", 2, False),
                                          (range(120, 130), "v3", 3, False)):  # fmt: skip
            rows, vecs = _rows(ids, version, seed)
            assert m.insert("pk", rows)["insert_count"] == len(rows)
            for j, i in enumerate(ids):
                if i in (60, 125) and i in newest:
                    self.old[i] = newest[i][1]
                newest[i] = (version, vecs[j])
            if flush:
                m.flush("pk")
        batch, vecs = _rows([200, 201, 200], "b", 4)
        batch[0]["v"], batch[2]["v"] = "first", "last"
        assert m.insert("pk", batch)["insert_count"] == 3  # as Milvus counts it
        newest[200], newest[201] = ("last", vecs[2]), ("b", vecs[1])
        self.old[200] = vecs[0]
        return newest

    def _check(self, m: Any, newest: dict[int, tuple[str, np.ndarray]]) -> None:
        assert count(m, "pk") == len(newest)
        got = m.query("pk", filter="id in [10, 60, 99, 125, 149, 200]", output_fields=["v"])
        want = [(i, newest[i][0]) for i in (10, 60, 99, 125, 149, 200)]
        assert sorted((r["id"], r["v"]) for r in got) == want, got
        assert [r["v"] for r in m.get("pk", ids=[60], output_fields=["v"])] == [newest[60][0]]
        assert m.query("pk", filter='v == "v1" and id >= 50', output_fields=["v"]) == []
        ids = np.array(sorted(newest))
        vecs = np.stack([newest[i][1] for i in ids])
        for q in self.old.values():  # superseded vectors must not be found
            hits = m.search("pk", [q.tolist()], limit=10, output_fields=["v"])[0]
            assert [h["id"] for h in hits] == [int(ids[i]) for i in brute_cosine(vecs, q, 10)]
            assert all(h["entity"]["v"] == newest[h["id"]][0] for h in hits)
        it = m.query_iterator("pk", batch_size=37, filter="id >= 0", output_fields=["v"])
        seen: list[tuple[int, str]] = []
        while batch := it.next():
            seen += [(r["id"], r["v"]) for r in batch]
        it.close()
        assert sorted(seen) == sorted((i, v) for i, (v, _) in newest.items())

    def test_a_key_written_twice_is_one_entity(self, milvus: Any) -> None:
        newest = self._write_versions(milvus)
        self._check(milvus, newest)
        milvus.flush("pk")  # every version sealed now
        self._check(milvus, newest)
        job = milvus.compact("pk")
        deadline = time.monotonic() + 60
        while milvus.get_compaction_state(job) != "Completed":
            assert time.monotonic() < deadline, "compaction did not complete"
            time.sleep(0.2)
        self._check(milvus, newest)
        rows, vecs = _rows([60], "v4", 9)  # once more, after the compaction
        milvus.insert("pk", rows)
        newest[60] = ("v4", vecs[0])
        self._check(milvus, newest)

    def test_upsert_batch_repeating_a_key_is_refused(self, milvus: Any) -> None:
        milvus.create_collection("up", dimension=DIM, consistency_level="Strong")
        rows, _ = _rows([1, 2, 1], "x", 5)
        with raises_milvus_error("duplicate primary keys are not allowed in the same batch"):
            milvus.upsert("up", rows)
        assert count(milvus, "up") == 0  # nothing half-applied
        milvus.upsert("up", rows[:2])
        assert count(milvus, "up") == 2

    def test_upsert_into_auto_id_gives_new_keys(self, milvus: Any) -> None:
        milvus.create_collection("auto", dimension=DIM, consistency_level="Strong",
                                 auto_id=True)  # fmt: skip
        rows, _ = _rows([0, 0], "a", 6)
        old = milvus.insert("auto", [{k: v for k, v in r.items() if k != "id"} for r in rows])
        first, second = old["ids"]
        up = milvus.upsert("auto", [{**rows[0], "id": first, "v": "b"}])
        (new,) = up["ids"]  # as Milvus: the upserted row gets a new key, the old one goes
        assert new not in (first, second)
        got = milvus.query("auto", filter="id >= 0", output_fields=["v"])
        assert sorted((r["id"], r["v"]) for r in got) == sorted([(second, "a"), (new, "b")])

    def test_partial_update_merges_into_the_stored_entity(self, milvus: Any) -> None:
        milvus.create_collection("pu", dimension=DIM, consistency_level="Strong")  # dynamic on
        rows, vecs = _rows([1, 2, 3], "old", 7)
        for r in rows:
            r["extra"], r["keep"] = 1, "k"
        milvus.insert("pu", rows)
        milvus.flush("pu")  # the stored versions sealed: the merge reads them from there
        up = milvus.upsert("pu", [{"id": 1, "v": "new", "extra": 2, "added": True},
                                  {"id": 2, "v": "new2", "extra": 3, "added": False}],
                           partial_update=True)  # fmt: skip
        assert up["upsert_count"] == 2
        got = {r["id"]: r for r in milvus.get("pu", ids=[1, 2, 3], output_fields=["*"])}
        assert (got[1]["v"], got[1]["extra"], got[1]["keep"], got[1]["added"]) == (
            "new", 2, "k", True)  # fmt: skip
        assert (got[2]["v"], got[2]["extra"], got[2]["added"]) == ("new2", 3, False)
        assert got[3]["v"] == "old" and "added" not in got[3]  # untouched
        np.testing.assert_allclose(got[1]["vector"], vecs[0], rtol=1e-6)  # the vector kept
        hit = milvus.search("pu", [vecs[0].tolist()], limit=1, output_fields=["v"])[0][0]
        assert hit["id"] == 1 and hit["entity"]["v"] == "new"
        assert count(milvus, "pu") == 3
        vec_only = np.full(DIM, 0.25, np.float32)
        milvus.upsert("pu", [{"id": 3, "vector": vec_only.tolist()}], partial_update=True)
        got3 = milvus.get("pu", ids=[3], output_fields=["*"])[0]
        assert got3["v"] == "old" and got3["keep"] == "k"
        np.testing.assert_allclose(got3["vector"], vec_only, rtol=1e-6)
        with raises_milvus_error("vector"):  # a new key must carry every field
            milvus.upsert("pu", [{"id": 9, "v": "x"}, {"id": 1, "v": "y"}], partial_update=True)
        assert count(milvus, "pu") == 3  # nothing half-applied
        assert milvus.get("pu", ids=[1], output_fields=["v"])[0]["v"] == "new"

    def test_delete_with_a_partition_removes_keys_found_there_only(self, milvus: Any) -> None:
        milvus.create_collection("dp", dimension=DIM, consistency_level="Strong")
        milvus.create_partition("dp", "a")
        milvus.create_partition("dp", "b")
        for part, ids, seed in (("a", [1, 2, 3], 10), ("b", [4, 5, 6], 11)):
            rows, _ = _rows(ids, part, seed)
            milvus.insert("dp", rows, partition_name=part)
        milvus.flush("dp")  # sealed rows in a, growing rows in b below
        milvus.insert("dp", _rows([7], "b", 12)[0], partition_name="b")
        milvus.delete("dp", ids=[1, 4, 7], partition_name="b")  # 1 lives in a: kept (Milvus)
        got = milvus.query("dp", filter="id > 0", output_fields=["v"])
        assert sorted((r["id"], r["v"]) for r in got) == [
            (1, "a"), (2, "a"), (3, "a"), (5, "b"), (6, "b")]  # fmt: skip
        milvus.delete("dp", ids=[2, 5], partition_name="a")  # 5 lives in b: kept
        assert sorted(r["id"] for r in milvus.query("dp", filter="id > 0")) == [1, 3, 5, 6]
        milvus.delete("dp", ids=[1, 6])  # no partition: wherever the keys live
        assert sorted(r["id"] for r in milvus.query("dp", filter="id > 0")) == [3, 5]

    def test_varchar_keys(self, milvus: Any) -> None:
        schema = milvus.create_schema(auto_id=False)
        schema.add_field("key", _varchar(), is_primary=True, max_length=16)
        schema.add_field("vector", _float_vector(), dim=DIM)
        schema.add_field("v", _varchar(), max_length=8)
        index = milvus.prepare_index_params()
        index.add_index("vector", index_type="FLAT", metric_type="L2")
        milvus.create_collection("s", schema=schema, index_params=index,
                                 consistency_level="Strong")  # fmt: skip
        vec = [0.5] * DIM
        milvus.insert("s", [{"key": k, "vector": vec, "v": "old"} for k in ("a", "b", "c")])
        milvus.flush("s")
        milvus.insert("s", [{"key": "b", "vector": vec, "v": "new"}])
        assert count(milvus, "s") == 3
        got = milvus.query("s", filter='key in ["a", "b"]', output_fields=["v"])
        assert sorted((r["key"], r["v"]) for r in got) == [("a", "old"), ("b", "new")]


def _varchar() -> Any:
    from pymilvus import DataType

    return DataType.VARCHAR


def _float_vector() -> Any:
    from pymilvus import DataType

    return DataType.FLOAT_VECTOR
