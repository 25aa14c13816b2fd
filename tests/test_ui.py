"""The Dagster UI in a real browser: `dagster dev` on a temp instance that a short nightly range of the
synthetic market was materialised into, and headless Chromium on the global asset lineage, which must
draw every group and asset of `defs` with its checks passed.

`UPDATE_SCREENSHOT=1` also writes the screenshot to docs/ui-lineage.png (the README shows it).
"""

from __future__ import annotations

import datetime as dt
import math
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections import Counter
from pathlib import Path

import dagster as dg
import pytest
from playwright.sync_api import Page, expect, sync_playwright

from assets.partitions import month_key
from pipeline.definitions import defs
from pipeline.settings import Settings
from pipeline.sources.replay.dataset import load_dataset
from pipeline.sources.replay.synthetic import ensure_synthetic
from tests.conftest import CHROMIUM, CHROMIUM_ARGS

ROOT = Path(__file__).resolve().parents[1]
# The altseason mart needs 90-day returns of tokens listed 30 days: 120 days give every mart rows.
DAYS = 120
# Below a scale of 0.6 the lineage graph draws bare names, without the checks row.
GRAPH_SCALE = 0.65
SCREENSHOT = ROOT / "docs" / "ui-lineage.png"

pytestmark = [
    pytest.mark.ui,
    pytest.mark.skipif(CHROMIUM is None, reason="no Chromium: apt-get install chromium (.ci/run does)"),
]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _tail(path: Path, lines: int = 40) -> str:
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


def _wait_for_server(server: subprocess.Popen, url: str, log: Path, timeout_s: float = 180) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if server.poll() is not None:
            pytest.fail(f"dagster dev exited with {server.returncode}:\n{_tail(log)}")
        try:
            with urllib.request.urlopen(f"{url}/server_info", timeout=2):
                return
        except (urllib.error.URLError, OSError):
            time.sleep(0.5)
    pytest.fail(f"dagster dev did not answer on {url} within {timeout_s:.0f} s:\n{_tail(log)}")


def _stop(server: subprocess.Popen) -> None:
    """dagster dev runs the webserver, the daemon and a code server as children: end the whole group."""
    try:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=10)
    except subprocess.TimeoutExpired:
        pass
    except ProcessLookupError:
        return
    try:  # a child the leader left behind, or a group that ignored SIGTERM
        os.killpg(server.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    server.wait()


def _groups() -> dict[str, list]:
    """Group name -> asset nodes, from the project's Definitions (so a new group is covered too)."""
    groups: dict[str, list] = {}
    graph = defs.resolve_asset_graph()
    for key in sorted(graph.get_all_asset_keys()):
        node = graph.get(key)
        groups.setdefault(node.group_name, []).append(node)
    return groups


@pytest.fixture(scope="module")
def dagster_ui(tmp_path_factory: pytest.TempPathFactory):
    with pytest.MonkeyPatch.context() as monkeypatch:
        yield from _dagster_ui(tmp_path_factory.mktemp("ui"), monkeypatch)


def _dagster_ui(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """URL of `dagster dev` on a temp instance and warehouse into which the nightly job materialised
    the last DAYS of the synthetic market, charts on."""
    home = tmp_path / "dagster_home"
    home.mkdir()
    # No run the daemon would launch (a schedule's tick, an automation) starts: the test's own run
    # stays the warehouse's only writer.
    (home / "dagster.yaml").write_text(
        "telemetry:\n  enabled: false\nnux:\n  enabled: false\nrun_queue:\n  max_concurrent_runs: 0\n"
    )
    market = ensure_synthetic(Settings.from_env().replay_cache)
    for name, value in {
        "ROTATION_WAREHOUSE": str(tmp_path / "rotation.duckdb"),
        "ROTATION_SOURCES": "replay",
        "ROTATION_REPLAY_DATA": str(market),
        "DAGSTER_EMIT_PARTITION_SUBSET_IN_PLANNED_EVENTS": "true",
        "ROTATION_CHARTS": "1",
    }.items():
        monkeypatch.setenv(name, value)
    url = f"http://127.0.0.1:{_free_port()}"
    server_log = tmp_path / "dagster-dev.log"
    with server_log.open("w") as out:  # a file, not a pipe nobody reads, which would stall the server
        server = subprocess.Popen(
            [sys.executable, "-m", "dagster", "dev", "-w", "workspace.yaml", "-h", "127.0.0.1",
             "-p", url.rsplit(":", 1)[1]],
            cwd=ROOT, env={**os.environ, "DAGSTER_HOME": str(home), "PYTHONPATH": str(ROOT)},
            stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )
    try:
        # While the server boots; in this process, which has imported the pipeline already (as
        # `make demo` runs it). A failed blocking check raises here.
        as_of = load_dataset(market).as_of
        with dg.DagsterInstance.from_config(str(home)) as instance:
            defs.resolve_job_def("nightly").execute_in_process(
                instance=instance,
                tags={
                    "dagster/asset_partition_range_start": month_key(as_of - dt.timedelta(days=DAYS - 1)),
                    "dagster/asset_partition_range_end": month_key(as_of),
                },
            )
        _wait_for_server(server, url, server_log)
        yield url
    finally:
        _stop(server)


def _fit_graph(page: Page) -> None:
    """Size the window so the whole graph fits at GRAPH_SCALE, then let the UI zoom to fit it."""
    graph = page.locator("[data-svg-viewport] > div > svg")
    width, height = (float(graph.get_attribute(side)) for side in ("width", "height"))
    box = page.locator("[data-svg-viewport]").bounding_box()
    window = page.viewport_size
    # The graph is centred, and the search bar floats over its top: room for the bar above and below.
    page.set_viewport_size({
        "width": max(window["width"], math.ceil(window["width"] - box["width"] + width * GRAPH_SCALE)),
        "height": max(window["height"], math.ceil(window["height"] - box["height"] + height * GRAPH_SCALE) + 120),
    })
    # A double click on the background zooms the graph to fit the width (the viewport is its target).
    page.locator("[data-svg-viewport]").dispatch_event("dblclick")
    page.wait_for_timeout(1500)  # the zoom animates


def test_the_lineage_shows_every_group_asset_and_check(dagster_ui: str, tmp_path: Path):
    groups = _groups()
    expanded = ",".join(f"global@global:{g}" for g in groups)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1600, "height": 1000})
            page.set_default_timeout(30_000)
            # Top to bottom reads ingest -> analytics -> publish; the app's menu takes no room.
            page.add_init_script(
                "localStorage.setItem('asset-graph-direction', '\"vertical\"');"
                "localStorage.setItem('dagster-nav-collapsed', 'true');"
            )
            page.goto(f"{dagster_ui}/asset-groups?{urllib.parse.urlencode({'expanded': expanded})}")
            expect(page.get_by_text("Global asset lineage")).to_be_visible()
            for group in groups:
                expect(page.locator("foreignObject.group").get_by_text(group, exact=True)).to_be_visible()
            page.locator('button:has([aria-label="panel_show_right"])').last.click()  # hide the sidebar
            expect(page.get_by_placeholder("Jump to…")).to_be_hidden()
            _fit_graph(page)

            nodes = [node for members in groups.values() for node in members]
            # A node is titled with the last component of its key (raw/ohlcv_1d: ohlcv_1d).
            for name, count in Counter(node.key.path[-1] for node in nodes).items():
                expect(page.locator(f'foreignObject [data-tooltip="{name}"]')).to_have_count(count)
            for node in nodes:  # its checks row links to its Checks tab
                checks = page.locator(f'a[href="/assets/{"/".join(node.key.path)}?view=checks"]')
                if node.check_keys:
                    expect(checks).to_have_text(f"{len(node.check_keys)} / {len(node.check_keys)} Passed")
                else:
                    expect(checks).to_have_count(0)
            shot = tmp_path / "ui-lineage.png"
            page.screenshot(path=shot, full_page=True)
            if os.environ.get("UPDATE_SCREENSHOT") == "1":
                SCREENSHOT.parent.mkdir(exist_ok=True)
                shutil.copyfile(shot, SCREENSHOT)

            # An asset's Checks tab names each check and its result.
            node = next(n for n in nodes if n.check_keys)
            page.locator(f'a[href="/assets/{"/".join(node.key.path)}?view=checks"]').click()
            expect(page.get_by_text(f"Checks ({len(node.check_keys)})")).to_be_visible()
            for check in node.check_keys:
                expect(page.get_by_text(check.name, exact=True).first).to_be_visible()
            expect(page.get_by_text("This is a blocking asset check.")).to_be_visible()
            expect(page.get_by_text("Succeeded").first).to_be_visible()
        finally:
            browser.close()


def test_the_relative_strength_page_shows_its_chart(dagster_ui: str, tmp_path: Path):
    """The asset's page shows its latest materialization's rotation graph: the metadata row `chart`
    opens the embedded PNG, decoded at its full size."""
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1600, "height": 1000})
            page.set_default_timeout(30_000)
            page.goto(f"{dagster_ui}/assets/marts/relative_strength")
            row = page.locator("tr", has=page.locator("td", has_text="chart"))
            row.get_by_text("[Show Markdown]").click()
            chart = page.get_by_role("img", name=re.compile(r"^Relative rotation vs BTC, 8 weekly points, as of \d{4}-\d{2}-\d{2}$"))
            expect(chart).to_be_visible()
            assert chart.evaluate("image => [image.complete, image.naturalWidth, image.naturalHeight]") == [True, 640, 400]
            page.screenshot(path=tmp_path / "relative_strength.png")
        finally:
            browser.close()
