"""The altcoin-season index over time, against the thresholds that name a BTC season and an alt season."""

import datetime as dt

import altair as alt
import polars as pl

from pipeline.charts.style import chart_rows, per_pixel, sized, titled, up_to

BTC_SEASON, ALT_SEASON = 25.0, 75.0  # the marts.altseason thresholds (README: Altcoin season)


def altseason_index(altseason: pl.DataFrame, as_of: dt.date) -> alt.LayerChart:
    """marts.altseason.altseason_index (0..100) with rules at 25 (BTC season) and 75 (alt season)."""
    index = up_to(altseason, as_of).select("date", "altseason_index").sort("date")
    thresholds = pl.DataFrame(
        {"level": [BTC_SEASON, ALT_SEASON], "label": ["BTC season (<= 25)", "alt season (>= 75)"],
         "baseline": ["top", "bottom"]}
    )
    y_scale = alt.Scale(domain=[0, 100])
    rules = alt.Chart(chart_rows(thresholds))
    return sized(
        alt.layer(
            rules.mark_rule(strokeDash=[4, 3], color="#555555").encode(y=alt.Y("level:Q", scale=y_scale)),
            rules.transform_filter("datum.baseline == 'top'").mark_text(align="left", baseline="top", dy=3)
            .encode(x=alt.value(4), y=alt.Y("level:Q", scale=y_scale), text="label:N"),
            rules.transform_filter("datum.baseline == 'bottom'").mark_text(align="left", baseline="bottom", dy=-3)
            .encode(x=alt.value(4), y=alt.Y("level:Q", scale=y_scale), text="label:N"),
            alt.Chart(chart_rows(per_pixel(index, "altseason_index"))).mark_line(color="#4c78a8").encode(
                x=alt.X("date:T", title=None),
                y=alt.Y("altseason_index:Q", title="altseason index (% of alts beating BTC over 90 days)",
                        scale=y_scale),
                tooltip=["date:T", alt.Tooltip("altseason_index:Q", format=".0f")],
            ),
        ),
        titled("Altcoin-season index", as_of),
    )
