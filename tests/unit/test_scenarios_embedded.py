"""The end-to-end scenario suites (:mod:`gpuvec.testing.scenarios_data`,
:mod:`gpuvec.testing.scenarios_collections`) run against the embedded runtime: the
``milvus`` fixture is ``gpuvec.MilvusClient`` on a fresh local directory.

The gRPC endpoint suite (:mod:`gpuvec.testing.scenarios_endpoint`) does not apply here.
Every scenario passes unchanged: the embedded client answers as pymilvus does against the
server (a difference found here is fixed in the client, not marked).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import gpuvec
from gpuvec.config import Config
from gpuvec.testing.scenarios_collections import CollectionScenarios
from gpuvec.testing.scenarios_data import DataScenarios
from gpuvec.testing.scenarios_fields import (
    AlterFieldScenarios,
    FieldScenarios,
    SearchIteratorScenarios,
)
from gpuvec.testing.scenarios_fulltext import FullTextScenarios
from gpuvec.testing.scenarios_hybrid import HybridScenarios
from gpuvec.testing.scenarios_inspect import InspectScenarios
from gpuvec.testing.scenarios_keys import KeyScenarios
from gpuvec.testing.scenarios_scalar_index import ScalarIndexScenarios
from gpuvec.testing.scenarios_sparse import SparseScenarios
from gpuvec.testing.scenarios_vectors import VectorTypeScenarios


def _config() -> Config:
    return Config(dashboard_address="", datanode_processes=False, index_min_rows=256)


@pytest.fixture
def milvus(tmp_path: Path) -> Iterator[gpuvec.MilvusClient]:
    client = gpuvec.MilvusClient(str(tmp_path / "db"), config=_config())
    try:
        yield client
    finally:
        client.close()


@pytest.fixture
def connect_db(milvus: gpuvec.MilvusClient) -> Callable[[str], Any]:
    """A second client in another database: a view sharing ``milvus``'s engine (one
    engine per directory), as the gRPC server keeps one client per database."""
    return milvus.for_database


@pytest.fixture
def fast() -> dict[str, Any]:
    """Keyword arguments of the embedded client the congruence scenario compares with."""
    return {"config": _config()}


class TestDataScenarios(DataScenarios):
    pass


class TestCollectionScenarios(CollectionScenarios):
    pass


class TestKeyScenarios(KeyScenarios):
    pass


class TestInspectScenarios(InspectScenarios):
    pass


class TestHybridScenarios(HybridScenarios):
    pass


class TestScalarIndexScenarios(ScalarIndexScenarios):
    pass


class TestSparseScenarios(SparseScenarios):
    pass


class TestFullTextScenarios(FullTextScenarios):
    pass


class TestFieldScenarios(FieldScenarios):
    pass


class TestAlterFieldScenarios(AlterFieldScenarios):
    pass


class TestVectorTypeScenarios(VectorTypeScenarios):
    pass


class TestSearchIteratorScenarios(SearchIteratorScenarios):
    pass
