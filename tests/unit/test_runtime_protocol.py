"""Both runtimes implement the whole :class:`gpuvec.runtime.base.Runtime` interface: every
method with the Protocol's parameter names, every attribute (checked on the classes, and
on a live embedded engine), and the client facade calls nothing outside it."""

from __future__ import annotations

import ast
import inspect
from pathlib import Path

import pytest

from gpuvec import MilvusClient
from gpuvec.cluster.proxy import ClusterEngine
from gpuvec.config import Config
from gpuvec.runtime.base import Runtime
from gpuvec.runtime.embedded import Engine

ATTRIBUTES = set(getattr(Runtime, "__annotations__", {}))
METHODS = {n for n in dir(Runtime) if not n.startswith("_") and callable(getattr(Runtime, n))}
MEMBERS = METHODS | ATTRIBUTES | {"dashboard_link"}


@pytest.mark.parametrize("cls", [Engine, ClusterEngine], ids=lambda c: c.__name__)
def test_every_method_with_the_protocols_parameters(cls: type) -> None:
    assert METHODS, "the Protocol lists no methods"
    for name in sorted(METHODS):
        impl = getattr(cls, name, None)
        assert callable(impl), f"{cls.__name__} lacks {name}()"
        want = [p for p in inspect.signature(getattr(Runtime, name)).parameters if p != "self"]
        have = list(inspect.signature(impl).parameters)
        have = [p for p in have if p != "self"]
        assert have[: len(want)] == want, f"{cls.__name__}.{name}{have} vs Runtime {want}"
    assert isinstance(getattr(cls, "dashboard_link", None), property), cls


def test_a_live_engine_is_a_runtime(tmp_path: Path) -> None:
    client = MilvusClient(str(tmp_path / "db"), config=Config(dashboard_address=""))
    try:
        engine = client._engine
        assert isinstance(engine, Runtime)
        for attr in ATTRIBUTES:
            assert hasattr(engine, attr), attr
        assert engine.kind == "embedded" and ClusterEngine.kind == "cluster"
    finally:
        client.close()


def test_the_facade_uses_only_the_interface() -> None:
    """Every ``self._engine.<name>`` in gpuvec/client/ is a Runtime member (what a new
    runtime must provide is exactly the Protocol)."""
    root = Path(inspect.getfile(MilvusClient)).parent
    used: set[str] = set()
    for path in root.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Attribute)
                    and node.value.attr == "_engine"):  # fmt: skip
                used.add(node.attr)
    assert used, "the facade reaches its runtime as self._engine"
    assert used <= MEMBERS, f"not in the Runtime Protocol: {sorted(used - MEMBERS)}"
