"""The report page: the nightly run's `report` asset writes one self-contained page from the real
history, which agrees with the warehouse, opens offline in Chromium with every chart drawn, and can
be written as of an earlier day with nothing after it. Two warehouses in one folder each have their
own page and quality verdicts."""

from __future__ import annotations

import datetime as dt
import html
import json
import re
import shutil
from html.parser import HTMLParser
from pathlib import Path

import pytest
import vl_convert

from pipeline.__main__ import main
from pipeline.report import report_path, unpack_specs, write_report
from pipeline.settings import Settings
from tests.conftest import CHROMIUM, CHROMIUM_ARGS, REAL_DATA, copy_of, materialise_directly, nightly
from warehouse import Warehouse

CHARTS = {"rrg", "phases", "indices", "altseason", "allocation", "target_vs_portfolio", "funding", "equity", "drawdowns"}
LOOK_BACK = dt.date(2022, 5, 16)
MAX_BYTES = 5_000_000
README = Path(__file__).resolve().parents[1] / "README.md"


@pytest.fixture(scope="module")
def night(real, history, tmp_path_factory):
    """The real history up to 2025-07-29 with its recommendations and backtest, then the nightly job
    for 07-30 with charts on: (warehouse path, the day, the run's result)."""
    path = copy_of(history, tmp_path_factory.mktemp("night"))
    day = real.as_of - dt.timedelta(days=3)
    materialise_directly(REAL_DATA, path, real.first_date, day - dt.timedelta(days=1), model=True)
    with pytest.MonkeyPatch.context() as env:
        env.setenv("ROTATION_CHARTS", "1")
        result = nightly(REAL_DATA, path, day, day)
    assert result.success
    return path, day, result


class Tables(HTMLParser):
    """Every <table> of a page as rows of cell texts."""

    def __init__(self, page: str):
        super().__init__()
        self.tables: list[list[list[str]]] = []
        self._cell: list[str] | None = None
        self.feed(page)

    def handle_starttag(self, tag, attrs):
        if tag == "table":
            self.tables.append([])
        elif tag == "tr":
            self.tables[-1].append([])
        elif tag in ("td", "th"):
            self._cell = []

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self._cell is not None:
            self.tables[-1][-1].append(" ".join("".join(self._cell).split()))
            self._cell = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.append(data)

    def headed(self, *header: str) -> list[dict[str, str]]:
        """The rows of the table whose header starts with `header`, as column -> text."""
        (table,) = [t for t in self.tables if tuple(t[0][: len(header)]) == header]
        return [dict(zip(table[0], row, strict=True)) for row in table[1:]]


def test_the_nightly_report_is_one_offline_page_that_agrees_with_the_warehouse(night):
    path, day, result = night
    (materialization,) = result.asset_materializations_for_node("warehouse__report")
    page_path = Path(materialization.metadata["path"].value)
    assert page_path == report_path(path) == path.parent / "report" / "index.html"
    page = page_path.read_text()
    assert page_path.stat().st_size < MAX_BYTES
    # offline: nothing fetched, Vega's JavaScript inlined once for all charts
    assert not re.search(r"""(?:src|href)\s*=\s*["']?(?:https?:)?//""", page) and "<link" not in page
    assert page.count("window.vegaEmbed=") == 1
    assert round(len(vl_convert.javascript_bundle()) / 1e6, 1) == 0.9  # the README's "0.9 MB"
    packed = re.search(r'<script id="specs"[^>]*>([^<]*)</script>', page).group(1)
    specs = unpack_specs(packed)
    assert set(specs) == CHARTS
    # what the README says of the page's size, packed and not (its page is of 2025-08-02: within 5%)
    plain = len(page.encode()) - len(packed) + len(json.dumps(specs, separators=(",", ":")))
    said = re.search(r"the real history's page is ([\d.]+) MB, instead of ([\d.]+) MB", README.read_text())
    assert float(said[1]) == pytest.approx(len(page.encode()) / 1e6, rel=0.05)
    assert float(said[2]) == pytest.approx(plain / 1e6, rel=0.05)

    snapshot = Warehouse(Warehouse(path).snapshot_path)
    regime = snapshot.query("select * from marts.market_regime where date = ?", [day]).row(0, named=True)
    assert f"{regime['phase']} ({regime['risk_mode']}, {regime['days_in_phase']} days)" in page
    tables = Tables(page)
    rotation = snapshot.query("select * from marts.rotation_recommendation where as_of = ?", [day])
    shown = {r["sector"]: r for r in tables.headed("sector", "bucket", "current", "target")}
    assert set(shown) == set(rotation["sector"])
    for r in rotation.iter_rows(named=True):
        assert shown[r["sector"]]["target"] == f"{r['target_weight']:.1%}"
        assert shown[r["sector"]]["why"] == r["rationale"]
    # the example portfolio's orders: what the run's orders asset wrote for the night
    orders = snapshot.query("select * from marts.portfolio_orders where as_of = ? order by all", [day])
    assert orders.height > 0
    assert sorted((o["instrument"], o["side"], o["reason"]) for o in tables.headed("instrument", "side", "quantity")) \
        == sorted(orders.select("instrument", "side", "reason").iter_rows())
    # the backtest table is marts.backtest_summary's (the night is the backtest's last day)
    summary = snapshot.query("select * from marts.backtest_summary")
    backtest = {r["strategy"]: r for r in tables.headed("strategy", "total", "CAGR")}
    assert set(backtest) == set(summary["strategy"])
    for s in summary.iter_rows(named=True):
        assert backtest[s["strategy"]]["CAGR"] == f"{s['cagr']:.1%}"
        assert backtest[s["strategy"]]["Sharpe"] == f"{s['sharpe']:,.2f}"
        assert backtest[s["strategy"]]["max drawdown"] == f"{s['max_drawdown']:.1%}"
    # the quality verdicts and the link to their report
    verdicts = {r["table"]: r["verdict"] for r in tables.headed("table", "verdict")}
    assert verdicts["raw.ohlcv_1d"] in ("pass", "warn") and verdicts["marts.rotation_recommendation"] == "pass"
    link = re.search(r'<a href="([^"]+)">quality report</a>', page).group(1)
    assert (page_path.parent / html.unescape(link)).resolve() == (path.parent / "quality" / "index.html").resolve()
    assert (page_path.parent / html.unescape(link)).exists()
    inputs = {r["table"]: r for r in tables.headed("table", "rows", "first day", "last day")}
    assert inputs["raw.ohlcv_1d"]["last day"] == day.isoformat()
    assert inputs["raw.ohlcv_1d"]["first day"] == str(snapshot.query("select min(date) as d from raw.ohlcv_1d")["d"][0])


def test_the_demo_prints_where_the_runs_report_is(night, capsys):
    from pipeline.demo import print_report

    path, _, result = night
    print_report(result)
    assert capsys.readouterr().out.strip() == f"Report (one page, opens offline): {report_path(path)}"


@pytest.mark.ui
@pytest.mark.skipif(CHROMIUM is None, reason="no Chromium: apt-get install chromium (.ci/run does)")
def test_the_page_draws_every_chart_offline_in_chromium(night, tmp_path):
    from playwright.sync_api import sync_playwright

    page_path = report_path(night[0])
    messages: list[str] = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            context = browser.new_context(offline=True, viewport={"width": 1400, "height": 1000})
            page = context.new_page()
            page.on("console", lambda m: messages.append(f"{m.type}: {m.text}") if m.type in ("error", "warning") else None)
            page.on("pageerror", lambda e: messages.append(f"page error: {e}"))
            page.goto(page_path.as_uri())
            page.wait_for_function("document.body.dataset.charts !== undefined", timeout=60_000)
            assert page.evaluate("document.body.dataset.charts") == f"{len(CHARTS)}/{len(CHARTS)}"
            drawn = page.evaluate(
                "Object.fromEntries([...document.querySelectorAll('.chart')].map((c) => [c.id.slice(6),"
                " c.querySelectorAll('svg .mark-line path, svg .mark-area path, svg .mark-rect path,"
                " svg .mark-symbol path, svg .mark-rule line').length]))"
            )
            shot = tmp_path / "report.png"
            page.screenshot(path=shot, full_page=True)
        finally:
            browser.close()
    assert messages == []  # no JavaScript error, and no Vega warning either
    assert set(drawn) == CHARTS
    assert all(count > 0 for count in drawn.values()), drawn
    assert shot.stat().st_size > 100_000


def _dates(specs: dict) -> dict[str, list[dt.date]]:
    """Field -> every date in the charts' rows, for the fields that hold a day."""
    found: dict[str, list[dt.date]] = {}
    for spec in specs.values():
        for rows in spec.get("datasets", {}).values():
            for row in rows:
                for field in ("date", "as_of", "start", "end"):
                    if isinstance(row.get(field), str):
                        found.setdefault(field, []).append(dt.date.fromisoformat(row[field][:10]))
    return found


def test_a_look_back_is_the_page_as_of_that_day_with_nothing_after_it(night, monkeypatch, capsys):
    path, day, _ = night
    monkeypatch.setenv("ROTATION_WAREHOUSE", str(path))
    monkeypatch.setenv("ROTATION_CHARTS", "1")
    assert main(["report", "--as-of", LOOK_BACK.isoformat()]) == 0
    page_path = Path(capsys.readouterr().out.strip())
    assert page_path == path.parent / "report" / f"{LOOK_BACK}.html"
    page = page_path.read_text()
    assert f"a look back: the newest recommendation is {day}" in page
    specs = unpack_specs(re.search(r'<script id="specs"[^>]*>([^<]*)</script>', page).group(1))
    dates = _dates(specs)
    assert max(dates["date"]) == max(dates["as_of"]) == LOOK_BACK
    assert max(dates["end"]) == LOOK_BACK + dt.timedelta(days=1)  # a phase band ends the day after its last
    snapshot = Warehouse(Warehouse(path).snapshot_path)
    regime = snapshot.query("select * from marts.market_regime where date = ?", [LOOK_BACK]).row(0, named=True)
    assert f"{regime['phase']} ({regime['risk_mode']}, {regime['days_in_phase']} days)" in page
    # the backtest as it stood then: its days end on the day, and its figures are those days' alone
    tables = Tables(page)
    backtest = {r["strategy"]: r for r in tables.headed("strategy", "total", "CAGR")}
    assert f"{snapshot.query('select min(date) as d from marts.backtest_daily')['d'][0]} .. {LOOK_BACK}:" in page
    from pipeline.evaluation.metrics import summary

    then = summary(snapshot.query("select * from marts.backtest_daily where date <= ?", [LOOK_BACK]))
    for s in then.iter_rows(named=True):
        assert backtest[s["strategy"]]["total"] == f"{s['total_return']:.1%}"
    assert main(["report", "--as-of", "2019-01-01"]) == 1
    assert "no recommendation for 2019-01-01" in capsys.readouterr().err


def test_a_portfolio_file_with_a_typo_shows_as_an_error_and_the_rest_of_the_page_stays(night, tmp_path):
    path, day, _ = night
    portfolio = tmp_path / "portfolio.yaml"
    portfolio.write_text("cash_usd: 1000\nholdings:\n  BTCC: 1\n")
    settings = Settings(warehouse_path=path, portfolio_path=portfolio, charts=False)
    page_path = write_report(settings, out=tmp_path / "page.html")
    page = page_path.read_text()
    assert "The portfolio file could not be read" in page and "BTCC" in page
    assert "Charts are off" in page and "vegaEmbed" not in page
    rotation = Warehouse(Warehouse(path).snapshot_path).query(
        "select sector from marts.rotation_recommendation where as_of = ?", [day])
    assert {r["sector"] for r in Tables(page).headed("sector", "bucket")} == set(rotation["sector"])


def test_two_warehouses_in_one_folder_keep_their_own_report_and_quality_verdicts(night, tmp_path):
    """As the README has it for the real history: warehouse/real.duckdb beside the default
    warehouse/rotation.duckdb. A candle blocked in one is never on the other's pages."""
    import dagster as dg
    import polars as pl

    from assets.quality import gated_write
    from pipeline.quality.config import load_quality_config

    path, day, _ = night
    default, real = Warehouse(tmp_path / "rotation.duckdb"), Warehouse(tmp_path / "real.duckdb")
    for wh in (default, real):
        shutil.copyfile(path, wh.path)
        shutil.copyfile(Warehouse(path).snapshot_path, wh.snapshot_path)
    candle = real.read("raw.ohlcv_1d", day, since=day, symbol="BTC/USDT")
    assert candle.height == 1
    config = load_quality_config(Settings().quality_path)
    with dg.build_asset_context() as context:  # what the candles' asset does with a night's rows
        gated_write(context, default, "raw.ohlcv_1d", candle.with_columns(high=pl.col("low") / 2), (day, day), config)
        gated_write(context, real, "raw.ohlcv_1d", candle, (day, day), config)  # the candle it holds: it passes

    pages = {wh.path.name: write_report(Settings(warehouse_path=wh.path, charts=False)) for wh in (default, real)}
    for (name, page_path), quality in zip(pages.items(), (tmp_path / "quality", tmp_path / "real_quality"), strict=True):
        page = page_path.read_text()
        verdicts = {r["table"]: r["verdict"] for r in Tables(page).headed("table", "verdict")}
        index = {r["table"]: r["last result"] for r in Tables((quality / "index.html").read_text()).headed("table", "last result")}
        held = "block" if name == "rotation.duckdb" else "pass"
        assert verdicts["raw.ohlcv_1d"] == index["raw.ohlcv_1d"] == held, name
        link = html.unescape(re.search(r'<a href="([^"]+)">quality report</a>', page).group(1))
        assert (page_path.parent / link).resolve() == (quality / "index.html").resolve()
    # the default warehouse's pages where the README says; the other's beside them, under its name
    assert pages == {"rotation.duckdb": tmp_path / "report" / "index.html",
                     "real.duckdb": tmp_path / "real_report" / "index.html"}
    assert "raw.ohlcv_1d: <span class=block>block</span>" in (tmp_path / "quality" / "raw.ohlcv_1d.html").read_text()
    assert "Every expectation passed" in (tmp_path / "real_quality" / "raw.ohlcv_1d.html").read_text()


def test_without_a_published_warehouse_the_command_says_what_to_run(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("ROTATION_WAREHOUSE", str(tmp_path / "rotation.duckdb"))
    assert main(["report"]) == 1
    assert "run `make demo`" in capsys.readouterr().err
    assert not (tmp_path / "report").exists()


def test_the_readme_counts_the_assets_and_shows_the_real_historys_pictures(real, night):
    """The README's figures about the report: how many assets a run materialises, and which days
    each of its three pictures of the real history covers (made by `report --png`, 640 x 400)."""
    from pipeline.definitions import defs
    from tests.test_charts import png_size

    readme = README.read_text()
    assets = len(defs.resolve_asset_graph().get_all_asset_keys())
    assert f"(job `nightly`, {assets} assets)" in readme
    for name in ("rrg", "phases", "equity"):
        image = README.parent / "docs" / "charts" / f"{name}.png"
        assert f"]({image.relative_to(README.parent)})" in readme
        assert png_size(image.read_bytes()) == (640, 400)
    as_of = real.as_of
    assert f"The relative rotation graph on {as_of}: each sector's weekly points from " \
           f"{as_of - dt.timedelta(weeks=7)} to\n{as_of}" in readme
    regime = Warehouse(Warehouse(night[0]).snapshot_path).query(
        "select min(date) as first, min(date) filter (where phase is not null) as phased from marts.market_regime")
    first, phased = regime.row(0)
    assert f"from {first}, and the detected phase from\n{phased} (after the 200-day trend's warm-up), to {as_of}." in readme
    backtest_first = Warehouse(Warehouse(night[0]).snapshot_path).query(
        "select min(date) as d from marts.backtest_daily")["d"][0]
    assert f"equity per strategy (log), {backtest_first} .. {as_of}" in readme
