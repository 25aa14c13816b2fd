"""Sector indices side by side, rebased to 100 at the chart's start, against BTC and the alts composite:
which sectors a holder of each would have been better off in."""

import datetime as dt

import altair as alt
import polars as pl

from pipeline.charts.style import ALTS, BTC, chart_rows, per_pixel, sector_colour, sized, titled

DEFAULT_WINDOW_DAYS = 365
REFERENCES = (BTC, ALTS)


def sector_indices(
    index: pl.DataFrame, as_of: dt.date, start: dt.date | None = None, weighting: str = "capped"
) -> alt.LayerChart:
    """marts.sector_index levels of one weighting, each sector at 100 on its first day in the window, log y."""
    start = start or as_of - dt.timedelta(days=DEFAULT_WINDOW_DAYS)
    rebased = (
        index.filter(
            pl.col("weighting") == weighting,
            pl.col("date").is_between(start, as_of),
            pl.col("level").is_not_null() & (pl.col("level") > 0),
        )
        .sort("sector", "date")
        .select("sector", "date", rebased=100 * pl.col("level") / pl.col("level").first().over("sector"))
    )
    x = alt.X("date:T", title=None)
    y = alt.Y("rebased:Q", title=f"level, 100 = {start.isoformat()} (log)", scale=alt.Scale(type="log"))
    colour = alt.Color("sector:N", scale=sector_colour(rebased["sector"]), title="sector")
    tooltip = ["sector:N", "date:T", alt.Tooltip("rebased:Q", format=".1f")]
    rebased = per_pixel(rebased, "rebased", ["sector"])
    sectors = rebased.filter(~pl.col("sector").is_in(REFERENCES))
    references = rebased.filter(pl.col("sector").is_in(REFERENCES))
    return sized(
        alt.layer(
            alt.Chart(chart_rows(sectors)).mark_line(strokeWidth=1.5).encode(x=x, y=y, color=colour, tooltip=tooltip),
            alt.Chart(chart_rows(references)).mark_line(strokeWidth=2.5, strokeDash=[6, 3]).encode(
                x=x, y=y, color=colour, tooltip=tooltip),
        ),
        titled(f"Sector indices ({weighting}) vs BTC and Alts (dashed)", as_of),
    )
