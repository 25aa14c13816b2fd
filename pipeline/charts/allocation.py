"""The model portfolio's sector weights over time, and the day's targets next to the user's own weights:
how far a portfolio is from where the playbook would have it."""

import datetime as dt

import altair as alt
import polars as pl

from pipeline.charts.style import chart_rows, sector_colour, sector_order, sized, titled, up_to

TARGET, YOURS = "model target", "your portfolio"


def changes(weights: pl.DataFrame) -> pl.DataFrame:
    """The days on which a weight changed (and the first and last), every sector on each, 0 where a
    sector has no row: drawn as steps, they are the whole picture (a weight holds until it changes),
    without the thousands of unchanged days of a long history. Sorted by day and sector."""
    if weights.is_empty():
        return weights
    grid = weights.pivot(on="sector", index="as_of", values="target_weight").sort("as_of").fill_null(0.0)
    sectors = [c for c in grid.columns if c != "as_of"]
    moved = pl.any_horizontal([pl.col(s) != pl.col(s).shift() for s in sectors]).fill_null(True)
    kept = grid.filter(moved | (pl.col("as_of") == pl.col("as_of").max()))
    return kept.unpivot(sectors, index="as_of", variable_name="sector", value_name="target_weight").sort("as_of", "sector")


def target_allocation(rotation: pl.DataFrame, as_of: dt.date) -> alt.Chart:
    """Stacked steps of marts.rotation_recommendation.target_weight per sector, up to as_of."""
    weights = changes(up_to(rotation, as_of, column="as_of").select("as_of", "sector", "target_weight"))
    stacking = {sector: i for i, sector in enumerate(sector_order(weights["sector"]))}
    weights = weights.with_columns(stack=pl.col("sector").replace_strict(stacking, return_dtype=pl.Int32))
    return sized(
        alt.Chart(chart_rows(weights)).mark_area(opacity=0.9, interpolate="step-after").encode(
            x=alt.X("as_of:T", title=None),
            y=alt.Y("target_weight:Q", stack="zero", title="target weight",
                    axis=alt.Axis(format="%"), scale=alt.Scale(domain=[0, 1])),
            color=alt.Color("sector:N", scale=sector_colour(weights["sector"]), title="sector"),
            order=alt.Order("stack:Q"),  # the legend's order, bottom up
            tooltip=["as_of:T", "sector:N", alt.Tooltip("target_weight:Q", format=".1%")],
        ),
        titled("Model portfolio: target weight by sector", as_of),
    )


def target_vs_portfolio(targets: pl.DataFrame, portfolio: pl.DataFrame) -> alt.Chart:
    """Grouped bars per sector: the newest day's target_weight of `targets` vs `portfolio`'s weight."""
    day = targets["as_of"].max()
    target = targets.filter(pl.col("as_of") == day).select("sector", weight=pl.col("target_weight"))
    yours = portfolio.select("sector", "weight")
    sectors = sector_order(pl.concat([target["sector"], yours["sector"]]))
    bars = pl.concat(
        [
            pl.DataFrame({"sector": sectors}, schema={"sector": pl.String}).join(frame, on="sector", how="left")
            .with_columns(pl.col("weight").fill_null(0.0), holder=pl.lit(holder))
            for holder, frame in ((TARGET, target), (YOURS, yours))
        ]
    )
    return sized(
        alt.Chart(chart_rows(bars)).mark_bar().encode(
            x=alt.X("sector:N", title=None, sort=sectors, axis=alt.Axis(labelAngle=0)),
            xOffset=alt.XOffset("holder:N", sort=[TARGET, YOURS]),
            y=alt.Y("weight:Q", title="weight", axis=alt.Axis(format="%")),
            color=alt.Color("holder:N", title=None, sort=[TARGET, YOURS],
                            scale=alt.Scale(domain=[TARGET, YOURS], range=["#4c78a8", "#f58518"])),
            tooltip=["sector:N", "holder:N", alt.Tooltip("weight:Q", format=".1%")],
        ),
        titled("Target vs your portfolio", day) if day is not None else "Target vs your portfolio",
    )
