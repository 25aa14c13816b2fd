"""The backtest's equity and drawdown per strategy: what following the recommendations would have made
and the worst it would have felt, next to the plain alternatives."""

import altair as alt
import polars as pl

from pipeline.charts.style import chart_rows, per_pixel, sized, titled

STRATEGY_COLOURS = {
    "playbook": "#1f4e9c", "playbook_unhedged": "#7eaee0", "btc_hold": "#000000",
    "btc_eth_60_40": "#8c8c8c", "neutral_buckets": "#f58518", "equal_sectors": "#54a24b",
}


def _strategy_colour(strategies: pl.Series) -> alt.Color:
    domain = [s for s in STRATEGY_COLOURS if s in set(strategies)]
    domain += sorted(set(strategies) - set(domain))
    return alt.Color("strategy:N", title="strategy", scale=alt.Scale(
        domain=domain, range=[STRATEGY_COLOURS.get(s, "#b279a2") for s in domain]))


def _lines(frame: pl.DataFrame, field: str, y: alt.Y, title: str, value_format: str, width: float) -> alt.Chart:
    """One line per strategy of `field` over time."""
    return sized(
        alt.Chart(chart_rows(per_pixel(frame, field, ["strategy"]))).mark_line(strokeWidth=width).encode(
            x=alt.X("date:T", title=None), y=y, color=_strategy_colour(frame["strategy"]),
            tooltip=["strategy:N", "date:T", alt.Tooltip(f"{field}:Q", format=value_format)],
        ),
        titled(title, frame["date"].max()),
    )


def equity_curves(daily: pl.DataFrame) -> alt.Chart:
    """marts.backtest_daily equity per strategy, log scale."""
    equity = daily.select("strategy", "date", "equity").sort("strategy", "date")
    y = alt.Y("equity:Q", title="equity, USD (log)", scale=alt.Scale(type="log"))
    return _lines(equity, "equity", y, "Backtest equity by strategy", ",.0f", 1.5)


def drawdown(daily: pl.DataFrame) -> pl.DataFrame:
    """strategy, date, drawdown: equity / its running peak - 1, the initial capital (the first day's
    equity / (1 + ret)) counting as the first peak, as marts.backtest_summary.max_drawdown does."""
    initial = (pl.col("equity").first() / (1 + pl.col("ret").first())).over("strategy")
    peak = pl.max_horizontal(pl.col("equity").cum_max().over("strategy"), initial)
    return daily.sort("strategy", "date").select("strategy", "date", drawdown=pl.col("equity") / peak - 1)


def drawdowns(daily: pl.DataFrame) -> alt.Chart:
    """Drawdown from the running peak per strategy, as lines."""
    y = alt.Y("drawdown:Q", title="drawdown from the peak", axis=alt.Axis(format="%"))
    return _lines(drawdown(daily), "drawdown", y, "Backtest drawdown by strategy", ".1%", 1.2)
