"""The end-to-end scenario suites run against ``gpuvec serve`` through an unmodified
``pymilvus.MilvusClient`` over a real socket (fixtures of this directory's conftest: a
server on a free port, ``milvus`` connected to it): the runtime-independent suites
(:mod:`gpuvec.testing.scenarios_data`, :mod:`gpuvec.testing.scenarios_collections`) and
the gRPC endpoint suite (:mod:`gpuvec.testing.scenarios_endpoint`)."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from pymilvus import MilvusClient

from gpuvec.server.app import Server
from gpuvec.testing.scenarios_collections import CollectionScenarios
from gpuvec.testing.scenarios_data import DataScenarios
from gpuvec.testing.scenarios_endpoint import GrpcEndpointScenarios
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


@pytest.fixture
def connect_db(server: Server) -> Callable[[str], MilvusClient]:
    """A second pymilvus client of the server, in another database."""
    return lambda db_name: MilvusClient(uri=f"http://{server.address}", db_name=db_name)


class TestDataScenarios(DataScenarios):
    pass


class TestCollectionScenarios(CollectionScenarios):
    pass


class TestGrpcEndpointScenarios(GrpcEndpointScenarios):
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
