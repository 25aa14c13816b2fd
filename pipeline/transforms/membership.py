"""Point-in-time index membership: whether a token counts on day D, decided from data up to D only.

A token joins once it has been listed `min_history_days` and its average dollar volume clears the
bar; it leaves when its candles stop (delisted) or pause (no candle for `stale_after_days` days), and
comes back the day after its candles resume if its volume still clears the bar (its return across the
pause is not a day's return). Tokens that later vanished still count while they traded: no
survivorship.
"""

from __future__ import annotations

import polars as pl

from pipeline.transforms.config import Membership

# Rows are sorted by one integer key, the symbol's code in the universe (its Enum code) in the high
# bits and the day in the low ones, so that every per-symbol window below is a plain pass over the
# sorted frame: a shift masked where a new spell starts, a forward fill from the spell's first row,
# or a rolling window on the key (which cannot reach across symbols: they are 2**32 days apart).
# Enum codes rather than strings: no string is hashed, sorted or moved, and later steps look a
# symbol's sector up by its code.
SYMBOL_STRIDE = 1 << 32


def universe_symbols(symbols: pl.Series | list[str]) -> pl.Enum:
    """The universe's symbols as the Enum that membership's `symbol` column comes back as. Its
    categories are sorted, so that rows in (symbol, date) order, as `Warehouse.read` returns them,
    are in key order too."""
    return pl.Enum(pl.Series(symbols, dtype=pl.String).unique().sort())


def symbol_day_key() -> pl.Expr:
    """The (symbol, date) sort key of a frame whose `symbol` is an Enum."""
    return pl.col("symbol").to_physical().cast(pl.Int64) * SYMBOL_STRIDE + pl.col("date").cast(pl.Int64)


def keyed_candles(candles: pl.LazyFrame | pl.DataFrame, symbols: pl.Series | list[str]) -> pl.DataFrame:
    """symbol (the universe's Enum), date, close, dollar_volume_usd and key of the universe's
    candles, sorted by key. Candles usually come in (symbol, date) order already; checking that is
    a fraction of the cost of sorting anyway, which moves every column."""
    rows = (
        candles.lazy()
        .select(
            pl.col("symbol").cast(universe_symbols(symbols), strict=False),  # null: not in the universe
            "date",
            "close",
            (pl.col("close") * pl.col("volume")).alias("dollar_volume_usd"),
        )
        .filter(pl.col("symbol").is_not_null())
        .with_columns(key=symbol_day_key())
        .collect(engine="in-memory")
    )
    return rows.with_columns(pl.col("key").set_sorted()) if rows["key"].is_sorted() else rows.sort("key")


def _at_start(starts: pl.Expr, value: pl.Expr) -> pl.Expr:
    """`value` as it was on the first row of the current run (runs begin where `starts` is true)."""
    return pl.when(starts).then(value).forward_fill()


def _day_of_month() -> pl.Expr:
    """`date.dt.day()`, computed once per calendar day and gathered: a fraction of its per-row cost."""
    day = pl.col("date").cast(pl.Int32)
    first = day.min().fill_null(0)  # an empty frame has no days: any (empty) gather will do
    calendar = pl.int_range(first, day.max().fill_null(0) + 1, dtype=pl.Int32).cast(pl.Date)
    return calendar.dt.day().gather(day - first)


def with_ranks(rows: pl.DataFrame, ranks: pl.DataFrame) -> pl.DataFrame:
    """Adds rank, alt_rank, market_cap_usd and ranked_in of the newest snapshot on or before each
    candle's day (`ranking.symbol_ranks` rows): an as-of merge on the rows' sort key. A symbol with no
    snapshot yet gets nulls (ranked_in false)."""
    symbol = rows.schema["symbol"]
    keyed = (
        ranks.lazy()
        .with_columns(pl.col("symbol").cast(symbol, strict=False))
        .filter(pl.col("symbol").is_not_null())
        .select(
            key=symbol_day_key(),
            _ranked_symbol=pl.col("symbol").to_physical(),
            rank="rank", alt_rank="alt_rank", market_cap_usd="market_cap_usd", ranked_in="ranked_in",
        )
        .sort("key")
        .collect(engine="in-memory")
    )
    same = pl.col("_ranked_symbol") == pl.col("symbol").to_physical()  # not the previous symbol's row
    looked_up = ["rank", "alt_rank", "market_cap_usd", "ranked_in"]
    return (
        rows.join_asof(keyed, on="key", strategy="backward")
        .with_columns(pl.when(same).then(pl.col(c)).alias(c) for c in looked_up)
        .with_columns(pl.col("ranked_in").fill_null(False), pl.col("key").set_sorted())
        .drop("_ranked_symbol")
    )


def membership(
    candles: pl.LazyFrame | pl.DataFrame, symbols: pl.Series | list[str], cfg: Membership,
    ranks: pl.DataFrame | None = None,
) -> pl.LazyFrame:
    """One row per candle (symbol, date) of the universe's `symbols`, with the evidence for membership.

    Candles of other symbols are left out. They are keyed and sorted here, eagerly (see
    `keyed_candles`); the rest is a lazy plan over that frame.
    Columns added: dollar_volume_usd, spell (1, 2, ...: the symbol's runs of candles between stale
    gaps), ret_1d (null across a stale gap or on the first candle), history_days (calendar days
    since the symbol's first candle, counting both), adv_usd (average dollar volume of the candles
    in the trailing window (D - window, D]), eligible (member at D's close), in_return (its ret_1d
    counts in the index on D: it was a member at its previous close), score_usd (capped
    weighting's size, fixed per month, see below), growth and held_since (how much the constituent
    grew since the index last set its weight, and the first day of that holding; see below),
    status, and key: the rows' sort key (the symbol's code, then the day; see `symbol_day_key`),
    which is what lets `altseason` look 90 days back with a merge. `symbol` comes back as
    `universe_symbols(symbols)`.

    With `ranks` (`ranking.symbol_ranks`: the market-cap rankings as known each day), a token is
    eligible only while the newest snapshot has it selected (`ranked_in`), and the rows carry rank,
    alt_rank, market_cap_usd and score_mcap (market-cap weighting's size, fixed per month like
    score_usd). Without them (no market caps: the fixed list) every token counts as ranked and those
    columns are null.
    """
    # Days since the previous row; a new symbol is always more than 2**31 days away.
    gap = pl.col("key").diff()
    new_spell = (gap > cfg.stale_after_days).fill_null(True)
    new_symbol = (pl.col("key") // SYMBOL_STRIDE).diff().ne(0).fill_null(True)
    spells = new_spell.cast(pl.Int32).cum_sum()  # numbered across all symbols
    # Monthly rebalance on data known at the rebalance date: the size a constituent is weighted by
    # is its dollar volume as of the close before the month's first day it counts, i.e. at the first
    # in_return row of each (symbol, spell, month) run. Runs are numbered by a running count, so
    # sorted: over() takes each one as a slice instead of hashing.
    new_month = new_spell | (gap >= _day_of_month())  # the previous candle is before the 1st
    run = pl.col("_run").set_sorted()
    # Between rebalances a constituent's weight drifts with its price: `growth` is its growth from
    # the close its weight was set at (the month's rebalance, or the close before it joined, if
    # later) to the previous close. Within a holding (a run of in_return rows within a month: no
    # stale gap inside) the returns chain, so that is the previous close over the one before the
    # holding's first row.
    held = pl.col("in_return")
    previous_close = pl.col("close").shift(1)
    holding_starts = held & (pl.col("_new_month") | ~held.shift(1).fill_null(False))
    keyed = keyed_candles(candles, symbols)
    if ranks is None:
        keyed = keyed.with_columns(
            rank=pl.lit(None, pl.Int32), alt_rank=pl.lit(None, pl.Int32), market_cap_usd=pl.lit(None, pl.Float64),
            ranked_in=pl.lit(True),
        )
    else:
        keyed = with_ranks(keyed, ranks)
    return (
        keyed
        .lazy()
        .with_columns(  # one step, so that the rolling mean runs alongside the rest
            new_spell=new_spell,
            spell=spells - _at_start(new_symbol, spells) + 1,
            ret_1d=pl.when(~new_spell).then(pl.col("close") / pl.col("close").shift(1) - 1),
            history_days=pl.col("key") - _at_start(new_symbol, pl.col("key")) + 1,
            adv_usd=pl.col("dollar_volume_usd").rolling_mean_by("key", f"{cfg.dollar_volume_window_days}i"),
            _new_month=new_month,
            _run=new_month.cast(pl.Int32).cum_sum(),
        )
        .with_columns(
            eligible=(pl.col("history_days") >= cfg.min_history_days)
            & (pl.col("adv_usd") >= cfg.min_dollar_volume_usd)
            & pl.col("ranked_in"),
            _adv_before=pl.col("adv_usd").shift(1),
            _mcap_before=pl.col("market_cap_usd").shift(1),
        )
        .with_columns(in_return=pl.col("eligible").shift(1).fill_null(False) & ~pl.col("new_spell"))
        .with_columns(
            score_usd=pl.col("_adv_before").filter("in_return").first().over(run),
            score_mcap=pl.col("_mcap_before").filter("in_return").first().over(run),
            growth=pl.when(held).then(previous_close / _at_start(holding_starts, previous_close)),
            held_since=pl.when(held).then(_at_start(holding_starts, pl.col("date"))),
            status=pl.when(pl.col("history_days") < cfg.min_history_days)
            .then(pl.lit("too_young"))
            .when(~pl.col("ranked_in"))
            .then(pl.lit("not_ranked"))
            .when(pl.col("adv_usd") < cfg.min_dollar_volume_usd)
            .then(pl.lit("low_volume"))
            .otherwise(pl.lit("member")),
        )
        .drop("new_spell", "_adv_before", "_mcap_before", "_new_month", "_run")
    )
