"""Concurrent ingest (issue 21, P4): the exchange symbols fetched at once through ccxt's asyncio client.

Given the replay, when the candle and funding assets fetch their symbols concurrently, then they store
what one symbol after another stores, wait out a storm of 429s, and fail on a 429 that never ends or on
one broken symbol naming the endpoint and the symbol, with nothing written.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import dagster as dg
import pytest
from polars.testing import assert_frame_equal

from assets.ingest import funding_rates, ohlcv_1d
from pipeline.resources import MarketSources, QualitySettings, WarehouseResource
from pipeline.sources.errors import PayloadError, SourceError
from pipeline.sources.replay import FaultRule
from pipeline.sources.replay.synthetic import generate
from warehouse import Warehouse

SYNTH_AS_OF = dt.date(2025, 6, 30)
STORED = {
    "raw.ohlcv_1d": "select exchange, symbol, date, open, high, low, close, volume, source from raw.ohlcv_1d order by all",
    "raw.funding_rates": "select exchange, symbol, funding_time, funding_rate, mark_price, interval_hours, source "
                         "from raw.funding_rates order by all",
}


def ingest(sources: MarketSources, path: Path, start: str, end: str) -> dict[str, dg.MaterializeResult]:
    resources = {"sources": sources, "warehouse": WarehouseResource(path=str(path)), "quality": QualitySettings()}
    with dg.build_asset_context(partition_key_range=dg.PartitionKeyRange(start, end), resources=resources) as ctx:
        return {asset.key.path[-1]: asset(ctx) for asset in (ohlcv_1d, funding_rates)}


def test_fetched_concurrently_the_real_history_is_stored_as_one_symbol_after_another_stores_it(real_data, tmp_path):
    stored = {}
    for in_flight in (1, 16):  # 1: ccxt's sync client, one symbol after another, as before issue 21
        path = tmp_path / f"in_flight_{in_flight}.duckdb"
        # a little latency, so that the concurrent symbols' requests overlap
        sources = MarketSources(replay_data=str(real_data), symbols_in_flight=in_flight, faults=["latency=0.03"])
        reports = ingest(sources, path, "2025-07-01", "2025-08-02")
        assert reports["ohlcv_1d"].metadata["skipped_symbols"] == "none"  # POL, RENDER, SAND: delisted pairs, listed
        stored[in_flight] = {table: Warehouse(path).query(query) for table, query in STORED.items()}
    for table in STORED:
        assert stored[16][table].height > 500
        assert_frame_equal(stored[16][table], stored[1][table])


@pytest.fixture(scope="module")
def synthetic_dir(tmp_path_factory) -> Path:
    return generate(tmp_path_factory.mktemp("synth") / "synthetic", SYNTH_AS_OF, seed=3, years=0.3)


@pytest.fixture
def served(synthetic_dir, warehouse_path):
    """The candle asset's context on a replay of its own, into which a test injects faults."""
    resources = {"sources": MarketSources(replay_data=str(synthetic_dir)),
                 "warehouse": WarehouseResource(path=str(warehouse_path)), "quality": QualitySettings()}
    with dg.build_asset_context(
        partition_key_range=dg.PartitionKeyRange("2025-06-01", SYNTH_AS_OF.isoformat()), resources=resources
    ) as ctx:
        yield ctx, ctx.resources.sources._server


def candles_stored(path: Path) -> int:
    return Warehouse(path).query("select count(*) from raw.ohlcv_1d").item()


def test_a_storm_of_429s_on_the_concurrent_symbols_is_waited_out(served, warehouse_path):
    ctx, server = served
    server.faults.add(FaultRule(kind="429", path="/api/v3/klines", times=20, retry_after_s=1))
    report = ohlcv_1d(ctx)
    klines = [r for r in server.requests if r.path == "/api/v3/klines"]
    statuses = [r.status for r in klines]
    assert statuses.count(429) == 20 and statuses[:16] == [429] * 16  # every symbol in flight throttled at once
    assert report.metadata["skipped_symbols"] == "none"
    # each symbol's page, once; the listed pairs of the taxonomy's dead coins too, whose series ends
    # inside the window: one more (empty) page after their last candle
    fetched = [r.query["symbol"] for r in klines if r.status == 200]
    fixed = {s.replace("/", "") for s in ctx.resources.sources.universe.spot_symbols}
    assert all(fetched.count(s) == 1 for s in fixed) and set(fetched) > fixed
    assert all(fetched.count(s) <= 2 for s in set(fetched) - fixed)
    assert candles_stored(warehouse_path) == report.metadata["rows_written"] > 0


def test_a_429_that_never_ends_fails_the_asset_naming_endpoint_and_symbol_and_writes_nothing(served, warehouse_path):
    ctx, server = served
    server.faults.add(FaultRule(kind="429", path="/api/v3/klines", retry_after_s=1))
    with pytest.raises(dg.Failure, match=r"ohlcv_1d: source binance fetch_ohlcv \w+/USDT failed: .* after 5 attempts") as failure:
        ohlcv_1d(ctx)
    assert failure.value.allow_retries  # throttled now, maybe not on the asset's next attempt
    assert type(failure.value.__cause__) is SourceError
    assert candles_stored(warehouse_path) == 0


def test_one_broken_symbol_among_the_concurrent_ones_fails_the_asset_naming_it_and_writes_nothing(served, warehouse_path):
    ctx, server = served
    # ETH's candles without their open time: ccxt cannot place them, and a re-run gets the same page
    server.faults.add(FaultRule(kind="missing_field", path="/api/v3/klines", query="symbol=ETHUSDT", field="openTime"))
    with pytest.raises(dg.Failure, match=r"ohlcv_1d: source binance fetch_ohlcv ETH/USDT failed") as failure:
        ohlcv_1d(ctx)
    assert not failure.value.allow_retries
    assert isinstance(failure.value.__cause__, PayloadError)
    assert candles_stored(warehouse_path) == 0
    fetched = {r.query["symbol"] for r in server.requests if r.path == "/api/v3/klines"}
    assert "BTCUSDT" in fetched  # the others were under way at the same time
