"""Annualised perp funding against the levels that matter to a hedge: zero, hot (longs pay a lot, a
short earns it) and as negative (shorts pay)."""

import datetime as dt

import altair as alt
import polars as pl

from pipeline.charts.style import chart_rows, per_pixel, sized, titled, up_to


def funding_apr(
    costs: pl.DataFrame, perps: list[str], as_of: dt.date, hot_apr_pct: float = 30.0
) -> alt.LayerChart:
    """marts.funding_costs' trailing 7-day APR (the daily APR without it) per perp, rules at 0 and +-hot."""
    apr = "funding_apr_7d_pct" if "funding_apr_7d_pct" in costs.columns else "funding_apr_pct"
    keys = ["exchange", "symbol"] if "exchange" in costs.columns else ["symbol"]
    series = (
        up_to(costs, as_of).filter(pl.col("symbol").is_in(perps))
        .select(*keys, "date", apr_pct=pl.col(apr)).sort(*keys, "date")
    )
    levels = pl.DataFrame(
        {
            "apr_pct": [hot_apr_pct, 0.0, -hot_apr_pct],
            "label": [f"hot: longs pay {hot_apr_pct:g}% APR", "0: no funding", f"negative: shorts pay {hot_apr_pct:g}% APR"],
            "colour": ["#e45756", "#555555", "#4c78a8"],
        }
    )
    rules = alt.Chart(chart_rows(levels))
    level_y = alt.Y("apr_pct:Q")
    return sized(
        alt.layer(
            rules.mark_rule(strokeDash=[4, 3]).encode(y=level_y, color=alt.Color("colour:N", scale=None)),
            rules.mark_text(align="left", baseline="bottom", dy=-3).encode(
                x=alt.value(4), y=level_y, text="label:N", color=alt.Color("colour:N", scale=None)),
            alt.Chart(chart_rows(per_pixel(series, "apr_pct", keys))).mark_line(strokeWidth=1.3).encode(
                x=alt.X("date:T", title=None),
                y=alt.Y("apr_pct:Q", title="funding, % APR (7-day; + longs pay shorts)"),
                color=alt.Color("symbol:N", title="perp"),
                detail="exchange:N" if "exchange" in keys else alt.Undefined,
                tooltip=[*(f"{key}:N" for key in keys), "date:T", alt.Tooltip("apr_pct:Q", format=".1f")],
            ),
        ),
        titled("Perp funding", as_of),
    )


def hedged_perps(hedges: pl.DataFrame, tokens: pl.DataFrame, btc: str) -> list[str]:
    """The perps the newest day's hedges (marts.hedge_recommendation) use; BTC's when there is none
    (the bear hedge's)."""
    newest = hedges.filter(pl.col("as_of") == hedges["as_of"].max()) if hedges.height else hedges
    perps = sorted(set(newest["instrument"])) if newest.height else []
    return perps or tokens.filter(pl.col("token") == btc)["perp"].to_list()
