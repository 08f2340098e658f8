"""DESIGN.md §3 dependency rule, checked by walking every import in service/, and no torch when serving."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

SERVICE = Path(__file__).resolve().parents[1] / "service"

# package → service subpackages it may import (besides itself); settings/errors are shared leaves
ALLOWED = {
    "calibration": set(),
    "db": {"calibration"},  # the one binning rule and the sufficient statistics (pure numpy) live there
    "monitoring": {"calibration", "db"},
    "repository": {"calibration", "db"},
    "handlers": {"calibration", "db", "monitoring", "repository"},
    "training": {"calibration", "repository"},
}
LEAVES = {"settings", "errors", "__init__"}


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def test_dependency_rule() -> None:
    violations = []
    for path in SERVICE.rglob("*.py"):
        parts = path.relative_to(SERVICE).parts
        if len(parts) < 2 or parts[0] not in ALLOWED:
            continue
        package = parts[0]
        for name in _imports(path):
            top = name.split(".")[0]
            if package != "training" and top == "torch":
                violations.append(f"{path}: imports torch")
            if package == "calibration" and top in {"sqlalchemy", "fastapi", "onnxruntime", "sklearn", "torch"}:
                violations.append(f"{path}: calibration/ must stay numpy/scipy, imports {name}")
            if top in {"fastapi", "starlette"} and package != "api":
                violations.append(f"{path}: only api/ and app.py may import {top}")
            if name.startswith("service."):
                target = name.split(".")[1]
                if target not in LEAVES and target != package and target not in ALLOWED[package]:
                    violations.append(f"{path}: {package}/ may not import service.{target}")
    assert violations == []


def _module_name(path: Path) -> str:
    parts = path.relative_to(SERVICE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _import_graph() -> dict[str, set[str]]:
    """service module → the service modules it imports at module level or in functions (TYPE_CHECKING
    imports included: a cycle hidden behind TYPE_CHECKING is still a cycle in the design)."""
    modules = {_module_name(p): p for p in SERVICE.rglob("*.py")}
    graph: dict[str, set[str]] = {m: set() for m in modules}
    for module, path in modules.items():
        for node in ast.walk(ast.parse(path.read_text())):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                targets = [f"{node.module}.{a.name}" if f"{node.module}.{a.name}" in modules else node.module
                           for a in node.names]
            graph[module] |= {t for t in targets if t in modules and t != module and t != "service"}
    return graph


def test_import_graph_is_acyclic() -> None:
    graph = _import_graph()
    state: dict[str, int] = {}  # 1 = on the stack, 2 = done
    cycles: list[list[str]] = []

    def visit(node: str, stack: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                cycles.append([*stack[stack.index(nxt):], nxt])
            elif nxt not in state:
                visit(nxt, [*stack, nxt])
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])
    assert cycles == []


SQL_BUILDERS = {"select", "insert", "update", "delete", "text", "any_", "func", "union_all"}


def test_sql_is_written_only_in_db() -> None:
    """Statements are built in service/db/ only; everywhere else calls its query functions."""
    offenders = []
    for path in SERVICE.rglob("*.py"):
        if path.relative_to(SERVICE).parts[0] == "db":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "sqlalchemy":
                offenders += [f"{path}: {a.name}" for a in node.names if a.name in SQL_BUILDERS]
            if isinstance(node, ast.Attribute) and node.attr in {"execute", "exec_driver_sql"}:
                offenders.append(f"{path}:{node.lineno}: .{node.attr}()")
    assert offenders == []


def test_routes_never_open_sessions() -> None:
    """Handlers own the transaction; a route makes one call into a core object."""
    offenders = [f"{p}:{n.lineno}" for p in (SERVICE / "api").rglob("*.py") for n in ast.walk(ast.parse(p.read_text()))
                 if isinstance(n, ast.Attribute) and n.attr in {"sessions", "commit", "begin", "engine"}]
    assert offenders == []


def test_serving_never_imports_torch(tmp_path: Path) -> None:
    code = (
        "import sys\n"
        "from fastapi.testclient import TestClient\n"
        "from service.app import create_app\n"
        "from service.settings import Settings\n"
        f"s = Settings(database_url='sqlite:///{tmp_path}/x.db', model_repository='{tmp_path}/none')\n"
        "from service.db.migrate import upgrade\n"
        "upgrade(s.database_url)\n"
        "with TestClient(create_app(s)) as c:\n"
        "    assert c.get('/v2/health/live').status_code == 200\n"
        "    c.get('/metrics')\n"
        "print('torch' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1] == "False"
