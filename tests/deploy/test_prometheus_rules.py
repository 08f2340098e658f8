"""deploy/prometheus: the scrape config and rules pass ``promtool check``, the rules pass their
``promtool test rules`` unit tests, and a real /metrics scrape passes ``promtool check metrics``."""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from tests.factories import digits, ids_of, post_labels, predict

DEPLOY = Path(__file__).resolve().parents[2] / "deploy" / "prometheus"


def promtool(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    exe = shutil.which("promtool")
    if exe is None:
        pytest.fail("promtool is required: run scripts/install-system-packages.sh (Debian package 'prometheus')")
    return subprocess.run([exe, *args], input=stdin, capture_output=True, text=True, timeout=60, check=False)


def test_scrape_config_and_rules_pass_promtool_check() -> None:
    config = promtool("check", "config", str(DEPLOY / "prometheus.yml"))
    assert config.returncode == 0, config.stdout + config.stderr
    rules = promtool("check", "rules", *map(str, sorted((DEPLOY / "rules").glob("*.rules.yml"))))
    assert rules.returncode == 0, rules.stdout + rules.stderr
    assert "SUCCESS: 18 rules found" in rules.stdout  # calibration.rules.yml
    assert "SUCCESS: 11 rules found" in rules.stdout  # decisions.rules.yml
    assert "SUCCESS: 5 rules found" in rules.stdout  # slices.rules.yml


def test_rules_pass_their_promtool_unit_tests() -> None:
    tests = sorted((DEPLOY / "tests").glob("*.test.yml"))
    assert tests
    result = promtool("test", "rules", *map(str, tests))
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_real_metrics_scrape_passes_promtool_check_metrics(client: Any) -> None:
    x, y = digits()
    body = predict(client, x[:40])
    post_labels(client, ids_of(body), y[:40].tolist())
    deadline = time.monotonic() + 10
    text = ""
    while time.monotonic() < deadline:  # the background loop refreshes the window gauges
        text = client.get("/metrics").text
        if "calibserve_calibration_window_ece{" in text:
            break
        time.sleep(0.2)
    assert "calibserve_calibration_window_ece{" in text
    checked = promtool("check", "metrics", stdin=text)
    assert checked.returncode == 0 and not checked.stdout.strip() and not checked.stderr.strip(), (
        checked.stdout + checked.stderr)
