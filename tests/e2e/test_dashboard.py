"""The built-in dashboard in Debian's headless Chromium (Playwright) against a real uvicorn server: the demo
flow (predict, label, re-fit, label again) with no console error, the reliability diagram drawn right
after a re-fit activated a calibrator that has no labels yet, and the page's numbers equal the JSON API's
(Wilson intervals against scipy). A screenshot of the final page is kept in var/test-artifacts/."""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from playwright.sync_api import Browser, ConsoleMessage, Page, sync_playwright
from scipy.stats import binomtest

from tests.conftest import ADMIN_TOKEN
from tests.e2e.server import ROOT, running_server
from tests.factories import digits, ids_of, post_labels, predict

pytestmark = pytest.mark.e2e
CHROMIUM = "/usr/bin/chromium"
# Debian's chromium, quiet: no GPU, no background fetches (the machine has no network but the registries)
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
ARTIFACTS = Path(os.environ.get("CALIBSERVE_TEST_ARTIFACTS", ROOT / "var" / "test-artifacts"))
QUERY = "window=2m&step=5s"  # with 5 s buckets: 24 points, a few of them labelled


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if shutil.which(CHROMIUM) is None:
        pytest.fail(f"{CHROMIUM} is required: run scripts/install-system-packages.sh")
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield b
        b.close()


class Dashboard:
    """One browser tab on /dashboard, recording every console error and uncaught exception."""

    def __init__(self, browser: Browser, base_url: str) -> None:
        self.page: Page = browser.new_page(viewport={"width": 1280, "height": 1500})
        self.base_url = base_url
        self.errors: list[str] = []
        self.page.on("console", self._console)
        self.page.on("pageerror", lambda exc: self.errors.append(f"pageerror: {exc}"))
        self.page.on("requestfailed", lambda req: self.errors.append(f"request failed: {req.url}"))

    def _console(self, message: ConsoleMessage) -> None:
        if message.type in ("error", "warning"):
            self.errors.append(f"console {message.type}: {message.text}")

    def open(self, query: str = QUERY) -> None:
        self.page.goto(f"{self.base_url}/dashboard?{query}")
        self.wait_ready()

    def wait_ready(self) -> None:
        self.page.wait_for_function("['ready', 'error'].includes(document.body.dataset.state)", timeout=20_000)
        assert self.page.evaluate("document.body.dataset.state") == "ready", self.page.inner_text("#status")

    def choose_calibrator(self, value: str) -> None:
        self.page.select_option("#cal", value)
        self.wait_ready()

    def report(self) -> dict[str, Any]:
        result: dict[str, Any] = self.page.evaluate("calibDash.state.report")
        return result

    def bin_rows(self) -> list[list[str]]:
        rows: list[list[str]] = self.page.eval_on_selector_all(
            "#bins tbody tr", "rows => rows.map(r => [...r.cells].map(c => c.textContent))")
        return rows


def api(client: httpx.Client, calibrator: str, window: dict[str, str]) -> dict[str, Any]:
    """The JSON API's answer for the page's own window (its start and end, not "the last 2 minutes" again:
    a step boundary passing between the two requests would move a bucket to the next point)."""
    r = client.get("/v1/models/digits/versions/1/calibration",
                   params={"start": window["start"], "end": window["end"], "step": "5s", "calibrator": calibrator})
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


def assert_page_matches_api(dash: Dashboard, client: httpx.Client, calibrator: str) -> dict[str, Any]:
    shown = dash.report()
    expected = api(client, calibrator, shown["window"])
    assert (shown["labelled"], shown["calibrator_version"]) == (expected["labelled"], expected["calibrator_version"])
    filled = [b for b in expected["reliability"] if b["count"]]
    if filled:  # MCE is shown with the bin it comes from and that bin's sample size
        worst = max(filled, key=lambda b: abs(b["accuracy"] - b["confidence"]))
        assert abs(worst["accuracy"] - worst["confidence"]) == pytest.approx(expected["mce"], abs=1e-9)
        assert f"{expected['mce']:.4f} (bin {worst['lo']:.2f}–{worst['hi']:.2f}, n = {worst['count']})" \
            in dash.page.inner_text("#kv")
    assert dash.page.get_attribute("#rel", "data-bins") == str(len(filled))
    assert dash.page.get_attribute("#rel", "data-labelled") == str(expected["labelled"])
    rows = dash.bin_rows()
    assert [int(r[1]) for r in rows] == [b["count"] for b in filled]
    for row, b in zip(rows, filled, strict=True):
        correct = round(b["accuracy"] * b["count"])
        assert int(row[2]) == correct
        ci = binomtest(correct, b["count"]).proportion_ci(confidence_level=0.95, method="wilson")
        assert float(row[5]) == pytest.approx(ci.low, abs=1e-4) and float(row[6]) == pytest.approx(ci.high, abs=1e-4)
    # a real time axis: one point per step over the window, the labelled ones carrying an ECE and interval
    assert len(shown["series"]) == len(expected["series"]) == 24
    assert [p["ece"] for p in shown["series"]] == [p["ece"] for p in expected["series"]]
    assert all(p["ece_ci"][0] <= p["ece"] <= p["ece_ci"][1] for p in shown["series"] if p["ece"] is not None)
    return expected


def label(client: httpx.Client, start: int, stop: int) -> None:
    x, y = digits()
    ids: list[str] = []
    for i in range(start, stop, 50):
        ids += ids_of(predict(client, x[i:min(i + 50, stop)]))
    assert post_labels(client, ids, [int(v) for v in y[start:stop]])["counts"] == {"accepted": stop - start}


def test_dashboard_through_the_demo_flow(browser: Browser, database_url: str, model_repository: Path) -> None:
    with running_server(database_url, model_repository, ADMIN_TOKEN=ADMIN_TOKEN, LOG_FLUSH_SECONDS=0.01,
                        CALIBRATOR_POLL_SECONDS=0.2, BUCKET_SECONDS=5) as base_url, \
            httpx.Client(base_url=base_url, timeout=30) as client:
        dash = Dashboard(browser, base_url)

        # before any label: the page loads, says so, and draws empty charts without an error
        dash.open()
        assert dash.page.input_value("#cal") == "all"
        assert dash.page.get_attribute("#rel", "data-bins") == "0"
        assert "no labelled predictions" in dash.page.inner_text("#rel-sub")

        label(client, 0, 300)
        time.sleep(5.5)
        dash.open()
        assert_page_matches_api(dash, client, "all")
        assert dash.page.locator("#rel canvas").count() == 1 and dash.page.locator("#hist canvas").count() == 1

        # re-fit and activate: the new calibrator has no labels, and the default view still shows them all
        refit = client.post("/v1/admin/models/digits/versions/1/calibrators",
                            headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
                            json={"method": "temperature", "activate": "always", "min_labels": 50,
                                  "min_per_class": 1})
        assert refit.status_code == 201, refit.text
        time.sleep(5.5)  # the next labels land in later buckets: separate points on the time axis
        dash.open()
        assert dash.page.input_value("#cal") == "all"
        assert_page_matches_api(dash, client, "all")
        assert dash.report()["labelled"] == 300
        history = dash.page.eval_on_selector_all("#history tbody tr", "rows => rows.map(r => r.dataset.calibrator)")
        assert history == ["1", "2"]
        assert dash.page.inner_text("#history tbody tr[data-calibrator='2'] td:nth-child(2)") == "active"
        markers = dash.page.evaluate("calibDash.state.markers.map(m => m.label)")
        assert "calibrator 2 active" in markers

        # the selector narrows to the new calibrator (no labels yet), then labels arrive for it
        dash.choose_calibrator("active")
        assert dash.report()["calibrator_version"] == 2 and dash.report()["labelled"] == 0
        assert dash.page.get_attribute("#rel", "data-bins") == "0"
        label(client, 300, 500)
        dash.open(f"{QUERY}&calibrator=2")
        assert dash.page.input_value("#cal") == "2"
        assert_page_matches_api(dash, client, "2")
        dash.choose_calibrator("all")
        expected = assert_page_matches_api(dash, client, "all")
        assert expected["labelled"] == 500
        drift = dash.page.inner_text("#drift-state")
        assert drift == expected["drift"]["state"]
        assert sum(p["ece"] is not None for p in expected["series"]) >= 2

        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        shot = ARTIFACTS / f"dashboard-{database_url.split(':')[0].split('+')[0]}.png"
        dash.page.screenshot(path=str(shot), full_page=True)
        assert shot.stat().st_size > 20_000
        dash.page.close()
        assert dash.errors == []


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_wilson_interval_matches_scipy(browser: Browser, database_url: str, model_repository: Path) -> None:
    # hand-picked edge cases: empty bins, all wrong, all right, one row, a large bin
    cases = [(0, 1), (1, 1), (0, 3), (3, 3), (1, 3), (7, 20), (299, 300), (150, 300)]
    with running_server(database_url, model_repository, BUCKET_SECONDS=5) as base_url:
        dash = Dashboard(browser, base_url)
        dash.open()
        got = np.array(dash.page.evaluate("cases => cases.map(([k, n]) => calibDash.wilson(k, n))", cases))
        dash.page.close()
    want = [binomtest(k, n).proportion_ci(confidence_level=0.95, method="wilson") for k, n in cases]
    np.testing.assert_allclose(got, [[c.low, c.high] for c in want], atol=1e-12)
    assert dash.errors == []
