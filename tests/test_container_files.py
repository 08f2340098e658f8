"""No Docker engine here: validate what can be validated of Dockerfile and docker-compose.yml."""

from __future__ import annotations

import json
import re
from pathlib import Path

import yaml

from service.cli import build_parser
from service.settings import Settings

ROOT = Path(__file__).resolve().parents[1]


def test_compose_file_is_consistent() -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    services = compose["services"]
    assert {"postgres", "calibserve", "prometheus"} <= set(services)
    env = services["calibserve"]["environment"]
    fields = set(Settings.model_fields)
    for key in env:
        if key.startswith("CALIBSERVE_"):
            assert key.removeprefix("CALIBSERVE_").lower() in fields, key
    assert env["CALIBSERVE_DATABASE_URL"].startswith("postgresql://")
    assert services["calibserve"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    for volume in services["prometheus"]["volumes"]:
        assert (ROOT / volume.split(":")[0]).exists(), volume


def test_dockerfile_runs_a_real_cli_command() -> None:
    text = (ROOT / "Dockerfile").read_text()
    cmd = json.loads(re.search(r"^CMD (\[.*\])$", text, re.M).group(1))  # type: ignore[union-attr]
    assert cmd[0] == "calibserve"
    build_parser().parse_args(cmd[1:])
    for copied in re.findall(r"^COPY (\S+)", text, re.M):
        assert (ROOT / copied).exists(), copied
    assert "torch" not in text.split("RUN", 1)[1].split("\n")[0]  # the serving image installs no torch
