"""Standalone index artifacts (:mod:`gpuvec.pipelines.artifact`): the indexes of a Parquet
file built offline as a Dask job, resumable piece by piece, then adopted by an import of the
same file (the segments' index files are the artifact's pieces, searches match a normal
import's); an artifact that does not fit the collection's index is built instead; a bad
artifact path is refused before anything is written; the CLI does both in two commands."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from gpuvec.pipelines.artifact import MANIFEST, load_artifact
from gpuvec.pipelines.common import vector_digest
from test_bulk_import import DIM, config, count, vectors, write_parquet

from gpuvec import MilvusClient
from gpuvec.coord.artifacts import build_artifact
from gpuvec.errors import InvalidArgumentError
from gpuvec.schema import DataType

N = 3000
IVF = {"index_type": "IVF_FLAT", "metric_type": "L2", "params": {"nlist": 8}}


def _collection(client: MilvusClient, name: str, index: dict) -> None:
    schema = client.create_schema(auto_id=False)
    schema.add_field("id", DataType.INT64, is_primary=True)
    schema.add_field("vector", DataType.FLOAT_VECTOR, dim=DIM)
    schema.add_field("n", DataType.INT64)
    schema.add_field("tag", DataType.VARCHAR, max_length=16)
    idx = client.prepare_index_params()
    idx.add_index("vector", **index)
    client.create_collection(name, schema=schema, index_params=idx, num_shards=1)


@pytest.fixture
def source(tmp_path: Path) -> tuple[Path, np.ndarray]:
    vec = vectors(N, seed=11)
    return write_parquet(tmp_path / "data.parquet", vec), vec


def _artifact(path: Path, out: Path) -> dict:
    seen: list[tuple[int, int]] = []
    manifest = build_artifact([str(path)], out, index_type="IVF_FLAT", metric="L2",
                              params={"nlist": 8}, chunk_rows=1000,
                              progress=lambda d, t: seen.append((d, t)))  # fmt: skip
    assert seen[-1] == (N, N)
    return manifest


def test_build_is_checked_and_resumes_per_piece(source: tuple, tmp_path: Path) -> None:
    path, vec = source
    out = tmp_path / "art"
    manifest = _artifact(path, out)
    assert manifest["rows"] == N and len(manifest["pieces"]) == 3
    assert [p["rows"] for p in manifest["pieces"]] == [1000, 1000, 1000]
    for i, p in enumerate(manifest["pieces"]):  # each piece is over the rows an import writes
        assert p["digest"] == vector_digest(vec[i * 1000 : (i + 1) * 1000])
        assert (out / p["file"]).stat().st_size == p["nbytes"] > 0
    kept = (out / manifest["pieces"][0]["file"]).stat().st_mtime_ns
    (out / manifest["pieces"][1]["file"]).unlink()  # an interrupted build: one piece missing
    (out / "piece-00001.json").unlink()
    again = _artifact(path, out)
    assert (out / manifest["pieces"][0]["file"]).stat().st_mtime_ns == kept  # not rebuilt
    assert [p["digest"] for p in again["pieces"]] == [p["digest"] for p in manifest["pieces"]]
    with pytest.raises(InvalidArgumentError, match="not a vector column"):
        build_artifact([str(path)], tmp_path / "x", field="tag")
    with pytest.raises(InvalidArgumentError, match="nlist"):
        build_artifact([str(path)], tmp_path / "x", index_type="IVF_FLAT", params={"nlist": -1})
    with pytest.raises(InvalidArgumentError, match="not a finished index artifact"):
        load_artifact(tmp_path / "x")


def test_import_adopts_the_artifact(source: tuple, tmp_path: Path) -> None:
    path, vec = source
    out = tmp_path / "art"
    manifest = _artifact(path, out)
    client = MilvusClient(str(tmp_path / "db"), config=config())
    try:
        _collection(client, "adopt", IVF)
        _collection(client, "plain", IVF)
        _collection(client, "other", {**IVF, "params": {"nlist": 16}})
        done = client.bulk_import("adopt", [str(path)], index_artifact=str(out), timeout=300)
        assert done["state"] == "Completed" and done["adopted_indexes"] == 3
        plain = client.bulk_import("plain", [str(path)], timeout=300)
        assert plain["adopted_indexes"] == 0
        other = client.bulk_import("other", [str(path)], index_artifact=str(out), timeout=300)
        assert other["adopted_indexes"] == 0  # nlist differs: built, not adopted
        for name in ("adopt", "plain", "other"):
            assert count(client, name) == N
            info = client.describe_index(name, "vector")
            assert info["state"] == "Finished" and int(info["indexed_rows"]) == N
        # the adopted index files are the artifact's pieces, byte for byte
        pieces = {(out / p["file"]).read_bytes() for p in manifest["pieces"]}
        cid = client.describe_collection("adopt")["collection_id"]
        files = list((tmp_path / "db" / "objects" / "collections" / str(cid)).rglob("*.gpuvecix"))
        assert len(files) == 3 and {f.read_bytes() for f in files} == pieces
        q = vec[[5, 1500, 2999]].tolist()
        params = {"nprobe": 8}
        a = client.search("adopt", q, limit=5, search_params={"params": params})
        b = client.search("plain", q, limit=5, search_params={"params": params})
        assert [[h["id"] for h in r] for r in a] == [[h["id"] for h in r] for r in b]
        assert [r[0]["id"] for r in a] == [5, 1500, 2999]
        with pytest.raises(InvalidArgumentError, match="not a finished index artifact"):
            client.do_bulk_insert("adopt", [str(path)], index_artifact=str(tmp_path / "none"))
        assert count(client, "adopt") == N
    finally:
        client.close()


def test_cli_builds_an_artifact_and_imports_with_it(source: tuple, tmp_path: Path) -> None:
    path, _ = source
    env = {**os.environ, "GPUVEC_DASHBOARD_ADDRESS": "", "GPUVEC_INDEX_MIN_ROWS": "500"}
    art = tmp_path / "art"
    built = subprocess.run(
        [sys.executable, "-m", "gpuvec", "build-index", "--source", str(path), "--out", str(art),
         "--metric", "L2"],
        capture_output=True, text=True, timeout=600, env=env,
    )  # fmt: skip
    assert built.returncode == 0, built.stderr[-3000:]
    assert f"{N:,} rows in 1 pieces" in built.stdout, built.stdout
    assert json.loads((art / MANIFEST).read_text())["index_type"] == "AUTOINDEX"
    db = tmp_path / "db"
    imp = subprocess.run(
        [sys.executable, "-m", "gpuvec", "import", "--data", str(db), "--collection", "docs",
         "--create", "--metric", "L2", "--index-artifact", str(art), str(path)],
        capture_output=True, text=True, timeout=600, env=env,
    )  # fmt: skip
    assert imp.returncode == 0, imp.stderr[-3000:]
    assert "1 prebuilt indexes adopted" in imp.stdout, imp.stdout
    c = MilvusClient(str(db), config=config())
    try:
        assert count(c) == N and c.describe_index("docs", "vector")["state"] == "Finished"
    finally:
        c.close()
    usage = subprocess.run([sys.executable, "-m", "gpuvec", "build-index", "--source", str(path)],
                           capture_output=True, text=True, timeout=300, env=env)  # fmt: skip
    assert usage.returncode == 2 and "--out" in usage.stderr
