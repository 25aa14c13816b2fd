"""The universe a run uses as of a day, read from the warehouse: what the assets, the report, the
brief and the backtest command share, so that all of them hold the same coins in the same sectors."""

from __future__ import annotations

import datetime as dt

from pipeline.settings import Settings
from pipeline.taxonomy import load_taxonomy
from pipeline.transforms.config import AnalyticsConfig, load_analytics_config
from pipeline.transforms.ranking import PointInTime, point_in_time
from pipeline.universe import load_universe
from warehouse import Warehouse


def universe_as_of(
    wh: Warehouse, last: dt.date, settings: Settings | None = None, config: AnalyticsConfig | None = None,
    read_only: bool = False,
) -> PointInTime:
    """Ranked by the market caps the warehouse holds up to `last`, or the fixed list of
    `universe.yaml` when it holds none (`fallback` then says so). `read_only` for a reader of the
    published snapshot."""
    settings = settings or Settings.from_env()
    return point_in_time(
        wh.read("raw.market_caps", last, read_only=read_only),
        wh.read("raw.coin_categories", last, read_only=read_only),
        load_universe(settings.universe_path).frame(), load_taxonomy(settings.taxonomy_path),
        config or load_analytics_config(settings.analytics_path),
    )
