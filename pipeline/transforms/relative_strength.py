"""Relative strength vs BTC (`marts.relative_strength`) and relative-rotation-graph coordinates.

rs_vs_btc = 100 * sector level / BTC level. The RRG follows J. de Kempenaer's idea with causal,
rolling windows only (a full-sample normalisation would leak the future into every past point):
- rs_ratio: the EMA-smoothed ratio over its own rolling mean, centred on 100 (> 100: the sector's
  trend against BTC is above its recent norm);
- rs_momentum: the true rate of change of rs_ratio over `momentum_lookback_days`, centred on 100
  (> 100: rs_ratio is rising). Open-source clones often use a z-score of the ratio itself here,
  which is just the ratio again, lagged; this is its velocity.
Quadrants: leading (ratio >= 100, momentum >= 100), weakening (>= 100, < 100), lagging (< 100,
< 100), improving (< 100, >= 100); null while a window is still warming up.
Every window counts calendar days, also where a day is missing from the index read back from the
warehouse: the day before's ratio stands in for it.
"""

from __future__ import annotations

import polars as pl

from pipeline.transforms.config import RelativeStrength

QUADRANTS = ("leading", "weakening", "lagging", "improving")
MOMENTUM_DAYS = (7, 30, 90)  # rs_mom_{n}d_pct columns of the mart


def with_missing_days(frame: pl.LazyFrame, keys: list[str]) -> pl.LazyFrame:
    """`frame` with a row for every calendar day from each key's first date to its last, sorted by
    keys and date, so that windows counted in rows (EMAs, rolling means, shifts) count days.

    The chain's frames are complete calendars; a mart read back from the warehouse may not be (a
    partition the quality gate held back). The added rows have `_observed` false and nulls.
    """
    frame = frame.with_columns(_observed=pl.lit(True))
    span = [pl.date_ranges(pl.col("date").min(), pl.col("date").max(), "1d").alias("date")]
    days = (frame.group_by(keys).agg(*span) if keys else frame.select(*span)).explode("date")
    return (
        days.join(frame, on=[*keys, "date"], how="left", nulls_equal=True)
        .with_columns(pl.col("_observed").fill_null(False))
        .sort(*keys, "date")
    )


def relative_strength(index: pl.LazyFrame, btc_sector: str, cfg: RelativeStrength) -> pl.LazyFrame:
    """sector, date, rs_vs_btc, rs_mom_{n}d_pct, rs_ratio, rs_momentum, quadrant for every sector but BTC.

    `index` is `sector_index()`'s output; rows of `cfg.weighting` are used.
    """
    levels = index.lazy().filter(pl.col("weighting") == cfg.weighting)
    btc = levels.filter(pl.col("sector") == btc_sector).select("date", btc_level="level")
    rs = (
        levels.filter(pl.col("sector") != btc_sector)
        .join(btc, on="date")
        .select("sector", "date", rs_vs_btc=100.0 * pl.col("level") / pl.col("btc_level"))
    )
    # Rows of a daily calendar per sector (`with_missing_days`): a lag of n rows is n days, onto a
    # missing day's null ratio if that day is missing; the windows carry the day before's ratio.
    ratio = pl.col("rs_vs_btc").forward_fill().over("sector")
    smooth = ratio.ewm_mean(span=cfg.smoothing_days, adjust=False).over("sector")
    momentum = {
        f"rs_mom_{days}d_pct": 100.0 * (pl.col("rs_vs_btc") / pl.col("rs_vs_btc").shift(days).over("sector") - 1)
        for days in MOMENTUM_DAYS
    }
    rs = (
        with_missing_days(rs, ["sector"])
        .with_columns(_smooth=smooth, **momentum)
        .with_columns(
            rs_ratio=100.0
            * pl.col("_smooth")
            / pl.col("_smooth").rolling_mean(cfg.ratio_window_days, min_samples=cfg.ratio_window_days).over("sector")
        )
        .with_columns(
            rs_momentum=100.0 * pl.col("rs_ratio") / pl.col("rs_ratio").shift(cfg.momentum_lookback_days).over("sector")
        )
        .with_columns(quadrant=quadrant(pl.col("rs_ratio"), pl.col("rs_momentum")))
        .filter("_observed")
    )
    return rs.select("sector", "date", "rs_vs_btc", *momentum, "rs_ratio", "rs_momentum", "quadrant")


def quadrant(ratio: pl.Expr, momentum: pl.Expr) -> pl.Expr:
    strong, rising = ratio >= 100, momentum >= 100
    return (
        pl.when(ratio.is_null() | momentum.is_null())
        .then(None)
        .when(strong & rising)
        .then(pl.lit("leading"))
        .when(strong)
        .then(pl.lit("weakening"))
        .when(rising)
        .then(pl.lit("improving"))
        .otherwise(pl.lit("lagging"))
    )
