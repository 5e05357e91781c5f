"""The end-to-end scenario suite of the Milvus endpoint (tests/server) run unchanged
against the real local cluster through pymilvus: the same test functions, with this
directory's fixtures (``milvus``/``server`` point at the cluster's proxy). Its congruence
test compares the cluster's answers with the embedded ``gpuvec.MilvusClient``'s."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "server"))

from test_pymilvus_collections import *  # noqa: F403
from test_pymilvus_data import *  # noqa: F403

pytestmark = [pytest.mark.etcd, pytest.mark.kafka, pytest.mark.slow]
