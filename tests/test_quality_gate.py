"""The quality gate end to end: each defect is fed through the replay server into a real Dagster run
of the `nightly` job (every expectation set to block), on top of a warehouse that already holds
clean history. The check fails naming table, column and expectation; nothing downstream of the
failing asset materialises; the marts from before stay as they were; the bad rows are quarantined.
A thousandfold candle in an edited copy of the real history, under the shipped policy: quarantined,
the night goes on and the marts never see it; with the raw check loosened, the mart check blocks.
"""

from __future__ import annotations

import datetime as dt
import math
import shutil
from collections.abc import Callable
from pathlib import Path

import dagster as dg
import polars as pl
import pytest
from polars.testing import assert_frame_equal

from pipeline.resources import QualitySettings
from pipeline.sources.replay.synthetic import generate
from tests.conftest import REAL_DATA, materialise_directly
from tests.conftest import nightly as run_nightly
from warehouse import Warehouse
from warehouse.db import TABLES

AS_OF = dt.date(2025, 6, 30)  # B: the defects sit on the last days of the replayed market
WINDOW = (AS_OF - dt.timedelta(days=5), AS_OF)  # the run under test: B-5 .. B
MARTS = tuple(t for t in TABLES if t.startswith("marts."))  # every mart, recommendations included as they land


def day(offset: int) -> dt.date:
    return AS_OF - dt.timedelta(days=offset)


STRICT = QualitySettings(block_everything=True)


def nightly(data: Path, path: Path, window: tuple[dt.date, dt.date], faults: list[str] | None = None):
    return run_nightly(data, path, *window, faults=faults, quality=STRICT)


def downstream(key: dg.AssetKey) -> set[dg.AssetKey]:
    from pipeline.definitions import defs

    graph = defs.resolve_asset_graph()
    found, todo = set(), [key]
    while todo:
        for child in graph.get(todo.pop()).child_keys:
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


def snapshot(path: Path, tables) -> dict[str, pl.DataFrame]:
    wh = Warehouse(path)
    return {t: wh.query("select * from " + t + " order by all") for t in tables}


@pytest.fixture(scope="module")
def clean(tmp_path_factory) -> tuple[Path, Path]:
    """A synthetic market, and a warehouse holding its clean history up to the day before the window."""
    folder = tmp_path_factory.mktemp("gate")
    data = generate(folder / "synthetic", AS_OF, seed=11, years=0.4)
    # without the dead tokens: a delisting days before the window is a stale series, which STRICT blocks
    (data / "ohlcv_1d_delisted.parquet").unlink()
    path = folder / "rotation.duckdb"
    first = min(pl.read_parquet(data / "ohlcv_1d.parquet")["date"])
    materialise_directly(data, path, first, WINDOW[0] - dt.timedelta(days=1), quality=STRICT)
    return data, path


def _edit(file: str, change: Callable[[pl.DataFrame], pl.DataFrame]) -> Callable[[Path], None]:
    def apply(folder: Path) -> None:
        change(pl.read_parquet(folder / file)).write_parquet(folder / file)
    return apply


def _candle(symbol: str, on: dt.date) -> pl.Expr:
    return (pl.col("symbol") == symbol) & (pl.col("date") == on)


def _set(where: pl.Expr, **values) -> Callable[[pl.DataFrame], pl.DataFrame]:
    return lambda f: f.with_columns(pl.when(where).then(pl.lit(v)).otherwise(pl.col(c)).alias(c) for c, v in values.items())


def _funding_at(symbol: str, hour: int) -> pl.Expr:
    return (pl.col("symbol") == symbol) & (pl.col("ts") == dt.datetime.combine(AS_OF, dt.time(hour), dt.UTC))


ETH_B = '{"exchange":"binance","symbol":"ETH/USDT","date":"%s"}' % AS_OF
# defect: (edit of the dataset folder, replay faults, table, column, GX expectation, policy name, quarantined row_key)
DEFECTS = {
    "nan_close": (_edit("ohlcv_1d.parquet", _set(_candle("ETH/USDT", AS_OF), close=math.nan)), None,
                  "raw.ohlcv_1d", "close", "expect_column_values_to_not_be_null", "close_finite", ETH_B),
    "zero_price": (_edit("ohlcv_1d.parquet", _set(_candle("ETH/USDT", AS_OF), close=0.0)), None,
                   "raw.ohlcv_1d", "close", "expect_column_values_to_be_between", "close_positive", ETH_B),
    "negative_price": (_edit("ohlcv_1d.parquet", _set(_candle("ETH/USDT", AS_OF), low=-1.0)), None,
                       "raw.ohlcv_1d", "low", "expect_column_values_to_be_between", "low_positive", ETH_B),
    "high_below_low": (_edit("ohlcv_1d.parquet", lambda f: _set(_candle("ETH/USDT", AS_OF), high=1.0, low=10_000.0)(f)), None,
                       "raw.ohlcv_1d", "high/low", "expect_column_pair_values_a_to_be_greater_than_b", "high_not_below_low", ETH_B),
    "duplicate_candle": (None, ["duplicate_row:/api/v3/klines"],
                         "raw.ohlcv_1d", "exchange/symbol/date", "expect_compound_columns_to_be_unique", "unique_key", ETH_B),
    "three_day_gap": (_edit("ohlcv_1d.parquet", lambda f: f.filter(~((pl.col("symbol") == "ETH/USDT") & pl.col("date").is_between(day(3), day(1))))), None,
                      "raw.ohlcv_1d", "date", "expect_column_values_to_be_between", "no_gap", ETH_B),
    "stale_five_days": (_edit("ohlcv_1d.parquet", lambda f: f.filter(~((pl.col("symbol") == "LINK/USDT") & (pl.col("date") >= day(4))))), None,
                        "raw.ohlcv_1d", "date", "expect_column_values_to_be_between", "stale_symbol",
                        '{"exchange":"binance","symbol":"LINK/USDT","date":"%s"}' % day(5)),
    "funding_50pct": (_edit("funding_8h.parquet", _set(_funding_at("BTC/USDT:USDT", 8), funding_rate=0.5)), None,
                      "raw.funding_rates", "funding_rate", "expect_column_values_to_be_between", "rate_in_band",
                      '{"exchange":"binanceusdm","symbol":"BTC/USDT:USDT","funding_time":"%sT08:00:00+00:00"}' % AS_OF),
    "negative_tvl": (_edit("chain_tvl_1d.parquet", _set((pl.col("chain") == "ethereum") & (pl.col("date") == AS_OF), tvl_usd=-1.0e9)), None,
                     "raw.defi_tvl", "tvl_usd", "expect_column_values_to_be_between", "tvl_non_negative",
                     '{"scope":"chain","name":"ethereum","date":"%s"}' % AS_OF),
    "missing_field": (None, ["missing_field=fundingRate:/fapi/v1/fundingRate"],
                      "raw.funding_rates", "funding_rate", "expect_column_values_to_not_be_null", "funding_rate_not_null",
                      '{"exchange":"binanceusdm","symbol":"BTC/USDT:USDT","funding_time":"%sT08:00:00+00:00"}' % AS_OF),
}


@pytest.mark.parametrize("defect", list(DEFECTS))
def test_a_defect_blocks_the_run_and_is_quarantined(defect, clean, tmp_path):
    edit, faults, table, column, expectation, name, row_key = DEFECTS[defect]
    data, clean_path = clean
    broken = tmp_path / "data"
    shutil.copytree(data, broken)
    if edit:
        edit(broken)
    path = tmp_path / "rotation.duckdb"
    shutil.copy(clean_path, path)
    asset = dg.AssetKey(table.split("."))
    below = downstream(asset)
    marts_below = [t for t in MARTS if dg.AssetKey(t.split(".")) in below]
    before = snapshot(path, marts_below)

    result = nightly(broken, path, WINDOW, faults)

    assert not result.success
    check = next(c for c in result.get_asset_check_evaluations() if c.asset_key == asset)
    assert not check.passed and check.severity == dg.AssetCheckSeverity.ERROR
    assert f"{table}.{column}: {expectation} ({table}.{name}, block)" in check.description, check.description
    materialised = {e.asset_key for e in result.get_asset_materialization_events()}
    assert below and not materialised & below  # nothing downstream of the failing asset ran
    after = snapshot(path, marts_below)
    for t in marts_below:  # the rows of the last good run are untouched
        assert_frame_equal(after[t], before[t])
    quarantine = Warehouse(path).query("select row_key, expectation, action, run_id from raw.quarantine")
    hits = quarantine.filter((pl.col("row_key") == row_key) & (pl.col("expectation") == f"{table}.{name}"))
    assert hits.height >= 1, quarantine
    assert hits["action"][0] == "block" and hits["run_id"][0] == result.run_id


def test_the_real_2018_dominance_glitch_blocks_when_every_expectation_blocks(real_data, tmp_path):
    path = tmp_path / "rotation.duckdb"
    # January 2018 from the whole recording (before mid-2020 the replay lists no BTC candles, so
    # CoinGecko's BTC chart a night then asked for would be missing).
    result = run_nightly(REAL_DATA, path, dt.date(2018, 1, 1), dt.date(2018, 1, 31), quality=STRICT, replay_until_last=False)
    asset = dg.AssetKey(["raw", "btc_dominance"])
    check = next(c for c in result.get_asset_check_evaluations() if c.asset_key == asset)
    assert not result.success and not check.passed
    assert ("raw.btc_dominance.btc_dominance_pct: expect_column_values_to_be_between "
            "(raw.btc_dominance.one_day_spike, block)") in check.description
    materialised = {e.asset_key for e in result.get_asset_materialization_events()}
    assert dg.AssetKey(["marts", "market_regime"]) not in materialised
    wh = Warehouse(path)
    assert wh.query("select row_key from raw.quarantine").rows() == [('{"date":"2018-01-16"}',)]
    held = wh.query("select date from raw.btc_dominance order by date")["date"].to_list()
    recorded = pl.read_parquet(REAL_DATA / "btc_dominance_1d.parquet").filter(
        pl.col("date").is_between(dt.date(2018, 1, 1), dt.date(2018, 1, 31)))["date"].to_list()
    assert held == [d for d in recorded if d != dt.date(2018, 1, 16)]  # the glitch day stays out of the table


# ------------------------------------------------------------------ a thousandfold candle (the real history, edited)

GLITCH = dt.date(2025, 6, 20)
SLICE = (dt.date(2025, 3, 1), dt.date(2025, 6, 30))
COINS = ("BTC", "ETH", "SOL", "DOGE", "SHIB", "PEPE")
DOGE_GLITCH = '{"exchange":"binance","symbol":"DOGE/USDT","date":"%s"}' % GLITCH


def _doge_x1000(folder: Path, glitch: dt.date) -> Path:
    """Four months of the real history for six coins, with DOGE's candle of `glitch` scaled x1000 on all
    four prices (so the range checks pass): what a published 1000x candle looks like."""
    spot = [f"{c}/USDT" for c in COINS]
    candles = pl.read_parquet(REAL_DATA / "ohlcv_1d.parquet").filter(pl.col("symbol").is_in(spot) & pl.col("date").is_between(*SLICE))
    hit = _candle("DOGE/USDT", glitch)
    candles.with_columns(pl.when(hit).then(pl.col(c) * 1000).otherwise(pl.col(c)).alias(c) for c in ("open", "high", "low", "close")
                         ).write_parquet(folder / "ohlcv_1d.parquet")
    pl.read_parquet(REAL_DATA / "funding_8h.parquet").filter(
        pl.col("symbol").is_in([f"{s}:USDT" for s in spot]) & pl.col("ts").dt.date().is_between(*SLICE)).write_parquet(folder / "funding_8h.parquet")
    for file in ("chain_tvl_1d", "btc_dominance_1d"):
        pl.read_parquet(REAL_DATA / f"{file}.parquet").filter(pl.col("date").is_between(*SLICE)).write_parquet(folder / f"{file}.parquet")
    return folder


@pytest.fixture(scope="module")
def doge_x1000(real, tmp_path_factory) -> Path:
    return _doge_x1000(tmp_path_factory.mktemp("doge_x1000"), GLITCH)


def test_a_thousandfold_doge_candle_is_quarantined_and_the_marts_never_see_it(doge_x1000, tmp_path):
    path = tmp_path / "rotation.duckdb"

    result = run_nightly(doge_x1000, path, *SLICE)  # the shipped policy

    assert result.success  # one glitch of one coin does not stop the night...
    check = next(c for c in result.get_asset_check_evaluations() if c.asset_key == dg.AssetKey(["raw", "ohlcv_1d"]))
    assert check.severity == dg.AssetCheckSeverity.WARN
    assert "raw.ohlcv_1d.close: expect_column_values_to_be_between (raw.ohlcv_1d.price_spike, warn)" in check.description
    wh = Warehouse(path)
    quarantined = wh.query("select row_key, expectation, action, kept_in_table from raw.quarantine")
    assert quarantined.rows() == [(DOGE_GLITCH, "raw.ohlcv_1d.price_spike", "warn", False)]
    doge = wh.query("select date from raw.ohlcv_1d where symbol = 'DOGE/USDT' order by date")["date"]
    assert GLITCH not in doge and GLITCH - dt.timedelta(days=1) in doge and GLITCH + dt.timedelta(days=1) in doge
    # ...and the marts never see it: the Memes index moves as real memes did (with the glitch: x476 in a day)
    memes = wh.query("select max(level) as level, max(abs(ret_1d)) as ret from marts.sector_index where sector = 'Memes'")
    assert memes["level"][0] < 1_000 and memes["ret"][0] < 0.5, memes


def test_marts_built_on_a_glitch_the_raw_gate_let_through_keep_their_last_good_rows(doge_x1000, tmp_path):
    """A raw check loosened until the glitch passes: the sector index then moves x476 in a day, beyond
    any real index day (+392%: Memes, 2021-01-28), and the mart check blocks its write."""
    loose = tmp_path / "quality.yaml"
    loose.write_text("candle_spike_max_factor: 10000\n")
    path = tmp_path / "rotation.duckdb"

    result = run_nightly(doge_x1000, path, *SLICE, quality=QualitySettings(config_path=str(loose)))

    assert not result.success
    check = next(c for c in result.get_asset_check_evaluations() if c.asset_key == dg.AssetKey(["marts", "sector_index"]))
    assert not check.passed and check.severity == dg.AssetCheckSeverity.ERROR
    assert ("marts.sector_index.ret_1d: expect_column_values_to_be_between (marts.sector_index.plausible_day, block)"
            in check.description), check.description
    assert Warehouse(path).query("select count(*) as n from marts.sector_index")["n"][0] == 0  # nothing written


def test_a_glitch_on_a_months_last_day_is_held_then_quarantined_and_the_next_month_runs_on(real, tmp_path):
    """The newest candle x1000 on May 31 waits a night (it cannot be confirmed yet); June's first night
    asks for it again though it lies before June (the table lacks it), finds it a spike between May 30
    and June 1, and keeps it out; no night blocks on the hole it leaves."""
    may_31 = dt.date(2025, 5, 31)
    (tmp_path / "data").mkdir()
    data = _doge_x1000(tmp_path / "data", may_31)
    path = tmp_path / "rotation.duckdb"
    glitch = '{"exchange":"binance","symbol":"DOGE/USDT","date":"2025-05-31"}'
    doge = "select date from raw.ohlcv_1d where symbol = 'DOGE/USDT' and date >= '2025-05-30' order by date"
    held = "select expectation from raw.quarantine where row_key = ? order by quarantined_at"

    for first, last, expectations in [
        (SLICE[0], may_31, ["raw.ohlcv_1d.unconfirmed_jump"]),
        (dt.date(2025, 6, 1), dt.date(2025, 6, 1), ["raw.ohlcv_1d.unconfirmed_jump", "raw.ohlcv_1d.price_spike"]),
        (dt.date(2025, 6, 2), dt.date(2025, 6, 2), ["raw.ohlcv_1d.unconfirmed_jump", "raw.ohlcv_1d.price_spike"]),
    ]:
        result = run_nightly(data, path, first, last)
        assert result.success, (last, [c.description for c in result.get_asset_check_evaluations() if not c.passed])
        wh = Warehouse(path)
        days = wh.query(doge)["date"].to_list()
        assert days == [dt.date(2025, 5, 30)] + [d for d in (dt.date(2025, 6, 1), dt.date(2025, 6, 2)) if d <= last]
        assert wh.query(held, [glitch])["expectation"].to_list() == expectations
