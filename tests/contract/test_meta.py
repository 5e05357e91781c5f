"""Runs the MetaStore contract against SQLite (always) and etcd (real server)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from gpuvec.storage.meta.base import MetaStore
from gpuvec.testing.meta_contract import MetaStoreContract


@pytest.fixture(params=["sqlite", pytest.param("etcd", marks=pytest.mark.etcd)])
def meta(request: pytest.FixtureRequest, tmp_path, unique: str) -> Iterator[MetaStore]:  # type: ignore[no-untyped-def]
    if request.param == "sqlite":
        from gpuvec.storage.meta.sqlite import SqliteMetaStore

        store: MetaStore = SqliteMetaStore(tmp_path / "meta.db", poll_interval=0.05)
    else:
        from gpuvec.storage.meta.etcd import EtcdMetaStore

        endpoint = request.getfixturevalue("etcd_endpoint")
        store = EtcdMetaStore(endpoint, root=f"/{unique}/")
    try:
        yield store
    finally:
        store.close()


class TestMetaStore(MetaStoreContract):
    pass
