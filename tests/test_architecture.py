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
    "db": set(),
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
