"""The package's layering, checked over the source's ``ast`` (docs/architecture.md, "Levels"):

1. CuPy is imported only in ``gpuvec/ops`` (every other module reaches the device through it);
2. the foundation (shared vocabulary) and the engines (``ops``, ``index``, ``expr``,
   ``storage``, ``text``) import nothing above them: no role, runtime, client or server;
3. the roles import only the roles below them (:data:`ROLE_DEPS`), never a runtime, the
   client or the server;
4. no module imports another package's ``_private`` name or reaches into another
   package's ``_private`` attribute (a name counts as a package's own when the package
   defines it: ``self._x = …``, ``def _x``, ``_x = …``).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2] / "gpuvec"
FOUNDATION = {"errors", "arrays", "datatypes", "schema", "records", "config", "faults", "rows",
              "rows_json", "columns", "columns_rules", "vectors", "vector_input", "sparse",
              "functions", "names",
              "storage.meta.keys",
              "storage.objects.paths"}  # fmt: skip
ENGINES = {"ops", "index", "expr", "storage", "text"}
ROLE_DEPS = {  # role → the roles it may use
    "datanode": set(),
    "pipelines": set(),  # the Dask job bodies
    "coord": {"datanode", "pipelines"},
    "query": {"coord"},
    "streaming": {"coord", "query"},
    "proxy": {"coord", "query"},
}
ABOVE_ROLES = {"runtime", "cluster", "client", "server", "demo", "__main__"}
# attributes of other libraries' objects that merely start with "_" (their public API)
FOREIGN_OK = {"_replace", "_asdict", "_fields", "_make"}
FOREIGN_OWNERS = {"KafkaError"}  # confluent_kafka's error codes are KafkaError._NAME


def modules() -> dict[str, ast.Module]:
    """gpuvec's modules by dotted name under ``gpuvec`` (``pipelines/`` and ``kernels/``
    are installed as ``gpuvec.pipelines`` / ``gpuvec.kernels``)."""
    out = {}
    trees = [(ROOT, ()), (ROOT.parent / "pipelines", ("pipelines",)),
             (ROOT.parent / "kernels", ("kernels",))]  # fmt: skip
    for base, prefix in trees:
        for path in sorted(base.rglob("*.py")):
            rel = path.relative_to(base).with_suffix("")
            parts = (*prefix, *(p for p in rel.parts if p != "__init__"))
            out[".".join(parts) or "__init__"] = ast.parse(path.read_text(), str(path))
    return out


MODULES = modules()


def package(module: str) -> str:
    return module.split(".")[0]


def imports(tree: ast.Module) -> list[tuple[int, str, list[str]]]:
    """``(line, module, names)`` of every import (module-level and lazy)."""
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name, []) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.append((node.lineno, node.module, [a.name for a in node.names]))
    return out


def gpuvec_targets(module: str) -> list[tuple[int, str, list[str]]]:
    """The gpuvec modules ``module`` imports (``from gpuvec import x`` names module x)."""
    out = []
    for line, m, names in imports(MODULES[module]):
        if m == "gpuvec":
            out += [(line, n if n in MODULES else "__init__", []) for n in names] or [
                (line, "__init__", [])
            ]
        elif m.startswith("gpuvec."):
            out.append((line, m.removeprefix("gpuvec."), names))
    return out


def level_of(target: str) -> str:
    if any(target == f or target.startswith(f + ".") for f in FOUNDATION):
        return "foundation"
    top = package(target)
    if top in ENGINES:
        return "engine"
    if top in ROLE_DEPS:
        return "role"
    return "above"


def test_cupy_only_in_ops() -> None:
    bad = [f"gpuvec/{m.replace('.', '/')}.py:{line}" for m in MODULES
           for line, name, _ in imports(MODULES[m])
           if name.split(".")[0] == "cupy" and package(m) != "ops"]  # fmt: skip
    assert bad == [], "CuPy is imported outside gpuvec/ops: " + ", ".join(bad)


@pytest.mark.parametrize(
    "module", sorted(m for m in MODULES if level_of(m) in ("foundation", "engine"))
)
def test_low_layers_import_no_role(module: str) -> None:
    mine = level_of(module)
    allowed = {"foundation"} if mine == "foundation" else {"foundation", "engine"}
    bad = [(line, t) for line, t, _ in gpuvec_targets(module) if level_of(t) not in allowed]
    assert bad == [], f"gpuvec.{module} ({mine}) imports above its level: {bad}"


@pytest.mark.parametrize("module", sorted(m for m in MODULES if level_of(m) == "role"))
def test_roles_import_only_lower_roles(module: str) -> None:
    mine = package(module)
    bad = []
    for line, t, _ in gpuvec_targets(module):
        top = package(t)
        if top in ABOVE_ROLES or (top in ROLE_DEPS and top != mine and top not in
                                  ROLE_DEPS[mine]):  # fmt: skip
            bad.append((line, t))
    assert bad == [], f"gpuvec.{module} (role {mine}) imports {bad}; allowed: {ROLE_DEPS[mine]}"


def _defined_private(pkg: str) -> set[str]:
    """Private names a package defines (attributes on self, functions, module globals)."""
    out: set[str] = set()
    for m, tree in MODULES.items():
        if package(m) != pkg:
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                out.add(node.name)
            elif isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store):
                out.add(node.attr)
            elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
                out.add(node.id)
    return {n for n in out if n.startswith("_") and not n.startswith("__")}


def _private(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__")


@pytest.mark.parametrize("pkg", sorted({package(m) for m in MODULES} - {"testing"}))
def test_no_reach_into_another_packages_privates(pkg: str) -> None:
    own = _defined_private(pkg)
    bad = []
    for m, tree in MODULES.items():
        if package(m) != pkg:
            continue
        for line, t, names in gpuvec_targets(m):
            if package(t) != pkg:
                bad += [(m, line, f"from gpuvec.{t} import {n}") for n in names if _private(n)]
        for node in ast.walk(tree):
            if not (isinstance(node, ast.Attribute) and _private(node.attr)):
                continue
            owner = node.value
            if isinstance(owner, ast.Name) and owner.id in ("self", "cls"):
                continue
            if node.attr in own or node.attr in FOREIGN_OK:
                continue
            if isinstance(owner, ast.Name) and owner.id in FOREIGN_OWNERS:
                continue
            bad.append((m, node.lineno, f"{ast.unparse(owner)}.{node.attr}"))
    assert bad == [], f"reaches into other packages' private names: {bad}"


def test_the_rules_see_the_package() -> None:
    """The checks above run over the real tree (not an empty glob)."""
    assert {"ops.backend", "runtime.embedded", "client.facade", "records"} <= set(MODULES)
    assert level_of("storage.meta.keys") == "foundation" and level_of("query.node") == "role"


def test_every_package_is_installed() -> None:
    """pyproject.toml lists packages explicitly: a new subpackage must be added there, or
    ``pip install gpuvec`` ships without it."""
    import tomllib

    listed = set(tomllib.loads((ROOT.parent / "pyproject.toml").read_text())["tool"]
                 ["setuptools"]["packages"])  # fmt: skip
    found = {".".join(("gpuvec", *p.parent.relative_to(ROOT).parts)).rstrip(".")
             for p in ROOT.rglob("__init__.py")}  # fmt: skip
    found |= {"gpuvec.pipelines", "gpuvec.kernels"}
    assert found - listed == set(), f"missing from pyproject.toml packages: {found - listed}"
