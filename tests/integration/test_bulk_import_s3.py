"""A bulk-import job end to end from S3 (moto's server): the batches pymilvus's bulk writer
produces, uploaded where ``RemoteBulkWriter`` puts them, imported by ``s3://`` URI with
fsspec ``storage_options`` through the embedded client; rows, vectors and dynamic fields
arrive as written."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from test_bulk_import import config, count

from gpuvec import MilvusClient
from gpuvec.testing.s3 import make_bucket

pytestmark = pytest.mark.s3
DIM, N = 8, 3000


@pytest.fixture(scope="module")
def s3_endpoint(moto_s3: str) -> str:
    make_bucket(moto_s3, "bulk")
    return moto_s3


def test_import_bulk_writer_batches_from_s3(
    tmp_path: Path, s3_endpoint: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    try:
        from pymilvus import CollectionSchema, DataType, FieldSchema
        from pymilvus.bulk_writer import BulkFileType, LocalBulkWriter
    except ImportError as e:
        pytest.skip(f"pymilvus bulk_writer unavailable ({e}): pip install 'pymilvus[bulk_writer]'")
    import s3fs

    for k, v in {"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test",
                 "AWS_DEFAULT_REGION": "us-east-1"}.items():  # fmt: skip
        monkeypatch.setenv(k, v)
    schema = CollectionSchema([
        FieldSchema("id", DataType.INT64, is_primary=True),
        FieldSchema("vector", DataType.FLOAT_VECTOR, dim=DIM),
        FieldSchema("title", DataType.VARCHAR, max_length=32),
    ], enable_dynamic_field=True)  # fmt: skip
    vec = np.random.default_rng(9).standard_normal((N, DIM)).astype(np.float32)
    with LocalBulkWriter(schema, local_path=str(tmp_path / "out"), file_type=BulkFileType.PARQUET,
                         chunk_size=64 * 1024) as writer:  # fmt: skip
        for i in range(N):
            writer.append_row({"id": i, "vector": vec[i].tolist(), "title": f"doc {i}",
                               "lang": "en" if i % 2 else "de"})  # fmt: skip
        writer.commit()
        batches = writer.batch_files
    assert len(batches) > 1
    opts = {"client_kwargs": {"endpoint_url": s3_endpoint, "region_name": "us-east-1"}}
    fs = s3fs.S3FileSystem(anon=False, skip_instance_cache=True, **opts)
    uris = []
    for batch in batches:
        for f in batch:
            key = f"bulk/data/{Path(f).parent.name}/{Path(f).name}"
            fs.put(f, key)
            uris.append([f"s3://{key}"])
    client = MilvusClient(str(tmp_path / "db"), config=config())
    try:
        client.create_collection("docs", dimension=DIM, metric_type="L2", auto_id=False)
        done = client.bulk_import("docs", uris, storage_options=opts, timeout=300)
        assert done["state"] == "Completed" and done["row_count"] == N
        assert count(client) == N
        hit = client.search("docs", [vec[1234].tolist()], limit=1,
                            output_fields=["title", "lang"])[0][0]  # fmt: skip
        assert hit["id"] == 1234 and hit["entity"] == {"title": "doc 1234", "lang": "de"}
        missing = "s3://bulk/data/none.parquet"
        with pytest.raises(Exception, match=r"none\.parquet"):
            client.do_bulk_insert("docs", [missing], storage_options=opts)
    finally:
        client.close()
