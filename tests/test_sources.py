"""The pipeline's own clients (ccxt, DefiLlama, CoinGecko) against the replay server: no mocks.

Given a replay of a dataset, when a client fetches, then it gets exactly the dataset's rows, only
the days asked for, survives transient faults, and fails on persistent ones naming the endpoint.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import math
from pathlib import Path

import polars as pl
import pytest

from pipeline.sources.coingecko import CoinGecko
from pipeline.sources.defillama import DefiLlama
from pipeline.sources.errors import NotAvailable, PayloadError, SourceError, SymbolNotListed
from pipeline.sources.exchange import make_exchange
from pipeline.sources.funding import fetch_funding_history, funding_intervals
from pipeline.sources.prices import fetch_daily_candles
from pipeline.sources.replay import FaultRule, ReplayServer, load_dataset
from pipeline.sources.replay.synthetic import generate

SYNTH_AS_OF = dt.date(2025, 6, 30)


@pytest.fixture(scope="module")
def real_replay(real_data_module):
    with ReplayServer(load_dataset(real_data_module)) as srv:
        yield srv


@pytest.fixture(scope="module")
def real_data_module(real):
    from tests.conftest import REAL_DATA

    return REAL_DATA


@pytest.fixture(scope="module")
def synthetic_dir(tmp_path_factory) -> Path:
    return generate(tmp_path_factory.mktemp("synth") / "synthetic", SYNTH_AS_OF, seed=11, years=1.0)


@pytest.fixture
def synth(synthetic_dir):
    """A fresh server per test: its own fault plan and request log."""
    with ReplayServer(load_dataset(synthetic_dir)) as srv:
        yield srv


def parquet_candles(data: Path, symbol: str, since: dt.date, until: dt.date) -> pl.DataFrame:
    return (
        pl.read_parquet(data / "ohlcv_1d.parquet")
        .filter(pl.col("symbol") == symbol, pl.col("date").is_between(since, until))
        .select("date", "open", "high", "low", "close", "volume")
        .sort("date")
    )


# ------------------------------------------------------------------ prices


@pytest.mark.parametrize("exchange_id", ["binance", "bybit"])
def test_candles_are_exactly_the_recorded_rows(real_replay, real_data_module, exchange_id):
    exchange = make_exchange(exchange_id, "spot", real_replay.base_url)
    since, until = dt.date(2021, 1, 1), dt.date(2025, 8, 2)  # > 1,000 days: several pages
    got = asyncio.run(fetch_daily_candles(exchange, "SOL/USDT", since, until))
    expected = parquet_candles(real_data_module, "SOL/USDT", since, until)
    assert got.height == expected.height > 1000
    assert got.equals(expected)


def test_an_incremental_fetch_asks_only_for_the_newer_days(synth, synthetic_dir):
    exchange = make_exchange("binance", "spot", synth.base_url)
    since = SYNTH_AS_OF - dt.timedelta(days=9)
    got = asyncio.run(fetch_daily_candles(exchange, "BTC/USDT", since, SYNTH_AS_OF))
    assert got["date"].to_list() == [since + dt.timedelta(days=i) for i in range(10)]
    klines = [r for r in synth.requests if r.path == "/api/v3/klines"]
    assert len(klines) == 1
    assert int(klines[0].query["startTime"]) == int(
        dt.datetime.combine(since, dt.time(), dt.UTC).timestamp() * 1000
    )


def test_a_symbol_the_exchange_does_not_list_is_reported_as_such(real_replay):
    exchange = make_exchange("binance", "spot", real_replay.base_url)
    with pytest.raises(SymbolNotListed, match="UST/USDT"):  # no candles recorded for TerraUSD in either file
        asyncio.run(fetch_daily_candles(exchange, "UST/USDT", dt.date(2022, 1, 1), dt.date(2022, 2, 1)))


def test_a_429_with_retry_after_is_waited_out(synth):
    synth.faults.add(FaultRule(kind="429", path="/api/v3/klines", times=1, retry_after_s=1))
    exchange = make_exchange("binance", "spot", synth.base_url)
    got = asyncio.run(fetch_daily_candles(exchange, "ETH/USDT", SYNTH_AS_OF - dt.timedelta(days=4), SYNTH_AS_OF))
    assert got.height == 5
    statuses = [r.status for r in synth.requests if r.path == "/api/v3/klines"]
    assert statuses == [429, 200]


def test_a_persistent_outage_fails_naming_exchange_endpoint_and_symbol(synth):
    synth.faults.add(FaultRule(kind="5xx", path="/api/v3/klines", status=503))
    exchange = make_exchange("binance", "spot", synth.base_url)
    from pipeline.sources import exchange as exchange_module

    with pytest.raises(SourceError, match=r"binance fetch_ohlcv ETH/USDT: ExchangeNotAvailable.*after 2 attempts"):
        asyncio.run(exchange_module.call_with_retries(
            exchange, exchange.fetch_ohlcv, "ETH/USDT", "1d", endpoint="fetch_ohlcv ETH/USDT",
            max_retries=1, backoff_s=0.01,
        ))


def test_a_truncated_candle_page_is_retried_not_read_as_no_candles(synth):
    """ccxt alone returns an unparsable body as text, which fetch_ohlcv reads as zero candles."""
    synth.faults.add(FaultRule(kind="truncated_json", path="/api/v3/klines", times=1))
    exchange = make_exchange("binance", "spot", synth.base_url)
    got = asyncio.run(fetch_daily_candles(exchange, "ETH/USDT", SYNTH_AS_OF - dt.timedelta(days=4), SYNTH_AS_OF))
    assert got.height == 5
    synth.faults.add(FaultRule(kind="truncated_json", path="/api/v3/klines"))
    from pipeline.sources import exchange as exchange_module

    with pytest.raises(SourceError, match=r"binance fetch_ohlcv ETH/USDT: BadResponse: binance: unparsable JSON"):
        asyncio.run(exchange_module.call_with_retries(
            exchange, exchange.fetch_ohlcv, "ETH/USDT", "1d", endpoint="fetch_ohlcv ETH/USDT",
            max_retries=1, backoff_s=0.01,
        ))


def test_a_candle_missing_its_close_comes_back_with_nulls_for_the_quality_gate(synth):
    """The client neither drops nor guesses: the gate names and quarantines such candles."""
    synth.faults.add(FaultRule(kind="missing_field", path="/api/v3/klines", field="close"))
    exchange = make_exchange("binance", "spot", synth.base_url)
    candles = asyncio.run(fetch_daily_candles(exchange, "ETH/USDT", SYNTH_AS_OF - dt.timedelta(days=4), SYNTH_AS_OF))
    assert candles.height == 5 and candles["close"].null_count() == 5 and candles["volume"].null_count() == 5
    assert candles["open"].null_count() == 0


# ------------------------------------------------------------------ funding


@pytest.mark.parametrize("exchange_id", ["binanceusdm", "bybit"])
def test_funding_is_exactly_the_recorded_rows(real_replay, real_data_module, exchange_id):
    exchange = make_exchange(exchange_id, "linear", real_replay.base_url)
    since = dt.datetime(2023, 6, 1, tzinfo=dt.UTC)
    got = asyncio.run(fetch_funding_history(exchange, "SUI/USDT:USDT", since, dt.date(2025, 8, 2)))
    expected = (
        pl.read_parquet(real_data_module / "funding_8h.parquet")
        .filter(pl.col("symbol") == "SUI/USDT:USDT", pl.col("ts") >= since)
        .sort("ts")
    )
    assert got.height == expected.height > 900
    assert got["funding_rate"].to_list() == expected["funding_rate"].to_list()
    assert got["funding_time"].dt.epoch("ms").to_list() == expected["ts"].dt.epoch("ms").to_list()
    assert set(got["interval_hours"]) == {8}


@pytest.mark.parametrize("exchange_id", ["binanceusdm", "bybit"])
def test_per_symbol_funding_intervals_are_kept(synth, exchange_id):
    dataset = synth.dataset
    last_event = dataset.funding.group_by("symbol").agg(pl.col("ts").max().dt.date().alias("last"))
    trading = set(last_event.filter(pl.col("last") == SYNTH_AS_OF)["symbol"])
    four_hourly = sorted(s for s, h in dataset.funding_interval_hours.items() if h == 4 and s in trading)
    assert four_hourly, "the synthetic market has a 4h perp still trading on its as-of day"
    exchange = make_exchange(exchange_id, "linear", synth.base_url)
    intervals = asyncio.run(funding_intervals(exchange))
    since = dt.datetime.combine(SYNTH_AS_OF, dt.time(), dt.UTC)
    fast = asyncio.run(fetch_funding_history(exchange, four_hourly[0], since, SYNTH_AS_OF, intervals.get(four_hourly[0])))
    btc = asyncio.run(fetch_funding_history(exchange, "BTC/USDT:USDT", since, SYNTH_AS_OF, intervals.get("BTC/USDT:USDT")))
    assert (fast.height, set(fast["interval_hours"])) == (6, {4})
    assert (btc.height, set(btc["interval_hours"])) == (3, {8})


@pytest.mark.parametrize(("days", "pages"), [(1, 1), (400, 2)])  # 3 rates a day (1,098 in the year), 1,000 a page
def test_a_night_fetches_one_page_of_funding_per_perp(synth, days, pages):
    """A page shorter than the exchange's limit holds everything from the cursor on: no request
    after it (the nightly's requests stay one per perp, whatever the history)."""
    exchange = make_exchange("binanceusdm", "linear", synth.base_url)
    since = dt.datetime.combine(SYNTH_AS_OF - dt.timedelta(days=days - 1), dt.time(), dt.UTC)
    got = asyncio.run(fetch_funding_history(exchange, "BTC/USDT:USDT", since, SYNTH_AS_OF))
    recorded = synth.dataset.funding.filter((pl.col("symbol") == "BTC/USDT:USDT") & (pl.col("ts") >= since))
    assert got.height == recorded.height == min(3 * days, 1_098)
    assert len([r for r in synth.requests if r.path == "/fapi/v1/fundingRate"]) == pages


# ------------------------------------------------------------------ DefiLlama and CoinGecko


def test_chain_tvl_is_the_recorded_history_and_a_missing_series_is_not_available(real_replay, real_data_module):
    llama = DefiLlama(real_replay.base_url)
    got = llama.chain_tvl("Arbitrum")
    expected = (
        pl.read_parquet(real_data_module / "chain_tvl_1d.parquet").filter(pl.col("chain") == "arbitrum").sort("date")
    )
    assert got["date"].to_list() == expected["date"].to_list()
    assert got["tvl_usd"].to_list() == [float(v) for v in expected["tvl_usd"]]
    with pytest.raises(NotAvailable, match="historicalChainTvl"):
        llama.total_tvl()  # the recording has no all-chains series


def test_dominance_history_recomputes_the_recorded_values(real_replay, real_data_module):
    got = CoinGecko(f"{real_replay.base_url}/api/v3").dominance_history("max")
    expected = pl.read_parquet(real_data_module / "btc_dominance_1d.parquet").sort("date")
    assert got["date"].to_list() == expected["date"].to_list()
    assert max(abs(a - b) for a, b in zip(got["btc_dominance_pct"], expected["btc_dominance_pct"])) < 1e-9
    snapshot = CoinGecko(f"{real_replay.base_url}/api/v3").global_snapshot()
    assert snapshot["date"].item() == dt.date(2025, 8, 2)
    assert math.isclose(snapshot["btc_dominance_pct"].item(), expected["btc_dominance_pct"][-1], rel_tol=1e-9)


def test_truncated_json_is_retried_then_fails_naming_the_endpoint(synth):
    synth.faults.add(FaultRule(kind="truncated_json", path="/v2/historicalChainTvl"))
    llama = DefiLlama(synth.base_url, backoff_s=0.01)
    with pytest.raises(SourceError, match=r"defillama GET /v2/historicalChainTvl: malformed JSON .* after 5 attempts"):
        llama.total_tvl()


def test_a_transient_5xx_recovers(synth):
    synth.faults.add(FaultRule(kind="5xx", path="/protocol/", times=2, status=502))
    got = DefiLlama(synth.base_url, backoff_s=0.01).protocol_tvl("uniswap")
    assert got.height == pl.read_parquet(synth_path(synth) / "protocol_tvl_1d.parquet").filter(
        pl.col("protocol") == "uniswap"
    ).height


def test_a_timeout_is_retried(synth):
    synth.faults.add(FaultRule(kind="timeout", path="/global", times=1, delay_s=2.0))
    snapshot = CoinGecko(f"{synth.base_url}/api/v3", timeout_s=0.5, backoff_s=0.01).global_snapshot()
    assert snapshot["date"].item() == SYNTH_AS_OF


def test_a_payload_without_its_field_is_a_payload_error(synth):
    synth.faults.add(FaultRule(kind="missing_field", path="/protocol/", field="totalLiquidityUSD"))
    with pytest.raises(PayloadError, match="/protocol/aave.*totalLiquidityUSD"):
        DefiLlama(synth.base_url).protocol_tvl("aave")


def synth_path(server: ReplayServer) -> Path:
    return server.dataset.path


# ------------------------------------------------------------------ where a fetch resumes

JUNE = dt.date(2025, 6, 1)


def days_held(*runs: tuple[str, str], symbol: str = "SOL/USDT") -> pl.DataFrame:
    """A symbol's held days: each run of days first..last (ISO dates), inclusive."""
    days = [d for first, last in runs for d in pl.date_range(dt.date.fromisoformat(first), dt.date.fromisoformat(last),
                                                             eager=True)]
    return pl.DataFrame({"symbol": symbol, "date": days})


@pytest.mark.parametrize(
    ("runs", "after"),
    [
        ([("2025-05-20", "2025-06-20")], dt.date(2025, 6, 20)),  # no hole: after the newest day
        ([("2025-05-20", "2025-06-09"), ("2025-06-11", "2025-06-20")], dt.date(2025, 6, 9)),  # a rejected day mid-month
        ([("2025-05-20", "2025-06-04"), ("2025-06-06", "2025-06-08"), ("2025-06-11", "2025-06-20")],
         dt.date(2025, 6, 4)),  # two holes: the first
        ([("2025-05-20", "2025-05-31"), ("2025-06-02", "2025-06-20")], dt.date(2025, 5, 31)),  # the window's first day
        ([("2025-05-20", "2025-05-24"), ("2025-05-27", "2025-06-20")], dt.date(2025, 6, 20)),  # before the window: not asked for
        ([("2025-05-20", "2025-05-25")], dt.date(2025, 5, 25)),  # nothing in the window (gone quiet, a new month, a
        # last day held back): after its newest day, which the gate's lookback holds
        ([("2025-06-05", "2025-06-20")], dt.date(2025, 6, 20)),  # listed mid-month: nothing before it is missing
    ],
)
def test_a_series_resumes_at_its_first_hole_inside_the_window(runs, after):
    from pipeline.sources.resume import resume_after

    resumed = resume_after(days_held(*runs), ["symbol"], "date", JUNE)
    assert resumed == ({} if after is None else {("SOL/USDT",): after})


def test_funding_holes_are_settlements_missing_on_each_perps_own_interval():
    from pipeline.sources.resume import resume_after

    def settlements(symbol: str, hours: int, *skip: dt.datetime) -> pl.DataFrame:
        times = pl.datetime_range(dt.datetime(2025, 5, 30), dt.datetime(2025, 6, 10), f"{hours}h", time_zone="UTC",
                                  time_unit="us", eager=True)
        return pl.DataFrame({"symbol": symbol, "funding_time": times, "interval_hours": hours},
                            schema_overrides={"interval_hours": pl.Int32}).filter(~pl.col("funding_time").is_in(skip))

    missing = dt.datetime(2025, 6, 3, 4, tzinfo=dt.UTC)
    held = pl.concat([settlements("BTC/USDT:USDT", 8), settlements("PEPE/USDT:USDT", 4, missing)])
    resumed = resume_after(held, ["symbol"], "funding_time", JUNE, pl.duration(hours="interval_hours"))
    assert resumed == {
        ("BTC/USDT:USDT",): dt.datetime(2025, 6, 10, tzinfo=dt.UTC),  # 8h apart on an 8h perp: complete
        ("PEPE/USDT:USDT",): missing - dt.timedelta(hours=4),  # 8h apart on a 4h perp: one settlement missing
    }


def test_a_series_without_a_name_resumes_the_same_way():
    from pipeline.sources.resume import resume_after

    held = days_held(("2025-05-20", "2025-06-09"), ("2025-06-11", "2025-06-20")).drop("symbol")
    assert resume_after(held, [], "date", JUNE) == {(): dt.date(2025, 6, 9)}
    assert resume_after(pl.DataFrame(), [], "date", JUNE) == {}
