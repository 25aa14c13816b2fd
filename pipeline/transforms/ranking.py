"""The universe as it was: every snapshot of market caps mapped to the taxonomy's coins and ranked.

`raw.market_caps` holds the vendors' rankings as they stood (CoinMarketCap's monthly history,
CoinGecko's nightly top N), dead coins included. Here each row is matched to a coin of the
taxonomy (by its vendor (symbol, name) within the alias's dates, or a CoinGecko id the taxonomy
knows; a coin the taxonomy lacks gets its sector from its recorded CoinGecko categories), one
vendor is kept per day (CoinMarketCap's where both), and the coins are ranked by market cap. The
vendor's own rank is kept beside ours: CoinMarketCap's is sometimes out of cap order (see the data
README), so selection uses the order of the caps.

Selection for the sector indices has a buffer so that members do not flicker at the edge: a coin
enters at rank <= `top_n` and stays while its rank is <= `exit_rank`; it leaves when it falls
below that or drops out of the snapshot. A snapshot dated D describes D's close, so it counts from
D on, like D's candle.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import polars as pl

from pipeline.transforms import ENGINE
from pipeline.transforms.config import AnalyticsConfig, Membership, without_market_caps

if TYPE_CHECKING:
    from pipeline.taxonomy import Taxonomy

SOURCE_PREFERENCE = ("coinmarketcap", "coingecko")  # where both rank a day, the first is kept
NEVER_ALTS = ("stablecoin", "wrapped")  # exclusion reasons that keep a coin out of the altcoin season

RANK_SCHEMA = {
    "date": pl.Date, "coin": pl.String, "source": pl.String, "rank": pl.Int32, "vendor_rank": pl.Int32,
    "alt_rank": pl.Int32, "market_cap_usd": pl.Float64, "sector": pl.String, "exclude": pl.String,
    "ranked_in": pl.Boolean,
}


def _one_source_per_day(caps: pl.LazyFrame) -> pl.LazyFrame:
    preference = pl.col("source").replace_strict(
        list(SOURCE_PREFERENCE), list(range(len(SOURCE_PREFERENCE))), default=len(SOURCE_PREFERENCE)
    )
    return caps.filter(preference == preference.min().over("date"))


def coin_of(caps: pl.LazyFrame, aliases: pl.DataFrame, coins: pl.DataFrame) -> pl.LazyFrame:
    """`caps` with `coin`: the taxonomy's coin of each vendor row, or `<source>:<vendor id>` for one
    the taxonomy does not know. A (symbol, name) alias matches within its since/until dates (an
    alias without a name: any name of that ticker, when no named alias matches); a CoinGecko row
    whose id is a taxonomy coin matches that coin."""
    rows = caps.with_row_index("_row")
    aliases = aliases.lazy().with_columns(pl.col("symbol").str.to_uppercase())
    within = (pl.col("since").is_null() | (pl.col("date") >= pl.col("since"))) & (
        pl.col("until").is_null() | (pl.col("date") <= pl.col("until")))
    keys = rows.select("_row", "date", pl.col("symbol").str.to_uppercase(), "name")

    def matched(on: list[str], named: bool, alias: str) -> pl.LazyFrame:
        listed = aliases.filter(pl.col("name").is_not_null() if named else pl.col("name").is_null())
        # the taxonomy refuses overlapping aliases: at most one coin per row
        return keys.join(listed.drop([] if named else ["name"]), on=on).filter(within).group_by("_row").agg(
            pl.col("coin").min().alias(alias))

    known = coins.lazy().select(pl.col("coin").alias("_id_coin"), pl.col("coin").alias("vendor_coin"))
    return (
        rows.rename({"coin": "vendor_coin"})
        .join(matched(["symbol", "name"], True, "_alias_coin"), on="_row", how="left")
        .join(matched(["symbol"], False, "_ticker_coin"), on="_row", how="left")
        .join(known, on="vendor_coin", how="left")
        .with_columns(
            coin=pl.coalesce(
                "_alias_coin",
                pl.when(pl.col("source") == "coingecko").then("_id_coin"),
                "_ticker_coin",
                pl.concat_str("source", pl.lit(":"), "vendor_coin"),
            )
        )
        .drop("_row", "_alias_coin", "_ticker_coin", "_id_coin")
    )


def coin_ranks(
    market_caps: pl.DataFrame | pl.LazyFrame, aliases: pl.DataFrame, coins: pl.DataFrame,
    categorised: pl.DataFrame, btc_coin: str, cfg: Membership,
) -> pl.DataFrame:
    """One row per (snapshot date, coin): rank (1 = largest cap that day), vendor_rank, alt_rank
    (rank among the coins the altcoin season counts: not BTC, no stablecoin or wrapped asset; null
    for the others), market_cap_usd, sector and exclude (from the taxonomy, else from the coin's
    CoinGecko categories), and ranked_in: selected for the sector indices at that snapshot (see the
    module's buffer). Coins that were in the selection and dropped out of a snapshot get a row there
    with null ranks and ranked_in false, so that an as-of lookup on any later day finds them out.

    `aliases`, `coins`: the taxonomy's frames; `categorised`: coin (`<source>:<id>`), sector, exclude
    for coins outside the taxonomy whose categories map to one."""
    caps = _one_source_per_day(coin_of(market_caps.lazy(), aliases, coins))
    # a coin listed twice in one snapshot (a vendor's duplicate): the larger cap counts
    caps = (
        caps.sort("date", "coin", pl.col("market_cap_usd").fill_null(-1.0), descending=[False, False, True])
        .unique(["date", "coin"], keep="first", maintain_order=True)
    )
    labels = pl.concat([coins.select("coin", "sector", "exclude"), categorised.select("coin", "sector", "exclude")])
    labels = labels.unique("coin", keep="first", maintain_order=True)
    alt = (pl.col("coin") != btc_coin) & (pl.col("exclude").is_null() | ~pl.col("exclude").is_in(list(NEVER_ALTS)))
    # row_number() over (partition by date order by market_cap_usd desc nulls last, coin)
    ranked = (
        caps.join(labels.lazy(), on="coin", how="left")
        .sort("date", "market_cap_usd", "coin", descending=[False, True, False], nulls_last=True)
        .with_columns(
            vendor_rank=pl.col("rank").cast(pl.Int32),
            rank=pl.int_range(1, pl.len() + 1, dtype=pl.Int32).over("date"),
            alt_rank=pl.when(alt).then(alt.cast(pl.Int32).cum_sum().over("date")),
        )
        .select("date", "coin", "source", "rank", "vendor_rank", "alt_rank", "market_cap_usd", "sector", "exclude")
        .collect(engine=ENGINE)
    )
    return _with_selection(ranked, cfg)


def _with_selection(ranked: pl.DataFrame, cfg: Membership) -> pl.DataFrame:
    """Adds ranked_in (the buffer) and the rows where a coin dropped out of a snapshot."""
    dates = ranked.select("date").unique().sort("date").with_row_index("_snap")
    seen = ranked.join(dates, on="date")
    # Each coin on every snapshot from its first: absent ones are out (rank null).
    first = seen.group_by("coin").agg(pl.col("_snap").min().alias("_first"))
    grid = (
        first.join(dates, how="cross")
        .filter(pl.col("_snap") >= pl.col("_first"))
        .join(seen, on=["coin", "_snap", "date"], how="left")
        .sort("coin", "date")
    )
    within_buffer = pl.col("rank").is_not_null() & (pl.col("rank") <= cfg.exit_rank)
    run = (~within_buffer).cast(pl.Int32).cum_sum().over("coin")
    grid = grid.with_columns(
        ranked_in=within_buffer & (pl.col("rank") <= cfg.top_n).cum_max().over("coin", run.alias("_run")).fill_null(False)
    )
    # Keep the snapshots where the coin was ranked, and the first one after each stretch it was absent.
    absent = pl.col("rank").is_null()
    keep = ~absent | (absent & ~absent.shift(1).over("coin").fill_null(False))
    labels = ["sector", "exclude", "source"]
    return (
        grid.with_columns(pl.col(labels).forward_fill().over("coin"))
        .filter(keep)
        .select(list(RANK_SCHEMA))
        .cast(RANK_SCHEMA)
        .sort("date", "rank", "coin", nulls_last=True)
    )


def symbol_ranks(ranks: pl.DataFrame, spot: pl.DataFrame) -> pl.DataFrame:
    """`ranks` per spot symbol: symbol, date, coin, rank, alt_rank, market_cap_usd, ranked_in, sorted
    by (symbol, date): what membership and the altcoin season look up as of each candle."""
    return (
        ranks.join(spot.select("coin", "symbol"), on="coin")
        .select("symbol", "date", "coin", "rank", "alt_rank", "market_cap_usd", "ranked_in")
        .sort("symbol", "date")
    )


@dataclass(frozen=True)
class PointInTime:
    """The universe a run uses. With market caps: every coin of the taxonomy that has a sector (and
    every coin outside it whose CoinGecko categories give one), each selected day by day from the
    rankings; without: the fixed list (`fallback` says why, for the log, the run's tags and the report).

    tokens: token, symbol, sector, bucket, perp, coin, as `Universe.frame()` plus the coin; `ranks`:
    `coin_ranks`; `symbol_ranks`: `symbol_ranks` of every coin with a spot pair (membership's and the
    altcoin season's lookups); `config`: the analytics configuration the run uses (without market
    caps, `without_market_caps` of the file's)."""

    tokens: pl.DataFrame
    ranks: pl.DataFrame | None
    symbol_ranks: pl.DataFrame | None
    fallback: str | None
    config: AnalyticsConfig


TOKEN_SCHEMA = {"token": pl.String, "symbol": pl.String, "sector": pl.String, "bucket": pl.String,
                "perp": pl.String, "coin": pl.String}


def point_in_time(
    market_caps: pl.DataFrame, categories: pl.DataFrame, fixed: pl.DataFrame, taxonomy: Taxonomy,
    cfg: AnalyticsConfig,
) -> PointInTime:
    """The run's universe from `raw.market_caps` and `raw.coin_categories` (source, coin, category)
    as of its last day, `fixed` (`Universe.frame(ids=True)`, the hand-kept list) and the taxonomy.

    A fixed-list token the taxonomy does not know (a user's addition) is a coin of its own: its
    CoinGecko id, its sector, its pair, and its name as the ticker the vendors rank it under."""
    spot, coins, aliases = taxonomy.spot_frame(), taxonomy.coins_frame(), taxonomy.aliases_frame()
    own_id = pl.col("coingecko") if "coingecko" in fixed.columns else pl.col("token")
    fixed = fixed.join(spot, on="symbol", how="left").with_columns(coin=pl.coalesce("coin", own_id))
    unknown = fixed.filter(~pl.col("symbol").is_in(spot["symbol"].implode()) & ~pl.col("coin").is_in(coins["coin"].implode()))
    if unknown.height:
        spot = pl.concat([spot, unknown.select("coin", "symbol")])
        coins = pl.concat([coins, unknown.select("coin", "sector", exclude=pl.lit(None, pl.String),
                                                 note=pl.lit("from the fixed list"))], how="vertical_relaxed")
        aliases = pl.concat([aliases, unknown.select("coin", symbol="token", name=pl.lit(None, pl.String),
                                                     since=pl.lit(None, pl.Date), until=pl.lit(None, pl.Date))],
                            how="vertical_relaxed")
    fixed = fixed.select(list(TOKEN_SCHEMA))
    if market_caps.is_empty():
        return PointInTime(fixed, None, None, "no market caps in the warehouse (raw.market_caps is empty): "
                           "the sector indices use the fixed list of pipeline/universe.yaml", without_market_caps(cfg))
    categorised = _categorised(market_caps, categories, coins, taxonomy)
    btc_coin = fixed.filter(pl.col("token") == cfg.sector_index.btc)["coin"]
    ranks = coin_ranks(market_caps, aliases, coins, categorised,
                       btc_coin[0] if btc_coin.len() else cfg.sector_index.btc, cfg.membership)
    guessed = categorised.filter(pl.col("sector").is_not_null() & ~pl.col("symbol").is_in(spot["symbol"].implode()))
    pairs = pl.concat([spot.select("coin", "symbol"), guessed.select("coin", "symbol")])
    sectors = pl.concat([coins.select("coin", "sector"), categorised.select("coin", "sector")]).drop_nulls("sector")
    ranked = (
        pairs.join(sectors, on="coin")
        .filter(~pl.col("symbol").is_in(fixed["symbol"].implode()))
        .select(
            token=pl.col("symbol").str.split("/").list.first(), symbol="symbol", sector="sector",
            bucket=pl.lit("speculative"), perp=pl.lit(None, pl.String), coin="coin",
        )
        .filter(~pl.col("token").is_in(fixed["token"].implode()))
    )
    tokens = pl.concat([fixed, ranked.cast(TOKEN_SCHEMA)]).unique("symbol", keep="first", maintain_order=True)
    return PointInTime(tokens, ranks, symbol_ranks(ranks, pairs), None, cfg)


def _categorised(market_caps: pl.DataFrame, categories: pl.DataFrame, coins: pl.DataFrame, taxonomy: Taxonomy) -> pl.DataFrame:
    """coin (`<source>:<id>`), symbol (its guessed spot pair, `<TICKER>/USDT`), sector, exclude of the
    ranked coins the taxonomy lacks whose recorded CoinGecko categories map to a sector or an exclusion."""
    schema = {"coin": pl.String, "symbol": pl.String, "sector": pl.String, "exclude": pl.String}
    if categories.is_empty():
        return pl.DataFrame(schema=schema)
    known = set(coins["coin"])
    rows = []
    for (source, vendor), group in categories.sort("category").group_by("source", "coin", maintain_order=True):
        if vendor in known:
            continue
        sector, exclude = taxonomy.sector_for_categories(group["category"].to_list())
        if sector or exclude:
            rows.append((f"{source}:{vendor}", source, vendor, sector, exclude))
    if not rows:
        return pl.DataFrame(schema=schema)
    found = pl.DataFrame(rows, schema=["coin", "source", "vendor", "sector", "exclude"], orient="row")
    tickers = (
        market_caps.sort("date").group_by("source", "coin").agg(pl.col("symbol").last())
        .select("source", vendor="coin", symbol=pl.col("symbol").str.to_uppercase() + "/USDT")
    )
    return found.join(tickers, on=["source", "vendor"], how="left").select(list(schema)).sort("coin")
