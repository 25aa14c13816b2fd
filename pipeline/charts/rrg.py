"""The relative rotation graph: where each sector stands against BTC and the weekly path that took it
there, so a turn from one quadrant into the next is seen as it happens."""

import datetime as dt

import altair as alt
import polars as pl

from pipeline.charts.style import BTC, ETH, chart_rows, sector_colour, sized, titled

TAIL_WEEKS = 8
# quadrant, colour, and which corner (x, y sign from the centre at 100) it takes
QUADRANTS = (
    ("leading", "#54a24b", 1, 1),
    ("weakening", "#eeca3b", 1, -1),
    ("lagging", "#e45756", -1, -1),
    ("improving", "#4c78a8", -1, 1),
)
_MIN_HALF_SPAN = 2.0  # axis half-width around 100 when every point sits close to it


def rotation_graph(rs: pl.DataFrame, as_of: dt.date) -> alt.LayerChart:
    """RRG of marts.relative_strength: x rs_ratio, y rs_momentum, a tail of the last 8 weekly points."""
    weekly = [as_of - dt.timedelta(days=7 * week) for week in range(TAIL_WEEKS)]
    tails = (
        rs.filter(
            pl.col("date").is_in(weekly),
            ~pl.col("sector").is_in([BTC, ETH]),
            pl.col("rs_ratio").is_not_null(),
            pl.col("rs_momentum").is_not_null(),
        )
        .select("sector", "date", "rs_ratio", "rs_momentum", "quadrant")
        .sort("sector", "date")
    )
    newest = tails.filter(pl.col("date") == pl.col("date").max().over("sector"))
    half_span = 1.1 * max(
        _MIN_HALF_SPAN,
        *(((tails[axis] - 100).abs().max() or 0.0) for axis in ("rs_ratio", "rs_momentum")),
    )
    # one square domain centred on 100 for both axes, so the quadrants are the same size
    x_scale = y_scale = alt.Scale(domain=[100 - half_span, 100 + half_span], zero=False, nice=False)
    x = alt.X("rs_ratio:Q", title="RS-ratio (100 = at its norm vs BTC)", scale=x_scale)
    y = alt.Y("rs_momentum:Q", title="RS-momentum (100 = flat)", scale=y_scale)
    colour = alt.Color("sector:N", scale=sector_colour(tails["sector"]), legend=None)

    corners = pl.DataFrame(
        [
            {
                "quadrant": name,
                "x": min(100.0, 100 + sx * half_span), "x2": max(100.0, 100 + sx * half_span),
                "y": min(100.0, 100 + sy * half_span), "y2": max(100.0, 100 + sy * half_span),
                "label_x": 100 + sx * 0.8 * half_span, "label_y": 100 + sy * 0.9 * half_span,
            }
            for name, _, sx, sy in QUADRANTS
        ]
    )
    # the quadrants' colours on `fill`, the sectors' on `color`: one shared colour scale would paint
    # the sectors in the quadrants' colours
    quadrant_colour = alt.Fill(
        "quadrant:N", legend=None,
        scale=alt.Scale(domain=[q[0] for q in QUADRANTS], range=[q[1] for q in QUADRANTS]),
    )
    quadrants = alt.Chart(chart_rows(corners))
    shading = quadrants.mark_rect(opacity=0.12).encode(
        x=alt.X("x:Q", scale=x_scale), x2="x2:Q", y=alt.Y("y:Q", scale=y_scale), y2="y2:Q",
        fill=quadrant_colour,
    )
    labels = quadrants.mark_text(fontSize=13, fontWeight="bold", opacity=0.7).encode(
        x=alt.X("label_x:Q", scale=x_scale), y=alt.Y("label_y:Q", scale=y_scale),
        text="quadrant:N", fill=quadrant_colour,
    )
    boundaries = alt.Chart(chart_rows(pl.DataFrame({"centre": [100.0]}))).mark_rule(color="#555555")
    path = alt.Chart(chart_rows(tails))
    return sized(
        alt.layer(
            shading,
            labels,
            boundaries.encode(x=alt.X("centre:Q", scale=x_scale)),
            boundaries.encode(y=alt.Y("centre:Q", scale=y_scale)),
            path.mark_line(strokeWidth=1.5, opacity=0.8).encode(x=x, y=y, color=colour, order="date:T"),
            path.mark_circle(size=20, opacity=0.8).encode(x=x, y=y, color=colour),
            alt.Chart(chart_rows(newest)).mark_circle(size=110, opacity=1).encode(
                x=x, y=y, color=colour, tooltip=["sector:N", "date:T", "quadrant:N"]),
            alt.Chart(chart_rows(newest)).mark_text(align="left", dx=8, fontSize=11).encode(
                x=x, y=y, text="sector:N", color=colour),
        ),
        titled("Relative rotation vs BTC, 8 weekly points", as_of),
    )
