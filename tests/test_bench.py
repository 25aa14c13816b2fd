"""The benchmark scripts stay runnable: `make bench` is not in CI, so every script runs here in its
quick mode (small sizes, its correctness checks on), and what the full runs wire is checked here."""

from __future__ import annotations

import datetime as dt
import importlib.util
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from assets.ingest import ingest_assets

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "bench"
# Besides exiting 0 and saying it ran quick: the lines that show a script checked its results.
QUICK_RESULTS = {
    "transforms.py": ["ok   marts.market_regime", "ok   marts.sector_index"],
    "quality.py": ["clean rows pass: yes; the failing rows are exactly the broken ones: yes -> correct"],
    "load.py": ["20,000 rows, 20,000 keys, 20,000 with the new values, 0 overlapping rows not replaced -> correct"],
    "concurrent_ingest.py": ["the same in both runs -> correct", "(goal >= 8x)", "(goal <= 1.3x)", "rate-limit bound"],
}


SCRIPTS = sorted(BENCH.glob("*.py"))


def _quick(script: Path) -> subprocess.CompletedProcess:
    """As `make bench` runs a script (its own process, the repo as working directory), with `--quick`."""
    return subprocess.run([sys.executable, str(script), "--quick"], cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)},
                          capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="module")
def quick_runs():
    """Every script's quick run, two at a time: each is mostly one busy core (imports, Dagster), and
    the machines have two. Each works in a temp folder of its own."""
    with ThreadPoolExecutor(max_workers=2) as pool:
        yield {script.name: pool.submit(_quick, script) for script in SCRIPTS}


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda path: path.name)
def test_every_bench_script_runs_in_its_quick_mode_without_an_error_or_a_wrong_result(script, quick_runs):
    """A script without a quick mode fails here (it rejects the flag, or never says it ran quick)."""
    run = quick_runs[script.name].result()
    output = f"{run.stdout[-3000:]}\n{run.stderr[-3000:]}"
    assert run.returncode == 0, output
    assert any(line.startswith("quick mode:") for line in run.stdout.splitlines()), output
    for line in QUICK_RESULTS.get(script.name, []):
        assert line in run.stdout, output


def load(name: str):
    spec = importlib.util.spec_from_file_location(f"bench_{name}", BENCH / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_ingest_bench_gives_the_ingest_assets_every_resource_they_require(tmp_path):
    provided = set(load("ingest").resources(tmp_path, tmp_path / "bench.duckdb")) | {"io_manager"}  # Dagster's own
    for asset in ingest_assets:
        missing = asset.required_resource_keys - provided
        assert not missing, f"{asset.key.to_user_string()} also needs {sorted(missing)}"


def test_the_first_run_baseline_calls_every_asset_of_the_demo_but_the_publishing_ones():
    first_run = load("first_run")
    called = {key for a in (*first_run.ingest_assets, *first_run.analytics_assets, first_run.recommendation_assets,
                            *first_run.evaluation_assets) for key in a.keys}
    from pipeline.definitions import defs

    every = set(defs.resolve_asset_graph().get_all_asset_keys())
    skipped = {k.to_user_string() for k in every - called}
    assert skipped == {"raw/quarantine", "warehouse/read_snapshot", "warehouse/report", "marts/portfolio_orders"}


def test_the_nightly_bench_gives_the_assets_it_calls_every_resource_they_require(tmp_path):
    nightly = load("nightly")
    provided = set(nightly.resources(tmp_path, tmp_path / "bench.duckdb", dt.date(2025, 6, 30))) | {"io_manager"}
    for group in nightly.GROUPS.values():
        for asset in group:
            assert not asset.required_resource_keys - provided, asset.keys


def test_the_incremental_bench_gives_the_assets_every_resource_and_sorts_requests_by_source(tmp_path):
    incremental = load("incremental")
    provided = set(incremental.resources(tmp_path, tmp_path / "bench.duckdb", dt.date(2025, 6, 30))) | {"io_manager"}
    for asset in (*ingest_assets, *incremental.analytics_assets, incremental.recommendation_assets,
                  *incremental.evaluation_assets):
        assert not asset.required_resource_keys - provided, asset.keys
    sources = {path: incremental.source_of(path) for path in (
        "/api/v3/klines", "/fapi/v1/fundingRate", "/v2/historicalChainTvl/Ethereum", "/protocol/aave",
        "/api/v3/global/market_cap_chart", "/fapi/v1/exchangeInfo", "/api/v3/ping")}
    assert sources == {"/api/v3/klines": "candles", "/fapi/v1/fundingRate": "funding",
                       "/v2/historicalChainTvl/Ethereum": "defillama", "/protocol/aave": "defillama",
                       "/api/v3/global/market_cap_chart": "dominance", "/fapi/v1/exchangeInfo": "markets",
                       "/api/v3/ping": "other /api/v3/ping"}


def test_the_spacings_the_readme_gives_for_the_p4_bound_are_ccxts():
    """README: ccxt spaces Binance's klines 20 ms apart (50 ms x cost 0.4), USD-M funding history 50 ms; 16 in flight."""
    from pipeline.resources import MarketSources
    from pipeline.sources.concurrent import SYMBOLS_IN_FLIGHT
    from pipeline.sources.exchange import make_exchange

    spacing_ms = load("concurrent_ingest").spacing_ms
    binance = make_exchange("binance", "spot", "http://127.0.0.1:9")
    usdm = make_exchange("binanceusdm", "linear", "http://127.0.0.1:9")
    assert spacing_ms(binance, "/api/v3/klines", {"symbol": "BTCUSDT", "limit": "1000"}) == 20
    assert spacing_ms(usdm, "/fapi/v1/fundingRate", {"symbol": "BTCUSDT", "limit": "1000"}) == 50
    assert SYMBOLS_IN_FLIGHT == MarketSources().symbols_in_flight == 16


def test_the_scale_bench_generates_a_universe_of_the_requested_size(tmp_path):
    from pipeline.universe import load_universe

    scale = load("scale")
    universe = load_universe(scale.write_universe(tmp_path / "universe.yaml", 60))
    assert len(universe.tokens) == 60 and len(set(universe.spot_symbols)) == 60
    assert [t.name for t in universe.tokens if t.sector == "Core"] == ["BTC", "ETH"]
    assert {"UNI", "AAVE", "LINK"} <= {t.name for t in universe.tokens}  # the example portfolio's holdings
    assert {t.sector for t in universe.tokens} == set(universe.sectors)


def test_the_scale_benchs_universe_is_the_one_the_readme_describes(tmp_path):
    """README, P6: 5,000 tokens, the project's own 49 among them, 793 perps."""
    from pipeline.universe import DEFAULT_UNIVERSE, load_universe

    universe = load_universe(load("scale").write_universe(tmp_path / "universe.yaml", 5000))
    own = load_universe(DEFAULT_UNIVERSE)
    assert len(universe.tokens) == 5000 and len(own.tokens) == 49
    assert {t.name for t in own.tokens} <= {t.name for t in universe.tokens}
    assert len(universe.perp_symbols) == 793
