"""pymilvus's user and access-control methods on the embedded client: each exists and is
refused with one clear error pointing at ``gpuvec serve --auth`` (never an AttributeError
in a user's script), shown in a ``python -c`` subprocess as users run it; and
``create_field_schema`` builds a field as pymilvus's does."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from gpuvec import MilvusClient
from gpuvec.client.access import _METHODS
from gpuvec.config import Config
from gpuvec.errors import NotSupportedYetError
from gpuvec.schema import DataType


def test_every_access_method_refuses_clearly(tmp_path: Path) -> None:
    c = MilvusClient(str(tmp_path / "db"), config=Config(dashboard_address=""))
    try:
        for name in _METHODS:
            with pytest.raises(NotSupportedYetError, match=f"{name}: the embedded runtime has"):
                getattr(c, name)("x")
        field = c.create_field_schema("note", DataType.VARCHAR, "a note", max_length=8,
                                      nullable=True)  # fmt: skip
        assert (field.name, field.dtype, field.nullable) == ("note", DataType.VARCHAR, True)
    finally:
        c.close()


def test_a_script_gets_the_reason(tmp_path: Path) -> None:
    script = ("import sys; from gpuvec import MilvusClient; "
              "MilvusClient(sys.argv[1]).create_user('alice', 'secret-1')")  # fmt: skip
    got = subprocess.run([sys.executable, "-c", script, str(tmp_path / "db")],
                         capture_output=True, text=True, timeout=120)  # fmt: skip
    assert got.returncode != 0
    assert "gpuvec serve --auth" in got.stderr and "AttributeError" not in got.stderr


def test_pymilvus_access_methods_all_exist() -> None:
    pymilvus = pytest.importorskip("pymilvus", reason="pymilvus is a test dependency")
    theirs = {n for n in dir(pymilvus.MilvusClient) if not n.startswith("_")}
    wanted = set(_METHODS) | {"create_field_schema"}
    assert wanted <= theirs  # the names are pymilvus's
    assert wanted <= {n for n in dir(MilvusClient) if not n.startswith("_")}
