"""Fixtures for the Milvus endpoint tests: a real ``gpuvec serve`` server on a free local
port (in this process, on a temporary data directory) and unmodified
``pymilvus.MilvusClient`` instances connected to it over the socket."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pymilvus import MilvusClient as PyMilvusClient

from gpuvec.config import Config
from gpuvec.server.app import Server, ServerOptions, start_server

FAST = {"config": Config(dashboard_address="", datanode_processes=False, index_min_rows=256)}


def open_server(data: Path, **opts: Any) -> Server:
    return start_server(str(data), ServerOptions(port=0, **opts), **FAST)


@pytest.fixture
def fast() -> dict[str, Any]:
    """Keyword arguments that keep an engine small and quick in tests."""
    return dict(FAST)


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    srv = open_server(tmp_path / "data")
    try:
        yield srv
    finally:
        srv.stop(grace=1)


@pytest.fixture
def auth_server(tmp_path: Path) -> Iterator[Server]:
    """A server with authentication (and so role-based access control) on."""
    srv = start_server(str(tmp_path / "d"), ServerOptions(port=0, auth=True), **FAST)
    try:
        yield srv
    finally:
        srv.stop(grace=1)


@pytest.fixture
def milvus(server: Server) -> Iterator[PyMilvusClient]:
    client = PyMilvusClient(uri=f"http://{server.address}", timeout=30)
    try:
        yield client
    finally:
        client.close()
