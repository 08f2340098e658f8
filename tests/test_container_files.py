"""No Docker engine here: validate what can be validated of Dockerfile, docker-compose.yml and their files.

hadolint lints the Dockerfile; the compose file is checked against the Compose Specification's JSON schema
(vendored in check-jsonschema, offline); every file either names exists, every CALIBSERVE_ variable is a
Settings field, and every command is one the CLI accepts."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from service.cli import build_parser
from service.settings import Settings

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def tool(name: str) -> str:
    found = shutil.which(name) or (str(BIN / name) if (BIN / name).exists() else None)
    if found is None:
        pytest.fail(f"{name} is required (dev extra in pyproject.toml)")
    return found


def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    return loaded


def stages() -> dict[str, str]:
    """Dockerfile stage name → its instructions (comments dropped)."""
    text = "".join(line for line in (ROOT / "Dockerfile").read_text().splitlines(keepends=True)
                   if not line.lstrip().startswith("#"))
    parts = re.split(r"^FROM \S+ AS (\S+)\n", text, flags=re.M)
    return dict(zip(parts[1::2], parts[2::2], strict=True))


def assert_settings_fields(names: list[str], where: str) -> None:
    fields = set(Settings.model_fields)
    unknown = [n for n in names if n.startswith("CALIBSERVE_") and n.removeprefix("CALIBSERVE_").lower() not in fields]
    assert unknown == [], f"{where}: not Settings fields: {unknown}"


def test_hadolint_passes() -> None:
    out = subprocess.run([tool("hadolint"), "--failure-threshold", "info", str(ROOT / "Dockerfile")],
                         capture_output=True, text=True, timeout=60, check=False)
    assert out.returncode == 0, out.stdout + out.stderr


def test_compose_file_matches_the_compose_specification() -> None:
    out = subprocess.run([tool("check-jsonschema"), "--builtin-schema", "vendor.compose-spec",
                          str(ROOT / "docker-compose.yml")], capture_output=True, text=True, timeout=60, check=False)
    assert out.returncode == 0, out.stdout + out.stderr


def test_compose_services_and_their_order() -> None:
    services = compose()["services"]
    assert {"postgres", "migrate", "calibserve", "nginx", "prometheus", "grafana"} <= set(services)
    assert services["migrate"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert services["calibserve"]["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
    assert services["calibserve"]["deploy"]["replicas"] >= 2
    assert "ports" not in services["calibserve"]  # reached through nginx only
    assert any(v.startswith("pgdata:") for v in services["postgres"]["volumes"])
    for name in ("migrate", "calibserve"):
        build_parser().parse_args(services[name]["command"][1:])
        assert services[name]["build"]["target"] in stages()


def test_every_file_compose_mounts_exists() -> None:
    for name, service in compose()["services"].items():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("./") and source != "./models":  # models/ is filled by `make demo`
                assert (ROOT / source).exists(), f"{name}: {volume}"
    assert (ROOT / "models" / "README.md").is_file()


def test_every_calibserve_variable_is_a_setting() -> None:
    for name, service in compose()["services"].items():
        assert_settings_fields(list(service.get("environment") or {}), f"docker-compose.yml {name}")
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert_settings_fields(re.findall(r"\b(CALIBSERVE_[A-Z_]+)=", dockerfile), "Dockerfile")


def test_nginx_balances_the_calibserve_service() -> None:
    conf = (ROOT / "deploy" / "nginx" / "nginx.conf").read_text()
    upstream = re.search(r"server (\w+):(\d+) resolve", conf)
    assert upstream and upstream.group(1) in compose()["services"]
    assert upstream.group(2) == re.search(r"CALIBSERVE_PORT=(\d+)", (ROOT / "Dockerfile").read_text()).group(1)  # type: ignore[union-attr]
    assert conf.count("{") == conf.count("}")


def test_serving_image_has_no_torch_is_non_root_and_checks_health() -> None:
    runtime, train = stages()["runtime"], stages()["train"]
    assert "torch" not in runtime and "pip install -e" not in runtime
    assert re.search(r"^USER (?!0\b|root\b)\S+", runtime, re.M)
    health = re.search(r"^HEALTHCHECK .*\n.*CMD (.*)$", runtime, re.M)
    assert health and "/v2/health/live" in health.group(1)
    assert "torch==2.13.0" in train and "download.pytorch.org/whl/cpu" in train
    build_parser().parse_args(["serve", "--workers", "2"])
    for copied in re.findall(r"^COPY (?!--from)(\S+)", (ROOT / "Dockerfile").read_text(), re.M):
        assert (ROOT / copied).exists(), copied
