"""The backtest's metrics, checked against quantstats on the same daily returns (periods=365, rf=0),
and on small equity curves whose drawdowns and sums are worked out by hand."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import polars as pl
import pytest
import quantstats as qs

from pipeline.evaluation.metrics import summary, yearly_returns

PERIODS = 365
CAPITAL = 100_000.0
START = dt.date(2021, 3, 15)  # mid-year, so the first and the last calendar year are partial
DAYS = 1_100                  # ~3 years, through the leap year 2024


def daily_rows(strategy: str, first: dt.date, ret: list[float] | np.ndarray, capital: float, **columns) -> pl.DataFrame:
    """A strategy's marts.backtest_daily rows from its daily returns: equity compounds them from
    `capital`; the other columns are the given ones or quiet defaults (no costs, no hedge)."""
    n = len(ret)
    defaults = {
        "turnover": [0.0] * n, "fees": [0.0] * n, "funding_paid": [0.0] * n, "funding_received": [0.0] * n,
        "hedge_pnl": [0.0] * n, "gross_exposure": [1.0] * n, "net_exposure": [1.0] * n, "hedge_notional": [0.0] * n,
        "funding_missing_notional": [0.0] * n, "liquidations": [0] * n, "phase": ["bear"] * n,
    }
    frame = pl.DataFrame({
        "strategy": [strategy] * n,
        "date": pl.date_range(first, first + dt.timedelta(days=n - 1), eager=True),
        "equity": capital * np.cumprod(1 + np.asarray(ret, dtype=float)),
        "ret": np.asarray(ret, dtype=float),
        **{**defaults, **columns},
    })
    return frame.with_columns(
        funding=pl.col("funding_received") - pl.col("funding_paid"),
        liquidations=pl.col("liquidations").cast(pl.Int32),
        phase=pl.col("phase").cast(pl.String),
    )


def from_equity(strategy: str, first: dt.date, capital: float, equity: list[float], **columns) -> pl.DataFrame:
    """Rows for an equity curve written out by hand (ret = equity / the day before's - 1)."""
    before = [capital, *equity[:-1]]
    rows = daily_rows(strategy, first, [e / b - 1 for e, b in zip(equity, before)], capital, **columns)
    return rows.with_columns(equity=pl.Series(equity))


def random_market() -> dict[str, np.ndarray]:
    """Seeded daily returns: one strategy crashes ~75% and climbs back above its peak, the other
    falls for its last 300 days and never gets back."""
    rng = np.random.default_rng(20240601)
    recovers = rng.normal(0.0008, 0.025, DAYS)
    recovers[150:270] -= 0.012
    recovers[270:520] += 0.006
    never_recovers = rng.normal(0.0015, 0.03, DAYS)
    never_recovers[-300:] -= 0.006
    return {"recovers": recovers, "never_recovers": never_recovers}


MARKET = random_market()


@pytest.fixture(scope="module")
def daily() -> pl.DataFrame:
    return pl.concat([daily_rows(name, START, ret, CAPITAL) for name, ret in MARKET.items()])


def returns_series(ret: np.ndarray, first: dt.date = START) -> pd.Series:
    return pd.Series(ret, index=pd.date_range(first, periods=len(ret), freq="D"))


def library_drawdown_dates(returns: pd.Series) -> tuple[dt.date, dt.date, dt.date | None]:
    """(peak, trough, recovery) of the worst drawdown as quantstats reports it. Its `start` is the
    first day below the peak and its `end` the last one (or the last day if it never recovers), so
    the peak is the day before `start` (the eve of the first day for the initial capital) and the
    recovery the day after `end`."""
    drawdown = qs.stats.to_drawdown_series(returns)
    details = qs.stats.drawdown_details(drawdown)
    worst = details.loc[details["max drawdown"].idxmin()]
    start, valley, end = (pd.Timestamp(worst[c]) for c in ("start", "valley", "end"))
    start_at, end_at = returns.index.get_loc(start), returns.index.get_loc(end)
    peak = returns.index[start_at - 1] if start_at > 0 else start - pd.Timedelta(days=1)
    recovery = returns.index[end_at + 1] if end_at + 1 < len(returns) else None
    return peak.date(), valley.date(), recovery.date() if recovery is not None else None


def row(table: pl.DataFrame, strategy: str) -> dict:
    return table.filter(pl.col("strategy") == strategy).row(0, named=True)


def close(expected: float):
    return pytest.approx(expected, rel=1e-9, abs=1e-12)


@pytest.mark.parametrize("strategy", sorted(MARKET))
def test_return_metrics_match_quantstats(daily, strategy):
    returns = returns_series(MARKET[strategy])
    metrics = row(summary(daily), strategy)

    assert metrics["days"] == DAYS
    assert metrics["total_return"] == close(qs.stats.comp(returns))
    # quantstats counts years as rows / periods, the same convention as ours.
    assert metrics["cagr"] == close(qs.stats.cagr(returns, rf=0, periods=PERIODS))
    assert metrics["volatility"] == close(qs.stats.volatility(returns, periods=PERIODS))
    assert metrics["sharpe"] == close(qs.stats.sharpe(returns, rf=0, periods=PERIODS))
    assert metrics["sortino"] == close(qs.stats.sortino(returns, rf=0, periods=PERIODS))
    assert metrics["max_drawdown"] == close(qs.stats.max_drawdown(returns))
    assert metrics["calmar"] == close(qs.stats.calmar(returns, periods=PERIODS))


@pytest.mark.parametrize("strategy, recovered", [("recovers", True), ("never_recovers", False)])
def test_drawdown_dates_match_quantstats(daily, strategy, recovered):
    peak, trough, recovery = library_drawdown_dates(returns_series(MARKET[strategy]))
    assert (recovery is not None) == recovered  # the market is the one the story needs

    metrics = row(summary(daily), strategy)

    assert metrics["max_drawdown"] < -0.5
    assert (metrics["max_drawdown_peak"], metrics["max_drawdown_trough"], metrics["max_drawdown_recovery"]) == (
        peak, trough, recovery)


def test_drawdown_worked_by_hand():
    """From 100: up to 110 on day 2, down to 88 on day 4 (-20%), back above 110 on day 5. Another
    curve loses a quarter of its 64 on the first day and is back at exactly 64 on day 3: its peak is
    the initial capital, dated the eve of its first day."""
    day = [dt.date(2024, 5, d) for d in range(1, 7)]
    daily = pl.concat([
        from_equity("later_peak", day[0], 100.0, [105.0, 110.0, 99.0, 88.0, 121.0, 100.0]),
        from_equity("first_day_loss", day[0], 64.0, [48.0, 56.0, 64.0, 60.0]),
    ])

    table = summary(daily)

    later, first_loss = row(table, "later_peak"), row(table, "first_day_loss")
    assert later["max_drawdown"] == pytest.approx(88 / 110 - 1)
    assert (later["max_drawdown_peak"], later["max_drawdown_trough"], later["max_drawdown_recovery"]) == (
        day[1], day[3], day[4])
    assert first_loss["max_drawdown"] == pytest.approx(-0.25)
    first_loss_dates = (first_loss["max_drawdown_peak"], first_loss["max_drawdown_trough"],
                        first_loss["max_drawdown_recovery"])
    assert first_loss_dates == (dt.date(2024, 4, 30), day[0], day[2])
    for strategy, returns in (("later_peak", later), ("first_day_loss", first_loss)):
        ret = daily.filter(pl.col("strategy") == strategy)["ret"].to_numpy()
        assert library_drawdown_dates(returns_series(ret, day[0])) == (
            returns["max_drawdown_peak"], returns["max_drawdown_trough"], returns["max_drawdown_recovery"])


def test_a_curve_that_only_rises_has_no_drawdown():
    daily = from_equity("only_up", dt.date(2024, 1, 1), 100.0, [101.0, 103.0, 104.0])

    metrics = row(summary(daily), "only_up")

    assert metrics["max_drawdown"] == 0.0
    assert metrics["max_drawdown_peak"] is None and metrics["max_drawdown_trough"] is None
    assert metrics["max_drawdown_recovery"] is None and metrics["calmar"] is None
    assert metrics["sortino"] is None  # no down day: no downside deviation
    assert metrics["total_return"] == pytest.approx(0.04)


def test_yearly_returns_match_quantstats(daily):
    years = yearly_returns(daily)

    assert years.columns == ["strategy", "year", "ret"]
    assert years["strategy"].to_list() == sorted(years["strategy"].to_list())
    for strategy, ret in MARKET.items():
        library = qs.utils.aggregate_returns(returns_series(ret), "year")
        ours = years.filter(pl.col("strategy") == strategy)
        assert ours["year"].to_list() == [2021, 2022, 2023, 2024]
        assert ours["year"].to_list() == [int(y) for y in library.index]
        assert ours["ret"].to_list() == [close(r) for r in library]


def test_the_first_year_counts_from_the_initial_capital():
    """100 becomes 110 and 121 over the last two days of 2023 (+21%), then 108.9 on New Year's day (-10%)."""
    daily = from_equity("new_year", dt.date(2023, 12, 30), 100.0, [110.0, 121.0, 108.9])

    years = yearly_returns(daily)

    assert years["year"].to_list() == [2023, 2024]
    assert years["ret"].to_list() == [pytest.approx(0.21), pytest.approx(-0.10)]


def test_costs_exposures_and_phases_add_up():
    """Five hedged days in a bear market with an altcoin surge in the middle; a hedge left without
    funding on two days; one liquidation. A second strategy never hedges."""
    first = dt.date(2024, 2, 1)
    hedged = from_equity(
        "hedged", first, 1_000.0, [1_010.0, 1_000.0, 990.0, 1_020.0, 1_030.0],
        turnover=[0.5, 0.0, 0.0, 0.25, 0.25],
        fees=[3.0, 0.0, 0.0, 1.5, 1.5],
        funding_paid=[0.0, 2.0, 2.0, 0.0, 0.0],
        funding_received=[1.0, 0.0, 0.0, 4.0, 4.0],
        hedge_pnl=[10.0, -5.0, -5.0, 20.0, 0.0],
        gross_exposure=[1.5, 1.5, 1.0, 1.0, 1.0],
        net_exposure=[0.5, 0.5, 1.0, 1.0, 1.0],
        hedge_notional=[1_000.0, 1_000.0, 0.0, 2_000.0, 1_000.0],
        funding_missing_notional=[0.0, 500.0, 0.0, 0.0, 500.0],
        liquidations=[0, 0, 0, 1, 0],
        phase=["bear", "bear", None, "altcoin_surge", "bear"],
    )
    unhedged = from_equity("unhedged", first, 1_000.0, [1_010.0, 1_000.0], phase=[None, None])

    table = summary(pl.concat([unhedged, hedged]))

    assert table["strategy"].to_list() == ["hedged", "unhedged"]
    metrics = row(table, "hedged")
    assert metrics["turnover"] == pytest.approx(0.2 * 365)
    assert (metrics["fees_paid"], metrics["funding_paid"], metrics["funding_received"]) == (6.0, 4.0, 9.0)
    assert metrics["hedge_pnl"] == 20.0
    assert (metrics["avg_gross_exposure"], metrics["avg_net_exposure"]) == (pytest.approx(1.2), pytest.approx(0.8))
    assert metrics["liquidations"] == 1
    assert metrics["funding_missing_share"] == pytest.approx(1_000 / 5_000)
    # The day without a phase still counts among the five.
    assert (metrics["share_bear"], metrics["share_altcoin_surge"]) == (pytest.approx(3 / 5), pytest.approx(1 / 5))
    assert metrics["share_btc_dominance"] == metrics["share_narrative_rotation"] == 0
    assert metrics["share_peak_consolidation"] == 0
    lazy = row(table, "unhedged")
    assert lazy["funding_missing_share"] is None
    assert lazy["share_bear"] == 0 and lazy["liquidations"] == 0


def test_summary_has_the_columns_of_marts_backtest_summary(daily):
    table = summary(daily)

    assert table.columns == [
        "strategy", "first_date", "last_date", "days", "total_return", "cagr", "volatility", "sharpe", "sortino",
        "max_drawdown", "max_drawdown_peak", "max_drawdown_trough", "max_drawdown_recovery", "calmar", "turnover",
        "fees_paid", "funding_paid", "funding_received", "hedge_pnl", "avg_gross_exposure", "avg_net_exposure",
        "liquidations", "funding_missing_share", "share_btc_dominance", "share_altcoin_surge",
        "share_narrative_rotation", "share_peak_consolidation", "share_bear",
    ]
    assert table["strategy"].to_list() == ["never_recovers", "recovers"]
    assert table["first_date"].to_list() == [START, START]
    assert table["last_date"].to_list() == [START + dt.timedelta(days=DAYS - 1)] * 2
