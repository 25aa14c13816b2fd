"""`marts.universe_membership`: who was in the universe on each day, in which sector and bucket,
at which rank and market cap, and why in or out: the evidence behind every index, the altcoin
season and the backtest's holdings.

One row per candle of a coin with a sector (`reason`: member, too_young, not_ranked, low_volume) and
of every other ranked coin the altcoin season may count (exchange tokens, privacy coins: `excluded:
<why>`, or `no sector`), plus, on each snapshot day, one row per coin ranked within the selection's
buffer that has no candle that day (`reason`: excluded: <why>, no sector, or no candle: the exchange
did not trade it). (The
ingest fetches no candles of stablecoins and wrapped assets.)
Buckets by size, point in time (the seeds): core for BTC and ETH, mid for the established large caps
(rank <= `mid_max_rank`), speculative for the rest; with the fixed list, the list's own bucket.
"""

from __future__ import annotations

import polars as pl

from pipeline.transforms.config import Membership

# What it reads of membership()'s rows
MEMBER_COLUMNS = ("symbol", "date", "rank", "alt_rank", "market_cap_usd", "eligible", "status")

SCHEMA = {
    "date": pl.Date, "coin": pl.String, "symbol": pl.String, "sector": pl.String, "bucket": pl.String,
    "rank": pl.Int32, "alt_rank": pl.Int32, "market_cap_usd": pl.Float64, "member": pl.Boolean,
    "reason": pl.String,
}


def universe_membership(
    members: pl.DataFrame, tokens: pl.DataFrame, ranks: pl.DataFrame | None, core: list[str], cfg: Membership,
    ranked: pl.DataFrame | None = None, symbol_ranks: pl.DataFrame | None = None,
) -> pl.DataFrame:
    """`members`: membership()'s rows (symbol, date, eligible, status, rank, alt_rank, market_cap_usd);
    `tokens`: token, symbol, sector, bucket, coin; `ranks`: ranking.coin_ranks (None: the fixed list);
    `core`: the core tokens' names (BTC, ETH); `ranked`: altseason.ranked_candles, whose pairs outside
    `tokens` (exchange tokens, privacy coins: counted by the altcoin season, in no sector) get their
    daily rows too, with `symbol_ranks`' coins."""
    lookup = tokens.select("symbol", "coin", "sector", "token", _listed_bucket="bucket")
    bucket = (
        pl.when(pl.col("token").is_in(core)).then(pl.lit("core"))
        .when(pl.col("rank").is_null()).then(pl.col("_listed_bucket") if ranks is None else pl.lit("speculative"))
        .when(pl.col("rank") <= cfg.mid_max_rank).then(pl.lit("mid"))
        .otherwise(pl.lit("speculative"))
    )
    daily = (
        members.lazy()
        .select(pl.col("symbol").cast(pl.String), "date", "rank", "alt_rank", "market_cap_usd",
                member="eligible", reason="status")
        .join(lookup.lazy(), on="symbol")
        .with_columns(bucket=bucket)
        .select(list(SCHEMA))
        .collect()
    )
    daily = _one_pair_a_day(daily)
    if ranks is None:
        return daily.cast(SCHEMA)
    if ranked is not None:
        daily = pl.concat([daily.cast(SCHEMA), _unsectored(ranked, symbol_ranks, tokens, ranks, cfg).cast(SCHEMA)])
    outside = (
        ranks.filter(pl.col("rank") <= cfg.exit_rank)
        .join(daily.select("date", "coin"), on=["date", "coin"], how="anti")
        .join(lookup.select("coin", "symbol").unique("coin", keep="first", maintain_order=True), on="coin", how="left")
        .select(
            "date", "coin", "symbol", "sector",
            bucket=pl.when(pl.col("rank") <= cfg.mid_max_rank).then(pl.lit("mid")).otherwise(pl.lit("speculative")),
            rank="rank", alt_rank="alt_rank", market_cap_usd="market_cap_usd", member=pl.lit(False),
            reason=pl.when(pl.col("exclude").is_not_null()).then(pl.lit("excluded: ") + pl.col("exclude"))
            .when(pl.col("sector").is_null()).then(pl.lit("no sector"))
            .otherwise(pl.lit("no candle")),
        )
    )
    return pl.concat([daily.cast(SCHEMA), outside.cast(SCHEMA)])


def _one_pair_a_day(rows: pl.DataFrame) -> pl.DataFrame:
    """Two pairs of one coin trading the same day (a rename's overlap): the first by symbol counts.
    Checked first: it is rare, and sorting every candle row to find none costs the most memory."""
    if not rows.select(pl.struct("date", "coin").is_duplicated().any()).item():
        return rows
    return rows.sort("date", "coin", "symbol").unique(["date", "coin"], keep="first", maintain_order=True)


def _unsectored(
    ranked: pl.DataFrame, symbol_ranks: pl.DataFrame, tokens: pl.DataFrame, ranks: pl.DataFrame, cfg: Membership,
) -> pl.DataFrame:
    """Daily rows of the ranked coins' candles outside `tokens`: in no sector, never members."""
    excluded = ranks.select("coin", "exclude").unique("coin", keep="last", maintain_order=True)
    return (
        ranked.lazy()
        .select(pl.col("symbol").cast(pl.String), "date", "rank", "alt_rank", "market_cap_usd")
        .filter(~pl.col("symbol").is_in(tokens["symbol"].implode()))
        .join(symbol_ranks.lazy().select("symbol", "coin").unique(), on="symbol")
        .join(excluded.lazy(), on="coin", how="left")
        .select(
            "date", "coin", "symbol", sector=pl.lit(None, pl.String),
            bucket=pl.when(pl.col("rank") <= cfg.mid_max_rank).then(pl.lit("mid")).otherwise(pl.lit("speculative")),
            rank="rank", alt_rank="alt_rank", market_cap_usd="market_cap_usd", member=pl.lit(False),
            reason=pl.when(pl.col("exclude").is_not_null()).then(pl.lit("excluded: ") + pl.col("exclude"))
            .otherwise(pl.lit("no sector")),
        )
        .collect()
    ).pipe(_one_pair_a_day)
