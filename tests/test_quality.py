"""Data-quality suites: clean raw frames pass; each defect fails naming the table, the column and the
expectation, and flags exactly the defective rows (positions in the frame given to `validate`)."""

from __future__ import annotations

import datetime as dt
import math

import polars as pl
import pytest

from pipeline.quality import QualityConfig, validate

INGESTED = dt.datetime(2024, 1, 10, tzinfo=dt.UTC)
D = dt.date(2024, 1, 1)


def candles(n_days: int = 5, symbols=("BTC/USDT", "ETH/USDT")) -> pl.DataFrame:
    rows = []
    for s, symbol in enumerate(symbols):
        for i in range(n_days):
            base = (100.0 + i) * (s + 1)
            rows.append(dict(exchange="binance", symbol=symbol, date=D + dt.timedelta(days=i), open=base,
                             high=base * 1.05, low=base * 0.95, close=base * 1.01, volume=1_000.0 + i,
                             source="test", ingested_at=INGESTED))
    return pl.DataFrame(rows)


def set_cell(frame: pl.DataFrame, row: int, **values) -> pl.DataFrame:
    index = pl.int_range(pl.len()) == row
    return frame.with_columns(
        pl.when(index).then(pl.lit(v, dtype=frame.schema[c])).otherwise(pl.col(c)).alias(c) for c, v in values.items()
    )


def only_failure(report, column: str, expectation: str):
    assert not report.success
    found = [f for f in report.failures if column in f.columns and f.expectation == expectation]
    assert found, report.summary()
    return found[0]


def test_clean_candles_pass():
    report = validate("raw.ohlcv_1d", candles())
    assert report.success, report.summary()
    assert report.failures == () and report.failing_rows == ()
    assert "raw.ohlcv_1d" in report.summary()


@pytest.mark.parametrize(
    ("defect", "column", "expectation"),
    [
        ({"close": math.nan}, "close", "expect_column_values_to_not_be_null"),
        ({"close": 0.0}, "close", "expect_column_values_to_be_between"),
        ({"open": -3.0}, "open", "expect_column_values_to_be_between"),
        ({"high": 90.0, "low": 110.0}, "high", "expect_column_pair_values_a_to_be_greater_than_b"),
        ({"volume": -1.0}, "volume", "expect_column_values_to_be_between"),
        ({"high": math.inf}, "high", "expect_column_values_to_not_be_null"),
    ],
)
def test_candle_defect_flags_its_row(defect, column, expectation):
    frame = set_cell(candles(), 3, **defect)
    report = validate("raw.ohlcv_1d", frame)
    failure = only_failure(report, column, expectation)
    assert failure.table == "raw.ohlcv_1d"
    assert failure.row_indices == (3,)
    assert failure.failing_keys == (("binance", "BTC/USDT", D + dt.timedelta(days=3)),)
    assert failure.examples[0]["symbol"] == "BTC/USDT" and all(c in failure.examples[0] for c in column.split("/"))
    assert report.failing_rows == (3,)
    assert f"raw.ohlcv_1d.{column}" in report.summary() and expectation in report.summary()
    assert failure.action == "block" and not failure.keeps_row


def test_nan_close_fails_even_though_pandas_calls_it_missing():
    report = validate("raw.ohlcv_1d", set_cell(candles(), 2, close=math.nan))
    assert [f.name for f in report.failures] == ["raw.ohlcv_1d.close_finite"]
    assert math.isnan(report.failures[0].examples[0]["close"])  # shown as given, not as the null GX saw
    assert report.failing_rows == (2,)


def test_high_below_low_also_breaks_the_candle_body():
    report = validate("raw.ohlcv_1d", set_cell(candles(), 1, high=90.0, low=110.0))
    failed = {f.columns for f in report.failures}
    assert {("high", "low"), ("high", "open/close"), ("open/close", "low")} <= failed
    assert report.failing_rows == (1,)


def test_duplicate_candle_key_flags_both_copies():
    frame = candles()
    report = validate("raw.ohlcv_1d", pl.concat([frame, frame[7:8]]))
    failure = only_failure(report, "symbol", "expect_compound_columns_to_be_unique")
    assert failure.columns == ("exchange", "symbol", "date")
    assert failure.row_indices == (7, 10)
    assert set(failure.failing_keys) == {("binance", "ETH/USDT", D + dt.timedelta(days=2))}


def test_three_day_gap_flags_the_candle_after_it():
    frame = candles(n_days=8).filter(~((pl.col("symbol") == "ETH/USDT") & pl.col("date").is_in([D + dt.timedelta(days=d) for d in (4, 5)])))
    report = validate("raw.ohlcv_1d", frame.reverse())  # order of rows must not matter
    failure = only_failure(report, "date", "expect_column_values_to_be_between")
    assert failure.name == "raw.ohlcv_1d.no_gap" and failure.keeps_row
    assert failure.failing_keys == (("binance", "ETH/USDT", D + dt.timedelta(days=6)),)
    assert failure.examples[0]["gap_days"] == 3
    assert len(report.failures) == 1


def test_missing_column_fails_with_an_error_instead_of_passing():
    report = validate("raw.ohlcv_1d", candles().drop("volume"))
    failure = only_failure(report, "volume", "expect_column_values_to_not_be_null")
    assert failure.error


def funding(rate: float = 0.0001) -> pl.DataFrame:
    times = [dt.datetime(2024, 1, 1, h, tzinfo=dt.UTC) for h in (0, 8, 16)]
    return pl.DataFrame(dict(exchange=["binanceusdm"] * 3, symbol=["BTC/USDT:USDT"] * 3, funding_time=times,
                             funding_rate=[rate, -rate, rate], mark_price=[42_000.0, 42_100.0, 41_900.0],
                             interval_hours=[8, 8, 8], source=["test"] * 3, ingested_at=[INGESTED] * 3))


def test_clean_funding_passes():
    assert validate("raw.funding_rates", funding()).success


def test_funding_of_half_per_eight_hours_fails():
    report = validate("raw.funding_rates", set_cell(funding(), 1, funding_rate=0.5))
    failure = only_failure(report, "funding_rate", "expect_column_values_to_be_between")
    assert failure.row_indices == (1,)
    assert failure.failing_keys[0][2] == dt.datetime(2024, 1, 1, 8, tzinfo=dt.UTC)
    assert "raw.funding_rates.funding_rate" in report.summary()


def test_funding_band_comes_from_config():
    frame = set_cell(funding(), 0, funding_rate=0.02)
    assert validate("raw.funding_rates", frame).success
    assert not validate("raw.funding_rates", frame, QualityConfig(funding_rate_max_abs=0.01)).success


def tvl() -> pl.DataFrame:
    return pl.DataFrame(dict(scope=["total", "chain", "chain", "protocol"], name=["all", "ethereum", "solana", "aave"],
                             date=[D] * 4, tvl_usd=[1e11, 6e10, 8e9, 2e10], source=["test"] * 4,
                             ingested_at=[INGESTED] * 4))


def test_clean_tvl_passes_and_negative_tvl_fails():
    assert validate("raw.defi_tvl", tvl()).success
    report = validate("raw.defi_tvl", set_cell(tvl(), 2, tvl_usd=-5.0))
    failure = only_failure(report, "tvl_usd", "expect_column_values_to_be_between")
    assert failure.row_indices == (2,) and failure.failing_keys == (("chain", "solana", D),)


def test_unknown_tvl_scope_fails():
    report = validate("raw.defi_tvl", set_cell(tvl(), 0, scope="galaxy"))
    assert only_failure(report, "scope", "expect_column_values_to_be_in_set").row_indices == (0,)


def dominance(values=(52.0, 52.5, 51.8, 53.0)) -> pl.DataFrame:
    n = len(values)
    return pl.DataFrame(dict(date=[D + dt.timedelta(days=i) for i in range(n)], btc_dominance_pct=list(values),
                             total_market_cap_usd=[1.7e12] * n, source=["test"] * n, ingested_at=[INGESTED] * n))


def test_clean_dominance_passes():
    assert validate("raw.btc_dominance", dominance()).success


def test_dominance_out_of_range_fails():
    report = validate("raw.btc_dominance", dominance((52.0, 52.5, 152.0, 53.0)).vstack(dominance((-1.0,)).with_columns(date=pl.lit(D - dt.timedelta(days=1)))))
    failure = only_failure(report, "btc_dominance_pct", "expect_column_values_to_be_between")
    assert failure.row_indices == (2, 4)


def test_dominance_jump_threshold_comes_from_config():
    frame = dominance((50.0, 57.0, 57.5))
    assert not validate("raw.btc_dominance", frame).success
    assert validate("raw.btc_dominance", frame, QualityConfig(dominance_jump_max_pp=8.0)).success


def test_real_dominance_history_glitches_are_one_day_spikes(real_data):
    """Both recorded glitches revert the next day: flagged as spikes on their day only (the revert is
    not a jump of its own), and the shipped policy only warns about them."""
    history = pl.read_parquet(real_data / "btc_dominance_1d.parquet").with_columns(
        source=pl.lit("coingecko:market_cap_chart"), ingested_at=pl.lit(INGESTED))
    report = validate("raw.btc_dominance", history)
    assert [f.name for f in report.failures] == ["raw.btc_dominance.one_day_spike"], report.summary()
    failure = report.failures[0]
    assert {key[0] for key in failure.failing_keys} == {dt.date(2018, 1, 16), dt.date(2020, 5, 10)}
    assert failure.columns == ("btc_dominance_pct",) and failure.action == "warn" and not report.blocking
    assert report.withheld_rows == failure.row_indices  # the glitch days stay out of the table


def test_a_jump_on_the_newest_day_blocks_until_the_next_day_shows_a_revert():
    spike = dominance((52.0, 52.5, 45.0))
    assert [f.name for f in validate("raw.btc_dominance", spike).blocking] == ["raw.btc_dominance.no_one_day_jump"]
    reverted = validate("raw.btc_dominance", dominance((52.0, 52.5, 45.0, 52.7)))
    assert [f.name for f in reverted.failures] == ["raw.btc_dominance.one_day_spike"] and not reverted.blocking
    lasting = validate("raw.btc_dominance", dominance((52.0, 52.5, 45.0, 45.3)))
    assert [f.name for f in lasting.failures] == ["raw.btc_dominance.no_one_day_jump"]


def test_real_candle_history(real_data):
    """Recorded finding, not a tolerance: binance PEPE/USDT has no candles 2024-12-02..2024-12-14;
    a person can accept that gap in the config."""
    history = pl.read_parquet(real_data / "ohlcv_1d.parquet")
    report = validate("raw.ohlcv_1d", history, as_of=dt.date(2025, 8, 2))
    assert [f.name for f in report.failures] == ["raw.ohlcv_1d.no_gap"], report.summary()
    assert report.failures[0].failing_keys == (("binance", "PEPE/USDT", dt.date(2024, 12, 15)),)
    assert report.failures[0].examples[0]["gap_days"] == 14
    accepted = QualityConfig(accepted_gaps=[dict(symbol="PEPE/USDT", first=dt.date(2024, 12, 2), last=dt.date(2024, 12, 14),
                                                 reason="not in the recording")])
    assert validate("raw.ohlcv_1d", history, accepted, as_of=dt.date(2025, 8, 2)).success


def test_a_symbol_quiet_for_five_days_is_stale_one_gone_for_months_is_not():
    frame = candles(n_days=30, symbols=("BTC/USDT", "ETH/USDT", "OLD/USDT")).filter(
        ~((pl.col("symbol") == "ETH/USDT") & (pl.col("date") > D + dt.timedelta(days=24)))
        & ~((pl.col("symbol") == "OLD/USDT") & (pl.col("date") > D + dt.timedelta(days=3)))
    )
    report = validate("raw.ohlcv_1d", frame, window=(D + dt.timedelta(days=29), D + dt.timedelta(days=29)))
    failure = only_failure(report, "date", "expect_column_values_to_be_between")
    assert failure.name == "raw.ohlcv_1d.stale_symbol" and failure.action == "warn" and failure.keeps_row
    assert failure.failing_keys == (("binance", "ETH/USDT", D + dt.timedelta(days=24)),)
    assert failure.examples[0]["stale_days"] == 5
    assert report.row_count == 2  # the window's one candle (BTC) and the stale symbol's newest


def test_each_shipped_accepted_gap_is_a_hole_of_the_recording_between_two_candles(real):
    """The generated list of the recording's holes: no candle inside any, one on each side."""
    from pipeline.quality.config import load_quality_config

    candles = pl.concat([real.ohlcv, real.ohlcv_delisted]).select("symbol", "date")
    for gap in load_quality_config().accepted_gaps:
        days = candles.filter(pl.col("symbol") == gap.symbol)["date"]
        assert not days.is_between(gap.first, gap.last).any(), gap
        assert (gap.first - dt.timedelta(days=1)) in days.to_list() and (gap.last + dt.timedelta(days=1)) in days.to_list(), gap


def test_the_shipped_policy_file_is_the_default_and_typos_are_named(tmp_path):
    from pipeline.quality.config import QualityConfigError, load_quality_config

    shipped = load_quality_config()  # the defaults, plus the recording's accepted gaps (from their file)
    gaps = {(g.symbol, g.first, g.last) for g in shipped.accepted_gaps}
    assert ("PEPE/USDT", dt.date(2024, 12, 2), dt.date(2024, 12, 14)) in gaps
    assert ("RENDER/USDT", dt.date(2024, 9, 7), dt.date(2024, 12, 20)) in gaps  # holes of the delisted pairs' file
    assert shipped.model_copy(update={"accepted_gaps": (), "accepted_gaps_files": ()}) == QualityConfig()
    assert QualityConfig().action("raw.btc_dominance.one_day_spike") == "warn"
    assert QualityConfig().action("raw.ohlcv_1d.no_gap") == "block"  # unlisted: blocks
    assert QualityConfig().every_block().action("raw.btc_dominance.one_day_spike") == "block"
    bad = tmp_path / "quality.yaml"
    bad.write_text("policy:\n  raw.ohlcv_1d.no_gaps: warn\n")
    with pytest.raises(QualityConfigError, match=r"quality.yaml: policy: unknown expectation\(s\) \['raw.ohlcv_1d.no_gaps'\]"):
        load_quality_config(bad)
    bad.write_text("policy:\n  raw.ohlcv_1d.no_gap: ignore\n")
    with pytest.raises(QualityConfigError, match=r"policy.raw.ohlcv_1d.no_gap"):
        load_quality_config(bad)



# ------------------------------------------------------------------ price glitches: spikes and unconfirmed jumps

PRICES = ("open", "high", "low", "close")


def scaled(frame: pl.DataFrame, row: int, factor: float, columns=PRICES) -> pl.DataFrame:
    """A glitch: some of one candle's prices multiplied, nothing else changed."""
    return set_cell(frame, row, **{c: frame[c][row] * factor for c in columns})


def path(closes: list[float]) -> pl.DataFrame:
    """BTC candles that really trade at these closes: each opens where the last closed."""
    opens = [closes[0], *closes[:-1]]
    return pl.DataFrame([
        dict(exchange="binance", symbol="BTC/USDT", date=D + dt.timedelta(days=i), open=float(o), high=max(o, c) * 1.01,
             low=min(o, c) * 0.99, close=float(c), volume=1_000.0, source="test", ingested_at=INGESTED)
        for i, (o, c) in enumerate(zip(opens, closes, strict=True))
    ])


def failed(report) -> dict[str, tuple[int, ...]]:
    return {f.name.removeprefix("raw.ohlcv_1d."): f.row_indices for f in report.failures}


def test_a_candle_scaled_a_thousandfold_is_a_spike_its_neighbours_are_not():
    report = validate("raw.ohlcv_1d", scaled(candles(), 2, 1000.0))
    assert failed(report) == {"price_spike": (2,)}, report.summary()
    spike = report.failures[0]
    assert spike.columns == ("close",) and spike.examples[0]["spike_factor"] == pytest.approx(1000 * 102 / 103)
    assert spike.action == "warn" and not report.blocking  # the shipped policy: the night goes on...
    assert report.withheld_rows == (2,)  # ...without the glitch, which is quarantined
    assert validate("raw.ohlcv_1d", scaled(candles(), 2, 1000.0), QualityConfig().every_block()).blocking


@pytest.mark.parametrize(("factor", "columns"), [(1000.0, ("close", "high")), (0.001, ("close", "low")), (10.0, ("close", "high"))])
def test_a_close_slip_inside_a_consistent_candle_is_caught_by_its_neighbours(factor, columns):
    """The range checks pass (high and low cover the close): only the days around it show the glitch."""
    report = validate("raw.ohlcv_1d", scaled(candles(), 7, factor, columns))
    assert failed(report) == {"price_spike": (7,)}, report.summary()


def test_an_open_off_both_the_close_before_and_its_own_close_is_a_spike():
    report = validate("raw.ohlcv_1d", scaled(candles(), 3, 1000.0, ("open", "high")))  # the price the backtest fills at
    assert failed(report) == {"open_spike": (3,)}, report.summary()
    assert report.failures[0].columns == ("open",)


def test_real_moves_pass_whether_they_last_or_stay_below_the_spike_factor():
    assert validate("raw.ohlcv_1d", path([100, 101, 500, 510, 505, 490])).success  # x5 up, and it stays
    assert validate("raw.ohlcv_1d", path([100, 101, 5, 0.5, 0.4, 0.45])).success  # a collapse like LUNA's
    assert validate("raw.ohlcv_1d", path([100, 101, 250, 102, 103])).success  # x2.5 up and back: below x3
    assert not validate("raw.ohlcv_1d", path([100, 101, 250, 102, 103]), QualityConfig(candle_spike_max_factor=2.0)).success


def test_a_newest_candles_big_move_waits_for_the_next_day():
    """No next day can tell a glitch on the newest day from a crash yet: it is held (quarantined, the
    night goes on); the next night it is a spike if the next day reverts, and passes if it stays."""
    glitch = scaled(path([100, 101, 102, 103, 104]), 3, 0.001, ("close", "low"))
    crash = path([100, 101, 102, 0.1, 0.11])
    for tonight in (glitch.head(4), crash.head(4)):
        report = validate("raw.ohlcv_1d", tonight)
        assert failed(report) == {"unconfirmed_jump": (3,)} and report.withheld_rows == (3,) and not report.blocking
    assert failed(validate("raw.ohlcv_1d", glitch)) == {"price_spike": (3,)}  # the next day reverts
    assert validate("raw.ohlcv_1d", crash).success  # the next day stays down: confirmed
    after_spike = validate("raw.ohlcv_1d", scaled(candles(n_days=4, symbols=("BTC/USDT",)), 2, 1000.0))
    assert failed(after_spike) == {"price_spike": (2,)}  # the newest day is measured past the spike: no jump


def test_a_newest_candle_of_a_series_that_stopped_trading_is_not_held_forever():
    frame = path([100, 101, 102, 0.1])
    assert failed(validate("raw.ohlcv_1d", frame)) == {"unconfirmed_jump": (3,)}
    later = validate("raw.ohlcv_1d", frame, as_of=D + dt.timedelta(days=3 + 3))  # quiet for 3 days: gone or stale
    assert failed(later) == {"stale_symbol": (3,)}


def test_every_real_candle_passes_the_glitch_checks_lunas_collapse_too(real_data):
    """Zero false positives on 167k real candles, the 2021 mania, LUNA (x16 and x3365 down in a day),
    OM (x6.2 down) and DOGE (x4.9 up) included: only the recordings' gaps are findings."""
    for file, as_of in (("ohlcv_1d", dt.date(2025, 8, 2)), ("ohlcv_1d_delisted", dt.date(2025, 6, 17))):
        report = validate("raw.ohlcv_1d", pl.read_parquet(real_data / f"{file}.parquet"), as_of=as_of)
        assert {f.name for f in report.failures} == {"raw.ohlcv_1d.no_gap"}, report.summary()


def test_lunas_collapse_enters_the_table_whole_each_day_a_night_late_at_most(real_data):
    """Night by night through the gate as the ingest runs it (fetch after the newest day held): each
    collapse day waits until the next confirms it; the last candle, which no day follows (the
    recording ends), enters once the series has gone quiet."""
    from pipeline.quality.gate import gate

    luna = pl.read_parquet(real_data / "ohlcv_1d_delisted.parquet").filter(
        (pl.col("symbol") == "LUNA/USDT") & pl.col("date").is_between(dt.date(2022, 5, 1), dt.date(2022, 5, 13))
    ).with_columns(source=pl.lit("test"), ingested_at=pl.lit(INGESTED)).sort("date")
    table, waited = luna.clear(), {}
    for night in pl.date_range(dt.date(2022, 5, 5), dt.date(2022, 5, 17), eager=True):
        newest = table["date"].max() if table.height else dt.date(2022, 4, 30)
        fetched = luna.filter((pl.col("date") > newest) & (pl.col("date") <= night))
        result = gate("raw.ohlcv_1d", fetched, table, (dt.date(2022, 5, 1), night), QualityConfig(), run_id=str(night))
        assert not result.report.blocking and result.withhold.height == 0
        table = pl.concat([table, result.write])
        for f in result.report.failures:
            if f.name == "raw.ohlcv_1d.unconfirmed_jump":
                waited.setdefault(f.failing_keys[0][2], []).append(night)
    assert table.sort("date").equals(luna)
    day = lambda d: dt.date(2022, 5, d)  # noqa: E731
    assert waited == {day(11): [day(11)], day(12): [day(12)], day(13): [day(13), day(14), day(15)]}


# ------------------------------------------------------------------ marts: no implausible index day


def index_days(returns: list[float | None]) -> pl.DataFrame:
    levels, level = [], 100.0
    for r in returns:
        level *= 1 + (r or 0.0)
        levels.append(level)
    n = len(returns)
    return pl.DataFrame(dict(sector=["Memes"] * n, date=[D + dt.timedelta(days=i) for i in range(n)], weighting=["equal"] * n,
                             level=levels, ret_1d=returns, n_constituents=[1] * n))


def test_a_sector_index_day_beyond_tenfold_either_way_blocks():
    assert validate("marts.sector_index", index_days([None, 0.1, 3.924, -0.402])).success  # the real history's extremes
    report = validate("marts.sector_index", index_days([None, 0.1, 475.6, -0.998, -0.95]))  # DOGE x1000, and back
    failure = only_failure(report, "ret_1d", "expect_column_values_to_be_between")
    assert failure.name == "marts.sector_index.plausible_day" and failure.action == "block"
    assert failure.row_indices == (2, 3, 4) and len(report.failures) == 1
    assert validate("marts.sector_index", index_days([None, 4.0]), QualityConfig(index_day_max_factor=4.0)).failures


def test_an_alts_vs_btc_reading_beyond_tenfold_blocks():
    regime = pl.DataFrame(dict(date=[D, D + dt.timedelta(days=1), D + dt.timedelta(days=2)], phase=["bear"] * 3,
                               risk_mode=["risk_on"] * 3, alts_vs_btc_pct=[None, 109.7, 5_722.0]))
    report = validate("marts.market_regime", regime)
    failure = only_failure(report, "alts_vs_btc_pct", "expect_column_values_to_be_between")
    assert failure.name == "marts.market_regime.plausible_alts_vs_btc" and failure.row_indices == (2,)
    assert len(report.failures) == 1
