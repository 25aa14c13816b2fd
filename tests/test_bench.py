"""The benchmark scripts stay runnable: `make bench` is not in CI, so what it wires is checked here."""

from __future__ import annotations

import datetime as dt
import importlib.util
from pathlib import Path

from assets.ingest import ingest_assets

BENCH = Path(__file__).resolve().parents[1] / "bench"


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


def test_the_load_bench_upserts_through_the_write_path_and_checks_the_result(monkeypatch, capsys):
    monkeypatch.setenv("BENCH_LOAD_ROWS", "20000")
    monkeypatch.setenv("BENCH_LOAD_SAMPLE", "300")
    assert load("load").main() == 0
    out = capsys.readouterr().out
    assert "20,000 rows, 20,000 keys, 20,000 with the new values, 0 overlapping rows not replaced -> correct" in out


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
