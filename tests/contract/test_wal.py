"""Runs the WAL contract against the local log (always) and Kafka (real broker)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from gpuvec.storage.wal.base import WAL
from gpuvec.testing.wal_contract import WALContract


@pytest.fixture(params=["local", pytest.param("kafka", marks=pytest.mark.kafka)])
def wal(request: pytest.FixtureRequest, tmp_path, unique: str) -> Iterator[WAL]:  # type: ignore[no-untyped-def]
    if request.param == "local":
        from gpuvec.storage.wal.local import LocalWAL

        w: WAL = LocalWAL(tmp_path / "wal", segment_bytes=4096, max_record_bytes=1 << 20)
    else:
        from gpuvec.storage.wal.kafka import KafkaWAL

        bootstrap = request.getfixturevalue("kafka_bootstrap")
        w = KafkaWAL(bootstrap, topic_prefix=f"{unique}-", max_record_bytes=1 << 20)
    try:
        yield w
    finally:
        if request.param == "kafka":
            for ch in w.channels():
                w.drop_channel(ch)
        w.close()


class TestWAL(WALContract):
    pass
