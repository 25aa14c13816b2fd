"""BTC dominance and BTC's price level with the detected market phases behind them as bands: what the
phase detector saw when it switched."""

import datetime as dt

import altair as alt
import polars as pl

from pipeline.charts.style import BTC, chart_rows, per_pixel, sized, titled, up_to

PHASE_COLOURS = {
    "btc_dominance": "#f58518",
    "altcoin_surge": "#54a24b",
    "narrative_rotation": "#b279a2",
    "peak_consolidation": "#eeca3b",
    "bear": "#e45756",
}


def phase_runs(regime: pl.DataFrame) -> pl.DataFrame:
    """One row per contiguous run of a phase: phase, start, end (the day after its last day)."""
    return (
        regime.sort("date")
        .with_columns(run=(pl.col("phase") != pl.col("phase").shift()).fill_null(True).cum_sum())
        .filter(pl.col("phase").is_not_null())
        .group_by("run", maintain_order=True)
        .agg(pl.col("phase").first(), start=pl.col("date").min(), end=pl.col("date").max() + dt.timedelta(days=1))
        .drop("run")
    )


def dominance_and_phases(
    regime: pl.DataFrame, btc_index: pl.DataFrame | None, as_of: dt.date
) -> alt.LayerChart:
    """marts.market_regime's phase bands, btc_dominance_pct (left axis) and BTC's index level (right, log)."""
    regime = up_to(regime, as_of)
    runs = phase_runs(regime)
    x = alt.X("date:T", title=None)
    bands = alt.Chart(chart_rows(runs)).mark_rect(opacity=0.18).encode(
        x=alt.X("start:T", title=None), x2="end:T",
        color=alt.Color("phase:N", title="phase", scale=alt.Scale(
            domain=list(PHASE_COLOURS), range=list(PHASE_COLOURS.values()))),
        tooltip=["phase:N", "start:T", "end:T"],
    )
    dominance = alt.Chart(chart_rows(per_pixel(regime.select("date", "btc_dominance_pct"), "btc_dominance_pct"))).mark_line(
        color="#1f4e9c", strokeWidth=1.5
    ).encode(x=x, y=alt.Y("btc_dominance_pct:Q", title="BTC dominance % (blue)", scale=alt.Scale(zero=False)))
    layers = [bands, dominance]
    if btc_index is not None:
        btc = up_to(btc_index, as_of)
        if "sector" in btc.columns:
            btc = btc.filter(pl.col("sector") == BTC)
        sort_by = ["date", "weighting"] if "weighting" in btc.columns else ["date"]
        btc = btc.sort(sort_by).unique("date", keep="first", maintain_order=True).select("date", "level")
        layers.append(
            alt.Chart(chart_rows(per_pixel(btc, "level"))).mark_line(color="#000000", strokeWidth=1.2).encode(
                x=x, y=alt.Y("level:Q", title="BTC index level (black, log)", scale=alt.Scale(type="log", nice=False),
                             axis=alt.Axis(orient="right")))
        )
    return sized(
        alt.layer(*layers).resolve_scale(y="independent"),
        titled("BTC dominance, BTC and the market phase", as_of),
    )
