"""The end-to-end scenario suites run against the real local cluster (one per session,
see this directory's conftest) through an unmodified ``pymilvus.MilvusClient`` of its
proxy: the runtime-independent suites (:mod:`gpuvec.testing.scenarios_data`, whose
congruence scenario compares the cluster's answers with the embedded client's, and
:mod:`gpuvec.testing.scenarios_collections`) and the gRPC endpoint suite
(:mod:`gpuvec.testing.scenarios_endpoint`). Each test starts from an emptied cluster."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from pymilvus import MilvusClient

from gpuvec.cluster.launcher import LocalCluster
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

pytestmark = [pytest.mark.etcd, pytest.mark.kafka, pytest.mark.slow]


@pytest.fixture
def connect_db(cluster: LocalCluster, milvus: MilvusClient) -> Callable[[str], MilvusClient]:
    """A second pymilvus client of the cluster's proxy, in another database."""
    return lambda db_name: MilvusClient(uri=cluster.uri, db_name=db_name, timeout=60)


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
