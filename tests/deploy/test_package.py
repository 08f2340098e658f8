"""The package as a user installs it: a wheel built from a copy of the sources, installed NON-editable into a
fresh virtualenv (no system site-packages, dependencies resolved by pip from pyproject.toml), run from a
directory that holds no source tree: ``calibserve db upgrade`` migrates PostgreSQL, ``calibserve serve``
answers the health, predict and dashboard endpoints, and the serving install has no torch, scikit-learn
or tqdm.

Honest and affordable: pip resolves every dependency for real, and its wheel cache makes a second run take
seconds instead of a minute. Nothing is borrowed from the development venv."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import venv
from pathlib import Path

import httpx
import pytest

from tests.e2e.server import free_port, wait_ready

pytestmark = [pytest.mark.e2e, pytest.mark.slow]
ROOT = Path(__file__).resolve().parents[2]


def run(args: list[str], *, cwd: Path, env: dict[str, str] | None = None, timeout: float = 600) -> str:
    out = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False)
    assert out.returncode == 0, f"{args} failed:\n{out.stdout[-3000:]}\n{out.stderr[-3000:]}"
    return out.stdout


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """bin/ of a fresh venv with the wheel installed (and its declared dependencies only)."""
    root = tmp_path_factory.mktemp("package")
    source = root / "src"  # a copy, as an sdist would be: the build leaves build/ and *.egg-info behind
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    shutil.copytree(ROOT / "service", source / "service", ignore=shutil.ignore_patterns("__pycache__"))
    run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--wheel-dir", str(root / "wheels"),
         str(source)], cwd=root)
    (wheel,) = (root / "wheels").glob("calibserve-*.whl")
    venv.create(root / "venv", with_pip=True, system_site_packages=False)
    bin_dir = root / "venv" / "bin"
    run([str(bin_dir / "python"), "-m", "pip", "install", "--quiet", str(wheel)], cwd=root)
    return bin_dir


def clean_env(**extra: str) -> dict[str, str]:
    """The caller's environment without anything that would import the checkout instead of the wheel."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME")}
    return {**env, **extra}


def test_wheel_install_has_no_training_dependencies(installed: Path, tmp_path: Path) -> None:
    code = ("import importlib.util as u, service; "
            "print(service.__file__); "
            "print(*[m for m in ('torch', 'sklearn', 'tqdm') if u.find_spec(m) is not None])")
    where, missing = run([str(installed / "python"), "-c", code], cwd=tmp_path, env=clean_env()).splitlines()
    assert Path(where).is_relative_to(installed.parent) and "site-packages" in where
    assert missing == ""


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_wheel_install_migrates_and_serves(installed: Path, tmp_path: Path, database_url: str,
                                           model_repository: Path) -> None:
    from sqlalchemy import text

    from service.db.engine import make_engine

    # the fixture migrated this database with the checkout; start from nothing so the wheel's migrations run
    engine = make_engine(database_url)
    with engine.begin() as conn:
        conn.execute(text("DROP SCHEMA public CASCADE; CREATE SCHEMA public"))
    engine.dispose()
    port = free_port()
    env = clean_env(CALIBSERVE_DATABASE_URL=database_url, CALIBSERVE_MODEL_REPOSITORY=str(model_repository))
    assert "database upgraded" in run([str(installed / "calibserve"), "db", "upgrade"], cwd=tmp_path, env=env)
    engine = make_engine(database_url)
    with engine.connect() as conn:
        assert conn.execute(text("select version_num from alembic_version")).scalar_one()
    engine.dispose()

    log = (tmp_path / "serve.log").open("wb")
    server = subprocess.Popen([str(installed / "calibserve"), "serve", "--host", "127.0.0.1", "--port", str(port)],
                              cwd=tmp_path, env=env, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        try:
            wait_ready(base, server, timeout=60)
        except Exception as exc:
            raise AssertionError(f"{exc}\n{(tmp_path / 'serve.log').read_text()[-3000:]}") from None
        assert httpx.get(f"{base}/v2/health/live", timeout=5).status_code == 200
        r = httpx.post(f"{base}/v1/models/digits/predict", json={"instances": [[0.0] * 64]}, timeout=10)
        assert r.status_code == 200 and len(r.json()["predictions"]) == 1, r.text
        page = httpx.get(f"{base}/dashboard", timeout=5)
        assert page.status_code == 200 and httpx.get(f"{base}/dashboard/uPlot.iife.min.js").status_code == 200
    finally:
        server.terminate()
        server.wait(timeout=20)
        log.close()
