"""Altcoin-season index: the share of eligible alts whose return over the window beats BTC's.

With market caps (`altseason_ranked`), as Blockchaincenter defines it: eligible on day D are the
top `top_n` (50) coins by market cap of the newest snapshot on or before D, BTC, stablecoins and
wrapped or staked assets left out, that have a close on D and `window_days` earlier on the
exchange (a top-50 coin the exchange does not list sits out). Without them (`altseason`, the fixed
list): a point-in-time index member (see `membership.py`) that is not BTC, a stablecoin or a
wrapped/staked BTC/ETH, with a close `window_days` earlier. ETH counts as an alt either way.
A return needs the close exactly `window_days` earlier (a token missing that day sits the day out).
>= alt_season (75): alt season; <= btc_season (25): BTC season; else neutral. Days without BTC's
return or without any eligible alt have no row; days with too few eligible alts have a null index.
"""

from __future__ import annotations

import polars as pl

from pipeline.transforms.config import Altseason, SectorIndex
from pipeline.transforms.membership import keyed_candles, with_ranks


def with_past_close(members: pl.LazyFrame, days: int, alias: str) -> pl.LazyFrame:
    """Adds `alias`: the symbol's close exactly `days` calendar days earlier (null if that day is absent).

    `market_regime.lagged` as an as-of join with zero tolerance on membership's `key` (symbol,
    day), which its rows are already sorted by: a merge of the frame with itself `days` later, with
    no sort and no hashing. Rows keep their order.
    """
    members = members.cache()  # both sides of the join
    past = members.select(pl.col("key") + days, pl.col("close").alias(alias))
    return members.join_asof(past, on="key", strategy="backward", tolerance=0)


def altseason(
    members: pl.LazyFrame, tokens: pl.DataFrame, cfg: Altseason, index_cfg: SectorIndex
) -> pl.LazyFrame:
    """date, altseason_index (0..100), n_eligible, n_outperforming, btc_return_pct, season.

    `members` is `membership()`'s output (sorted by its `key`)."""
    btc_symbols = tokens.filter(pl.col("token") == index_cfg.btc)["symbol"]
    alt_symbols = tokens.filter(~pl.col("token").is_in([index_cfg.btc, *index_cfg.excluded_tokens]))["symbol"]
    window = f"_close_{cfg.window_days}d"
    returns = with_past_close(
        members.lazy()
        .select("key", "symbol", "date", "close", "eligible")
        .filter(pl.col("symbol").is_in(pl.concat([btc_symbols, alt_symbols]).implode())),
        cfg.window_days,
        window,
    ).with_columns(ret=pl.col("close") / pl.col(window) - 1).cache()  # read by both filters below
    btc = returns.filter(pl.col("symbol").is_in(btc_symbols.implode())).select("date", btc_ret="ret")
    alts = returns.filter(
        pl.col("eligible") & pl.col("ret").is_not_null() & pl.col("symbol").is_in(alt_symbols.implode())
    )
    return _index(alts, btc, cfg)


def ranked_candles(candles: pl.LazyFrame | pl.DataFrame, ranks: pl.DataFrame, btc_symbol: str) -> pl.DataFrame:
    """The candles of every ranked coin's pair and BTC's (symbol as an Enum, date, close, key), each
    with rank, alt_rank and market_cap_usd as known that day (`membership.with_ranks`); sorted by key.

    `ranks`: `ranking.symbol_ranks` rows (alt_rank is null for BTC, stablecoins and wrapped assets)."""
    symbols = pl.concat([ranks["symbol"], pl.Series([btc_symbol])]).unique()
    return with_ranks(keyed_candles(candles, symbols), ranks)


def altseason_ranked(ranked: pl.DataFrame, btc_symbol: str, cfg: Altseason) -> pl.LazyFrame:
    """`altseason`'s columns, the alts being the top `cfg.top_n` by market cap as known each day.

    `ranked`: `ranked_candles`."""
    window = f"_close_{cfg.window_days}d"
    returns = with_past_close(
        ranked.lazy().select("key", "symbol", "date", "close", "alt_rank"), cfg.window_days, window
    ).with_columns(ret=pl.col("close") / pl.col(window) - 1).cache()  # read by both filters below
    btc = returns.filter(pl.col("symbol") == btc_symbol).select("date", btc_ret="ret")
    alts = returns.filter((pl.col("alt_rank") <= cfg.top_n) & pl.col("ret").is_not_null())
    return _index(alts, btc, cfg)


def _index(alts: pl.LazyFrame, btc: pl.LazyFrame, cfg: Altseason) -> pl.LazyFrame:
    """Per day: how many alts beat BTC's return, of how many, and the season it makes."""
    counts = (
        alts.join(btc.filter(pl.col("btc_ret").is_not_null()), on="date")
        .group_by("date")
        .agg(
            n_eligible=pl.len().cast(pl.Int32),
            n_outperforming=(pl.col("ret") > pl.col("btc_ret")).sum().cast(pl.Int32),
            btc_return_pct=100.0 * pl.col("btc_ret").first(),
        )
    )
    enough = pl.col("n_eligible") >= cfg.min_eligible
    index = pl.when(enough).then(100.0 * pl.col("n_outperforming") / pl.col("n_eligible"))
    return (
        counts.with_columns(altseason_index=index)
        .with_columns(
            season=pl.when(pl.col("altseason_index").is_null())
            .then(None)
            .when(pl.col("altseason_index") >= cfg.alt_season)
            .then(pl.lit("alt_season"))
            .when(pl.col("altseason_index") <= cfg.btc_season)
            .then(pl.lit("btc_season"))
            .otherwise(pl.lit("neutral"))
        )
        .select("date", "altseason_index", "n_eligible", "n_outperforming", "btc_return_pct", "season")
        .sort("date")
    )
