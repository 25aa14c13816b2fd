"""The whole analytics chain on in-memory frames: raw tables in, every mart out.

The assets run the same steps one mart at a time against the warehouse; this is the one call the
no-look-ahead test, the synthetic-regime check and the benchmark use.
"""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl

from pipeline.transforms import ENGINE
from pipeline.transforms.altseason import altseason, altseason_ranked, ranked_candles
from pipeline.transforms.config import AnalyticsConfig, without_market_caps
from pipeline.transforms.funding_costs import funding_costs
from pipeline.transforms.market_regime import market_features, market_regime
from pipeline.transforms.membership import membership
from pipeline.transforms.relative_strength import relative_strength
from pipeline.transforms.sector_index import sector_assignments, sector_days, sector_index
from pipeline.transforms.universe_membership import universe_membership


@dataclass(frozen=True)
class RawFrames:
    """The raw tables, each filtered to one spot and one perp exchange (columns as in warehouse/schema)."""

    ohlcv: pl.DataFrame
    funding: pl.DataFrame
    defi_tvl: pl.DataFrame
    btc_dominance: pl.DataFrame


MEMBER_COLUMNS = (  # what the steps read
    "key", "symbol", "date", "close", "eligible", "in_return", "ret_1d", "score_usd", "score_mcap", "growth",
    "held_since", "status", "rank", "alt_rank", "market_cap_usd",
)


# What `compute_marts` returns, in this order (the asset chain also writes marts.sector_weights).
CHAIN_MARTS = ("marts.universe_membership", "marts.sector_index", "marts.relative_strength", "marts.altseason",
               "marts.funding_costs", "marts.market_regime")

def btc_funding(costs: pl.LazyFrame, tokens: pl.DataFrame, btc: str) -> pl.LazyFrame:
    """date, funding_apr_pct: BTC perp's trailing funding, the regime's funding evidence."""
    perp = tokens.filter(pl.col("token") == btc)["perp"].to_list()
    return costs.filter(pl.col("symbol").is_in(perp)).select("date", funding_apr_pct="funding_apr_7d_pct")


def btc_symbol(tokens: pl.DataFrame, cfg: AnalyticsConfig) -> str:
    btc = tokens.filter(pl.col("token") == cfg.sector_index.btc)["symbol"]
    return btc[0] if btc.len() else ""


def season(
    members: pl.LazyFrame, tokens: pl.DataFrame, cfg: AnalyticsConfig, ranked: pl.DataFrame | None,
) -> pl.LazyFrame:
    """The altcoin-season index: over the top 50 by market cap where the rankings are known (`ranked`:
    `ranked_candles`), else over the fixed list's index members."""
    if ranked is None:
        return altseason(members, tokens, cfg.altseason, cfg.sector_index)
    return altseason_ranked(ranked, btc_symbol(tokens, cfg), cfg.altseason)


def compute_marts(
    raw: RawFrames, tokens: pl.DataFrame, cfg: AnalyticsConfig, symbol_ranks: pl.DataFrame | None = None,
    ranks: pl.DataFrame | None = None, membership_rows: bool = True,
) -> dict[str, pl.DataFrame]:
    """Every mart as a DataFrame, keyed by table name. `tokens`, `symbol_ranks`, `ranks`: the run's
    `ranking.PointInTime` (without rankings: `Universe.frame()` and None, the fixed list). Without
    `membership_rows`, no marts.universe_membership (a row per candle: a rerun that only needs the
    signals spares the memory)."""
    if symbol_ranks is None:
        cfg = without_market_caps(cfg)
    # Collected once, as two queries read it (a LazyFrame's .cache() spans one query only), and
    # only the columns they read: it stays in memory while they run.
    members = (
        membership(raw.ohlcv, tokens["symbol"], cfg.membership, symbol_ranks)
        .select(*MEMBER_COLUMNS)
        .collect(engine=ENGINE)
    )
    ranked = None if symbol_ranks is None else ranked_candles(raw.ohlcv, symbol_ranks, btc_symbol(tokens, cfg))
    universe = universe_membership(
        members, tokens if "coin" in tokens.columns else tokens.with_columns(coin="token"), ranks,
        [cfg.sector_index.btc, cfg.sector_index.eth], cfg.membership, ranked, symbol_ranks,
    ) if membership_rows else None
    members = members.lazy()
    assignments = sector_assignments(tokens, cfg.sector_index)
    days, season_index, costs = pl.collect_all(
        [
            sector_days(members, assignments),
            season(members, tokens, cfg, ranked),
            funding_costs(raw.funding),
        ],
        engine=ENGINE,
    )
    index = sector_index(members, assignments, cfg.sector_index, days).collect(engine=ENGINE)
    rs = relative_strength(index.lazy(), cfg.sector_index.btc, cfg.relative_strength).collect(engine=ENGINE)
    features = market_features(
        btc_level=index.lazy().filter(
            (pl.col("sector") == cfg.sector_index.btc) & (pl.col("weighting") == cfg.relative_strength.weighting)
        ),
        dominance=raw.btc_dominance.lazy(),
        altseason=season_index.lazy(),
        relative_strength=rs.lazy(),
        tvl=raw.defi_tvl.lazy(),
        btc_funding=btc_funding(costs.lazy(), tokens, cfg.sector_index.btc),
        alts_sector=cfg.sector_index.alts,
        cfg=cfg.regime,
    )
    regime = market_regime(features, cfg.regime).collect(engine=ENGINE)
    marts = dict(zip(CHAIN_MARTS, (universe, index, rs, season_index, costs, regime), strict=True))
    return marts if membership_rows else {t: m for t, m in marts.items() if m is not None}
