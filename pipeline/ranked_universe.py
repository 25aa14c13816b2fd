"""The universe a run uses as of a day, read from the warehouse: what the assets, the report, the
brief and the backtest command share, so that all of them hold the same coins in the same sectors."""

from __future__ import annotations

import datetime as dt

import polars as pl

from pipeline.settings import Settings
from pipeline.taxonomy import load_taxonomy
from pipeline.transforms.config import AnalyticsConfig, load_analytics_config
from pipeline.transforms.ranking import NEVER_ALTS, PointInTime, point_in_time
from pipeline.universe import load_universe
from warehouse import Warehouse


def candle_symbols(
    wh: Warehouse, last: dt.date, fixed: list[str], settings: Settings | None = None,
) -> tuple[list[str], set[str]]:
    """(every spot pair whose candles the analytics may use, the ones of them beyond the fixed list):
    the fixed list's, every taxonomy coin's but stablecoins' and wrapped assets' (the dead coins, and
    the altcoin season's exchange tokens and privacy coins), and the pairs guessed for ranked coins
    outside the taxonomy whose CoinGecko categories give a sector. An exchange lists few of the
    latter: not listing one is normal, not a warning."""
    settings = settings or Settings.from_env()
    taxonomy = load_taxonomy(settings.taxonomy_path)
    kept = taxonomy.coins_frame().filter(pl.col("exclude").is_null() | ~pl.col("exclude").is_in(list(NEVER_ALTS)))
    pairs = taxonomy.spot_frame().join(kept, on="coin", how="semi")["symbol"].to_list()
    guessed = universe_as_of(wh, last, settings).tokens["symbol"].to_list() if wh.path.exists() else []
    extra = sorted(set(pairs + guessed) - set(fixed))
    return [*fixed, *extra], set(extra)


def universe_as_of(
    wh: Warehouse, last: dt.date | None, settings: Settings | None = None, config: AnalyticsConfig | None = None,
    read_only: bool = False,
) -> PointInTime:
    """Ranked by the market caps the warehouse holds up to `last`, or the fixed list of
    `universe.yaml` when it holds none (`fallback` then says so); `last` None: all it holds.
    `read_only` for a reader of the published snapshot."""
    settings = settings or Settings.from_env()
    last = last or dt.date.max - dt.timedelta(days=1)  # (a read is up to the day after `last`)
    return point_in_time(
        wh.read("raw.market_caps", last, read_only=read_only),
        # categories are keyed by coin, not by day: those first seen by `last`
        wh.query("select source, coin, category from raw.coin_categories where first_seen <= ? "
                 "order by source, coin, category", [last]),
        load_universe(settings.universe_path).frame(ids=True), load_taxonomy(settings.taxonomy_path),
        config or load_analytics_config(settings.analytics_path),
    )
