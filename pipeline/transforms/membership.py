"""Point-in-time index membership: whether a token counts on day D, decided from data up to D only.

A token joins once it has traded `min_history_days` and its average dollar volume clears the bar;
it leaves when its candles stop (delisted) or pause for `stale_after_days` (its history then
restarts). Tokens that later vanished still count while they traded: no survivorship.
"""

from __future__ import annotations

import polars as pl

from pipeline.transforms.config import Membership


def membership(candles: pl.LazyFrame | pl.DataFrame, cfg: Membership) -> pl.LazyFrame:
    """One row per candle (symbol, date), with the evidence for membership.

    Columns added: dollar_volume_usd, ret_1d (null across a stale gap or on the first candle),
    history_days, adv_usd (average dollar volume over the window), eligible (member at D's close),
    in_return (its ret_1d counts in the index on D: it was a member at its previous close),
    score_usd (capped weighting's size, fixed per month, see below), status.
    """
    sym = ["symbol"]
    prev_date = pl.col("date").shift(1).over(sym)
    gap = (pl.col("date") - prev_date).dt.total_days()
    return (
        candles.lazy()
        .select("symbol", "date", "close", (pl.col("close") * pl.col("volume")).alias("dollar_volume_usd"))
        .sort("symbol", "date")
        .with_columns(new_spell=gap.is_null() | (gap > cfg.stale_after_days))
        .with_columns(spell=pl.col("new_spell").cast(pl.Int32).cum_sum().over(sym))
        .with_columns(
            ret_1d=pl.when(~pl.col("new_spell")).then(pl.col("close") / pl.col("close").shift(1).over(sym) - 1),
            history_days=(pl.col("date") - pl.col("date").min().over("symbol", "spell")).dt.total_days() + 1,
            adv_usd=pl.col("dollar_volume_usd")
            .rolling_mean_by("date", window_size=f"{cfg.dollar_volume_window_days}d")
            .over(sym),
        )
        .with_columns(
            eligible=(pl.col("history_days") >= cfg.min_history_days)
            & (pl.col("adv_usd") >= cfg.min_dollar_volume_usd),
        )
        .with_columns(
            in_return=pl.col("eligible").shift(1).over(sym).fill_null(False) & ~pl.col("new_spell"),
            adv_prev=pl.col("adv_usd").shift(1).over(sym),
            month=pl.col("date").dt.truncate("1mo"),
        )
        # Monthly rebalance on data known at the rebalance date: the size a constituent is weighted
        # by is its dollar volume as of the close before the month's first day it counts.
        .with_columns(
            score_usd=pl.col("adv_prev").filter(pl.col("in_return")).first().over("symbol", "spell", "month"),
            status=pl.when(pl.col("history_days") < cfg.min_history_days)
            .then(pl.lit("too_young"))
            .when(pl.col("adv_usd") < cfg.min_dollar_volume_usd)
            .then(pl.lit("low_volume"))
            .otherwise(pl.lit("member")),
        )
        .drop("new_spell", "adv_prev", "month")
    )
