"""Suite of raw.ohlcv_1d: one candle per (exchange, symbol, date), positive finite prices, a
consistent high/low range, non-negative volume, no missing days inside a symbol's history (unless a
person accepted the gap), no symbol gone quiet while others trade, and no price glitch:

- `price_spike`: a close far from both neighbouring closes, which agree with each other (a move the
  next day takes back whole is a glitch; a real crash stays down);
- `open_spike`: an open far from both the close before it and its own close, which agree (trading
  is continuous: a day opens where the last one closed; the backtest trades at opens);
- `unconfirmed_jump`: a series' newest candle moving far from the close before, which no next day
  can confirm yet: held back until one does (the next night it is a spike or a move like LUNA's).
"""

from __future__ import annotations

import datetime as dt
import math

import great_expectations as gx
import polars as pl

from pipeline.quality.config import QualityConfig
from pipeline.quality.spec import TableSpec, finite, freshness, keyed_suite, named, stale_days

KEY = ("exchange", "symbol", "date")
SERIES = ["exchange", "symbol"]
PRICES = ("open", "high", "low", "close")


def _price_moves(frame: pl.DataFrame, config: QualityConfig, as_of: dt.date) -> pl.DataFrame:
    """Adds the factors the glitch checks bound, 1.0 where a check does not apply (a null would make
    the pandas column slow, see `_gap_days`): `spike_factor` and `open_spike_factor` (on a spike, the
    smaller of its two moves; the open's path is the day before's close, the open, the close), and
    `jump_factor` (a newest candle still expected to get a next day, vs the close before it, or before
    the spike before it). Non-positive prices compare as missing. The neighbours come from one
    context of `over` windows, which share their grouping."""
    limit = math.log(config.candle_spike_max_factor)

    def lag(column: str, n: int) -> pl.Expr:  # the value n candles earlier in the series (later if n < 0)
        return pl.col(column).shift(n).over(SERIES, order_by="date")

    def spike(before: pl.Expr, at: pl.Expr, after: pl.Expr) -> pl.Expr:  # log prices along a path
        up, down = at - before, after - at
        return ((up.abs() > limit) & (down.abs() > limit) & (up.sign() != down.sign()) & ((after - before).abs() <= limit)).fill_null(False)

    def factor(before: pl.Expr, at: pl.Expr, after: pl.Expr) -> pl.Expr:
        return pl.when(spike(before, at, after)).then(pl.min_horizontal((at - before).abs(), (after - at).abs()).exp()).otherwise(1.0)

    close, before, after = pl.col("_close"), pl.col("_before"), pl.col("_after")
    after_spike = spike(pl.col("_before2"), before, close)
    pending = pl.col("_newest") & ((pl.lit(as_of) - pl.col("date")).dt.total_days() <= config.stale_after_days)
    return (
        frame.with_columns(_close=pl.when(pl.col("close") > 0).then(pl.col("close").log()),
                           _open=pl.when(pl.col("open") > 0).then(pl.col("open").log()))
        .with_columns(_before=lag("_close", 1), _before2=lag("_close", 2), _after=lag("_close", -1), _newest=lag("date", -1).is_null())
        .with_columns(
            spike_factor=factor(before, close, after),
            open_spike_factor=factor(before, pl.col("_open"), close),
            jump_factor=pl.when(pending).then((close - pl.when(after_spike).then("_before2").otherwise(before)).abs().exp()).fill_null(1.0),
        )
        .drop("_close", "_open", "_before", "_before2", "_after", "_newest")
    )


def _gap_days(config: QualityConfig) -> pl.Expr:
    """Days since the symbol's previous candle; 0 on its first (a null would make the pandas column
    float with NaN, which GX checks 5x slower) and on gaps a person accepted in the config."""
    previous = pl.col("date").shift(1).over(SERIES, order_by="date")
    gap = (pl.col("date") - previous).dt.total_days().fill_null(0)
    accepted = pl.lit(False)
    for g in config.accepted_gaps:
        accepted = accepted | (
            (pl.col("symbol") == g.symbol) & (previous >= g.first - dt.timedelta(days=1)) & (pl.col("date") <= g.last + dt.timedelta(days=1))
        )
    return pl.when(accepted).then(0).otherwise(gap)


def prepare(frame: pl.DataFrame, config: QualityConfig, as_of: dt.date) -> pl.DataFrame:
    """Prices as GX sees them: NaN and +-inf become null, so `<price>_finite` (a not-null check)
    names the column of a NaN, an inf or a missing value alike (the failing rows shown keep the
    values as given). Derived: `body_high`/`body_low` (max/min of open and close, so the range
    check is a column pair), `gap_days`, `stale_days` and the glitch factors (`_price_moves`)."""
    finite_prices = frame.with_columns(*(pl.when(finite(c)).then(pl.col(c)).alias(c) for c in PRICES))
    return _price_moves(finite_prices, config, as_of).with_columns(
        body_high=pl.max_horizontal("open", "close"),
        body_low=pl.min_horizontal("open", "close"),
        gap_days=_gap_days(config),
        stale_days=stale_days(SPEC, config, as_of, frame.schema),
    )


def suite(config: QualityConfig) -> gx.ExpectationSuite:
    e = gx.expectations
    spike = config.candle_spike_max_factor
    return keyed_suite(
        "raw.ohlcv_1d", KEY, ("volume",),
        [
            *(named(f"{c}_finite", e.ExpectColumnValuesToNotBeNull(column=c)) for c in PRICES),
            *(named(f"{c}_positive", e.ExpectColumnValuesToBeBetween(column=c, min_value=0, strict_min=True)) for c in PRICES),
            named("high_not_below_low", e.ExpectColumnPairValuesAToBeGreaterThanB(column_A="high", column_B="low", or_equal=True)),
            named("high_covers_body", e.ExpectColumnPairValuesAToBeGreaterThanB(column_A="high", column_B="body_high", or_equal=True)),
            named("low_covers_body", e.ExpectColumnPairValuesAToBeGreaterThanB(column_A="body_low", column_B="low", or_equal=True)),
            named("volume_non_negative", e.ExpectColumnValuesToBeBetween(column="volume", min_value=0)),
            named("price_spike", e.ExpectColumnValuesToBeBetween(column="spike_factor", max_value=spike)),
            named("open_spike", e.ExpectColumnValuesToBeBetween(column="open_spike_factor", max_value=spike)),
            named("unconfirmed_jump", e.ExpectColumnValuesToBeBetween(column="jump_factor", max_value=spike)),
            named("no_gap", e.ExpectColumnValuesToBeBetween(column="gap_days", max_value=config.candle_gap_max_days), keeps_row=True),
            freshness("symbol"),
        ],
    )


SPEC = TableSpec(
    "raw.ohlcv_1d", KEY, "date", prepare, suite, series=tuple(SERIES),
    derived={"body_high": "open/close", "body_low": "open/close", "spike_factor": "close",
             "open_spike_factor": "open", "jump_factor": "close", "gap_days": "date", "stale_days": "date"},
)
