"""Point-in-time index membership: whether a token counts on day D, decided from data up to D only.

A token joins once it has traded `min_history_days` and its average dollar volume clears the bar;
it leaves when its candles stop (delisted) or pause for `stale_after_days` (its history then
restarts). Tokens that later vanished still count while they traded: no survivorship.
"""

from __future__ import annotations

import polars as pl

from pipeline.transforms.config import Membership

# Rows are sorted by one integer key, symbol rank in the high bits and the day in the low ones, so
# that every per-symbol window below is a plain pass over the sorted frame: a shift masked where a
# new spell starts, a forward fill from the spell's first row, or a rolling window on the key
# (which cannot reach across symbols: they are 2**32 days apart).
SYMBOL_STRIDE = 1 << 32
_KEY = (
    pl.col("symbol").rank("dense").cast(pl.Int64) * SYMBOL_STRIDE + pl.col("date").cast(pl.Int64)
)


def _at_start(starts: pl.Expr, value: pl.Expr) -> pl.Expr:
    """`value` as it was on the first row of the current run (runs begin where `starts` is true)."""
    return pl.when(starts).then(value).forward_fill()


def membership(candles: pl.LazyFrame | pl.DataFrame, cfg: Membership) -> pl.LazyFrame:
    """One row per candle (symbol, date), with the evidence for membership.

    Columns added: dollar_volume_usd, spell (1, 2, ...: the symbol's runs of candles between stale
    gaps), ret_1d (null across a stale gap or on the first candle), history_days, adv_usd (average
    dollar volume of the candles in the trailing window (D - window, D]), eligible (member at D's
    close), in_return (its ret_1d counts in the index on D: it was a member at its previous close),
    score_usd (capped weighting's size, fixed per month, see below), status.
    Rows come sorted by symbol, then date.
    """
    new_symbol = pl.col("symbol") != pl.col("symbol").shift(1)
    gap = (pl.col("date") - pl.col("date").shift(1)).dt.total_days()
    new_spell = pl.col("new_spell")
    spells = new_spell.cast(pl.Int32).cum_sum()  # numbered across all symbols
    # Monthly rebalance on data known at the rebalance date: the size a constituent is weighted by
    # is its dollar volume as of the close before the month's first day it counts, i.e. the first
    # in_return row of each (symbol, spell, month) run.
    new_month = new_spell | (gap >= pl.col("date").dt.day())  # the previous candle is before the 1st
    returns_before = pl.col("in_return").cast(pl.Int32).cum_sum() - pl.col("in_return").cast(pl.Int32)
    first_in_month = pl.col("in_return") & (returns_before == _at_start(new_month, returns_before))
    return (
        candles.lazy()
        .select("symbol", "date", "close", (pl.col("close") * pl.col("volume")).alias("dollar_volume_usd"))
        .with_columns(_key=_KEY)
        .sort("_key")
        .with_columns(new_spell=new_symbol.fill_null(True) | (gap > cfg.stale_after_days))
        .with_columns(
            spell=spells - _at_start(new_symbol.fill_null(True), spells) + 1,
            ret_1d=pl.when(~new_spell).then(pl.col("close") / pl.col("close").shift(1) - 1),
            history_days=(pl.col("date") - _at_start(new_spell, pl.col("date"))).dt.total_days() + 1,
            adv_usd=pl.col("dollar_volume_usd").rolling_mean_by("_key", f"{cfg.dollar_volume_window_days}i"),
        )
        .with_columns(
            eligible=(pl.col("history_days") >= cfg.min_history_days)
            & (pl.col("adv_usd") >= cfg.min_dollar_volume_usd),
        )
        .with_columns(in_return=pl.col("eligible").shift(1).fill_null(False) & ~new_spell)
        .with_columns(
            _run=new_month.cast(pl.Int32).cum_sum(),
            _score=pl.when(first_in_month).then(pl.col("adv_usd").shift(1)),
        )
        .with_columns(
            # One _score per run at most: its max is that row's value, or null (as `first` would be).
            score_usd=pl.col("_score").max().over("_run"),
            status=pl.when(pl.col("history_days") < cfg.min_history_days)
            .then(pl.lit("too_young"))
            .when(pl.col("adv_usd") < cfg.min_dollar_volume_usd)
            .then(pl.lit("low_volume"))
            .otherwise(pl.lit("member")),
        )
        .drop("_key", "new_spell", "_run", "_score")
    )
