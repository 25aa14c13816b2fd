"""Suite of raw.market_caps: one row per (source, date, coin), a rank of 1 or more, no negative cap,
price or volume, a ticker, and ranks that roughly follow market caps.

CoinMarketCap's own ranks do not always follow its caps: in its recorded history 1,050 of 13,532
neighbouring pairs are inverted, 862 of them by under 1%, 18 rows sit more than 5 places off (WAX
2022-06-01: rank 107 with the cap of rank 130) and Edelcoin is rank 201 with the 17th cap
(2024-08-01). So `rank_follows_cap` only warns, and keeps the row: the vendor's rank is what it was.
"""

from __future__ import annotations

import datetime as dt

import great_expectations as gx
import polars as pl

from pipeline.quality.config import QualityConfig
from pipeline.quality.spec import TableSpec, finite, keyed_suite, named

KEY = ("source", "date", "coin")
SOURCES = ("coinmarketcap", "coingecko")
VALUES = ("market_cap_usd", "price_usd", "volume_24h_usd", "circulating_supply")


def prepare(frame: pl.DataFrame, config: QualityConfig, as_of: dt.date) -> pl.DataFrame:
    """`rank_offset`: how many places a rank sits from the coin's place by market cap in its snapshot
    (source, date); null without a rank or a cap. `values_finite`: no NaN or infinity among the
    numbers (pandas would read NaN as missing and let it pass the range checks)."""
    snapshot = ("source", "date")
    by_cap = pl.col("market_cap_usd").rank("min", descending=True).over(snapshot)
    ranked = pl.col("rank").is_not_null() & pl.col("market_cap_usd").is_not_null()
    return frame.with_columns(
        rank_offset=pl.when(ranked).then((pl.col("rank").cast(pl.Int64) - by_cap.cast(pl.Int64)).abs()),
        values_finite=pl.all_horizontal(*(finite(c).fill_null(True) for c in VALUES)),
        symbol_length=pl.col("symbol").str.strip_chars().str.len_chars(),
    )


def suite(config: QualityConfig) -> gx.ExpectationSuite:
    e = gx.expectations
    return keyed_suite(
        "raw.market_caps", KEY, ("symbol",),
        [
            named("known_source", e.ExpectColumnValuesToBeInSet(column="source", value_set=list(SOURCES))),
            named("symbol_not_empty", e.ExpectColumnValuesToBeBetween(column="symbol_length", min_value=1)),
            named("rank_positive", e.ExpectColumnValuesToBeBetween(column="rank", min_value=1)),
            named("cap_non_negative", e.ExpectColumnValuesToBeBetween(column="market_cap_usd", min_value=0)),
            named("price_non_negative", e.ExpectColumnValuesToBeBetween(column="price_usd", min_value=0)),
            named("volume_non_negative", e.ExpectColumnValuesToBeBetween(column="volume_24h_usd", min_value=0)),
            named("values_finite", e.ExpectColumnValuesToBeInSet(column="values_finite", value_set=[True])),
            named("rank_follows_cap", e.ExpectColumnValuesToBeBetween(
                column="rank_offset", max_value=config.market_cap_rank_max_offset), keeps_row=True),
        ],
    )


SPEC = TableSpec(
    "raw.market_caps", KEY, "date", prepare, suite,
    derived={"rank_offset": "rank/market_cap_usd", "values_finite": "/".join(VALUES), "symbol_length": "symbol"},
)
