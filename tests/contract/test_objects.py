"""Runs the sealed-segment contract on a local directory and on S3 (moto server)."""

from __future__ import annotations

import time
from collections.abc import Iterator

import numpy as np
import pytest
from zarr.abc.store import Store

from gpuvec.errors import UnavailableError
from gpuvec.storage.objects.segment import write_segment
from gpuvec.storage.objects.stores import open_store
from gpuvec.testing.objects_contract import SegmentStoreContract, sample


@pytest.fixture(scope="module")
def s3_endpoint() -> Iterator[str]:
    boto3 = pytest.importorskip("boto3", reason="boto3 (moto[server]) missing: pip install .[test]")
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0)
    server.start()
    host, port = server.get_host_and_port()
    url = f"http://{host}:{port}"
    boto3.client(
        "s3",
        endpoint_url=url,
        region_name="us-east-1",
        aws_access_key_id="test",
        aws_secret_access_key="test",
    ).create_bucket(Bucket="segs")
    yield url
    server.stop()


@pytest.fixture(params=["local", pytest.param("s3", marks=pytest.mark.s3)])
def store(request: pytest.FixtureRequest, tmp_path, unique: str, monkeypatch) -> Store:  # type: ignore[no-untyped-def]
    if request.param == "local":
        return open_store(tmp_path / "objects")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "test")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "test")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    endpoint = request.getfixturevalue("s3_endpoint")
    return open_store(f"s3://segs/{unique}", endpoint_url=endpoint)


class TestSegments(SegmentStoreContract):
    pass


@pytest.mark.s3
def test_unreachable_s3_fails_fast(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "test")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "test")
    store = open_store("s3://nobucket/x", endpoint_url="http://127.0.0.1:1", timeout=1)
    t0 = time.monotonic()
    with pytest.raises(UnavailableError, match=r"127\.0\.0\.1:1|s3"):
        write_segment(store, "seg", **sample(5))
    assert time.monotonic() - t0 < 30


def test_shards_option_roundtrip(tmp_path) -> None:  # type: ignore[no-untyped-def]
    store = open_store(tmp_path)
    s = sample(3000, dim=8)
    write_segment(store, "seg", chunk_rows=256, shard_rows=1024, **s)
    from gpuvec.storage.objects.segment import SegmentReader

    r = SegmentReader(store, "seg")
    np.testing.assert_array_equal(r.vectors(start=1000, stop=2100), s["vectors"]["emb"][1000:2100])
    r.verify()
