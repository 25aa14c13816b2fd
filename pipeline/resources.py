"""Dagster resources: the warehouse, and the market-data sources (live APIs or the local replay).

In replay mode the sources resource starts the replay server in-process on a free port for the
duration of the run, so the very same ccxt/requests clients run offline.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import logging
from collections.abc import Iterator
from pathlib import Path

import ccxt
import ccxt.async_support
import dagster as dg
import polars as pl
from pydantic import Field, PrivateAttr

from pipeline.quality.config import QualityConfig, load_quality_config
from pipeline.settings import Settings
from pipeline.sources.coingecko import CoinGecko
from pipeline.sources.coinmarketcap import CoinMarketCap
from pipeline.sources.concurrent import SYMBOLS_IN_FLIGHT
from pipeline.sources.defillama import DefiLlama
from pipeline.sources.exchange import make_exchange
from pipeline.strategy.playbook import Playbook, load_playbook
from pipeline.strategy.portfolio import Portfolio, load_portfolio
from pipeline.ranked_universe import universe_as_of
from pipeline.transforms.config import AnalyticsConfig, load_analytics_config
from pipeline.transforms.ranking import PointInTime
from pipeline.universe import Universe, load_universe
from warehouse import Warehouse

log = logging.getLogger(__name__)


class WarehouseResource(dg.ConfigurableResource):
    """The DuckDB warehouse file (default: ROTATION_WAREHOUSE or warehouse/rotation.duckdb).

    A run holds the warehouse's writer lock from its first step to its last (`Warehouse.writing`):
    a second run on the same file waits up to `wait_s` (default ROTATION_WAREHOUSE_WAIT_S, 60 s)
    and then fails, naming this run, before it touches the file."""

    path: str | None = None
    wait_s: float | None = Field(None, ge=0)

    def get(self) -> Warehouse:
        return Warehouse(self.path or Settings.from_env().warehouse_path, wait_s=self.wait_s)

    @contextlib.contextmanager
    def yield_for_execution(self, context: dg.InitResourceContext) -> Iterator[WarehouseResource]:
        with self.get().writing(run_id=context.run.run_id if context.run else None):
            yield self


class AnalyticsSettings(dg.ConfigurableResource):
    """What the analytics need besides data: thresholds, the universe, which exchanges' rows to use.

    Unset fields fall back to ROTATION_ANALYTICS (default pipeline/analytics.yaml), ROTATION_UNIVERSE,
    ROTATION_EXCHANGE and ROTATION_PERP_EXCHANGE. Loaded and validated before any asset runs.
    """

    config_path: str | None = None
    universe_path: str | None = None
    taxonomy_path: str | None = None
    exchange: str | None = None
    perp_exchange: str | None = None

    _config = PrivateAttr(default=None)
    _universe = PrivateAttr(default=None)

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        settings = Settings.from_env()
        self._config = load_analytics_config(self.config_path or settings.analytics_path)
        self._universe = load_universe(self.universe_path or settings.universe_path)

    @property
    def config(self) -> AnalyticsConfig:
        return self._config

    @property
    def tokens(self) -> pl.DataFrame:
        """The fixed list (`universe.yaml`); a run's universe is `universe_as_of`."""
        return self._universe.frame()

    def universe_as_of(self, wh: Warehouse, last: dt.date) -> PointInTime:
        """The universe the analytics use as of `last`: ranked by the market caps the warehouse holds
        up to that day, or the fixed list when it holds none (`fallback` says so)."""
        settings = Settings.from_env()
        overrides = {k: Path(v) for k, v in (("universe_path", self.universe_path), ("taxonomy_path", self.taxonomy_path)) if v}
        return universe_as_of(wh, last, settings.model_copy(update=overrides), self._config)

    @property
    def spot_exchange_id(self) -> str:
        return self.exchange or Settings.from_env().exchange

    @property
    def perp_exchange_id(self) -> str:
        return self.perp_exchange or Settings.from_env().perp_exchange


class StrategySettings(dg.ConfigurableResource):
    """The playbook and the user's portfolio: `playbook_path` / `portfolio_path`, else
    ROTATION_PLAYBOOK / ROTATION_PORTFOLIO (defaults: pipeline/playbook.yaml and the example
    pipeline/portfolio.yaml). The playbook is validated before any asset runs; the portfolio only
    when the orders asset loads it, so that a typo in it fails the orders, not the night."""

    playbook_path: str | None = None
    portfolio_path: str | None = None

    _playbook = PrivateAttr(default=None)

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        settings = Settings.from_env()
        self._playbook = load_playbook(self.playbook_path or settings.playbook_path, universe_path=settings.universe_path)

    @property
    def playbook(self) -> Playbook:
        return self._playbook

    @property
    def portfolio_file(self) -> Path:
        return Path(self.portfolio_path) if self.portfolio_path else Settings.from_env().portfolio_path

    def portfolio(self) -> Portfolio:
        """The user's portfolio, validated against the universe (PortfolioError names what is wrong)."""
        return load_portfolio(self.portfolio_file, load_universe(Settings.from_env().universe_path))


class QualitySettings(dg.ConfigurableResource):
    """The quality gate's thresholds and block/warn policy: `config_path`, else ROTATION_QUALITY
    (default pipeline/quality.yaml). `block_everything` makes every failed expectation block."""

    config_path: str | None = None
    block_everything: bool = False

    _config = PrivateAttr(default=None)

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        config = load_quality_config(self.config_path or Settings.from_env().quality_path)
        self._config = config.every_block() if self.block_everything else config

    @property
    def config(self) -> QualityConfig:
        return self._config


class MarketSources(dg.ConfigurableResource):
    """Where market data comes from. Unset fields fall back to the ROTATION_* environment."""

    mode: str | None = None  # "replay" | "live"
    replay_data: str | None = None  # dataset folder; unset = the embedded synthetic market
    universe_path: str | None = None  # unset = ROTATION_UNIVERSE or pipeline/universe.yaml
    exchange: str | None = None  # ccxt id for spot candles
    perp_exchange: str | None = None  # ccxt id for perp funding
    timeout_s: float = 30.0
    backoff_s: float = 1.0  # first retry delay; doubles per retry
    # exchange symbols fetched at once through ccxt's asyncio client (its rate limiter sets the pace);
    # 1 = one after another through ccxt's sync client, as before issue 21 (the P4 bench's baseline)
    symbols_in_flight: int = Field(SYMBOLS_IN_FLIGHT, ge=1)
    # replay only: faults to inject, in the replay CLI's form, e.g. "missing_field=fundingRate:/fapi/"
    faults: list[str] = []
    # replay only: serve the world as on the night after this day (YYYY-MM-DD), not the dataset's last
    until: str | None = None

    _server = PrivateAttr(default=None)
    _replay = PrivateAttr(default=None)  # ReplayInfo of the dataset replayed, None live
    _base_url = PrivateAttr(default=None)
    _universe = PrivateAttr(default=None)

    def settings(self) -> Settings:
        env = Settings.from_env()
        return env.model_copy(
            update={
                k: v
                for k, v in {
                    "sources": self.mode,
                    "exchange": self.exchange,
                    "perp_exchange": self.perp_exchange,
                }.items()
                if v
            }
        )

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        settings = self.settings()
        if self.until and settings.sources != "replay":
            raise ValueError("MarketSources.until replays a past night; live sources are always as of yesterday")
        # Validated before any asset runs: a bad universe fails the run with nothing written.
        self._universe = load_universe(self.universe_path or settings.universe_path)
        if settings.sources != "replay":
            return
        from pipeline.sources.replay import FaultRule, ReplayServer, load_dataset
        from pipeline.sources.replay.dataset import ReplayInfo
        from pipeline.sources.replay.synthetic import ensure_synthetic

        if settings.replay_url:
            # A replay server in a process of its own, as the exchanges are: its data is not this run's memory.
            if self.until or self.faults:
                raise ValueError("MarketSources.until and .faults steer a replay started by the run; "
                                 f"unset ROTATION_REPLAY_URL ({settings.replay_url}) to use them")
            self._replay, self._base_url = ReplayInfo.ask(settings.replay_url), settings.replay_url.rstrip("/")
        else:
            folder = self.replay_data or settings.replay_data or ensure_synthetic(settings.replay_cache)
            dataset = load_dataset(folder)
            if self.until:
                dataset = _until(dataset, dt.date.fromisoformat(self.until))
            self._server = ReplayServer(dataset, universe=self._universe)
            for spec in self.faults:
                self._server.faults.add(FaultRule.parse(spec))
            self._replay, self._base_url = ReplayInfo.of(dataset), self._server.start()
        context.log.info(f"replay of {self._replay.label!r} dataset (as of {self._replay.as_of}) at {self._base_url}")

    def teardown_after_execution(self, context: dg.InitResourceContext) -> None:
        if self._server is not None:
            self._server.stop()
            self._server = None

    # -- what the assets use -------------------------------------------------------------
    @property
    def universe(self) -> Universe:
        return self._universe

    @property
    def base_url(self) -> str | None:
        return self._base_url

    @property
    def dataset_label(self) -> str | None:
        return self._replay.label if self._replay is not None else None

    def as_of(self) -> dt.date:
        """The last day data can exist for: the replay's as-of day, or yesterday (UTC) live."""
        if self._replay is not None:
            return self._replay.as_of
        return dt.datetime.now(dt.UTC).date() - dt.timedelta(days=1)

    def source(self, name: str) -> str:
        """The `source` column value: the endpoint, tagged `@replay:<dataset>` when replayed."""
        return f"{name}@replay:{self.dataset_label}" if self._replay is not None else name

    def spot_exchange(self) -> ccxt.Exchange | ccxt.async_support.Exchange:
        """A new client for the spot candles: asyncio unless symbols are fetched one at a time."""
        return make_exchange(self.settings().exchange, "spot", self.base_url, int(self.timeout_s * 1000),
                             asynchronous=self.symbols_in_flight > 1)

    def perp_exchange_client(self) -> ccxt.Exchange | ccxt.async_support.Exchange:
        """A new client for the perps' funding: asyncio unless symbols are fetched one at a time."""
        return make_exchange(self.settings().perp_exchange, "linear", self.base_url, int(self.timeout_s * 1000),
                             asynchronous=self.symbols_in_flight > 1)

    def defillama(self) -> DefiLlama:
        kwargs = {"base_url": self.base_url} if self.base_url else {}
        return DefiLlama(timeout_s=self.timeout_s, backoff_s=self.backoff_s, **kwargs)

    def coingecko(self) -> CoinGecko:
        s = self.settings()
        base = f"{self.base_url}/api/v3" if self.base_url else None
        return CoinGecko(
            base_url=base, api_key=s.coingecko_api_key, plan=s.coingecko_plan,
            timeout_s=self.timeout_s, backoff_s=self.backoff_s,
        )

    def coinmarketcap(self) -> CoinMarketCap | None:
        """CMC's client: the replay's, or live with COINMARKETCAP_API_KEY; None live without a key
        (its historical listings need a paid plan)."""
        s = self.settings()
        if self.base_url is None and not s.coinmarketcap_api_key:
            return None
        return CoinMarketCap(base_url=self.base_url, api_key=s.coinmarketcap_api_key, timeout_s=self.timeout_s,
                             backoff_s=self.backoff_s)


def _until(dataset, day: dt.date):
    """The dataset as it stood on the night after `day`: the replay serves nothing later."""
    if not dataset.first_date <= day <= dataset.as_of:
        raise ValueError(f"until={day} is outside the {dataset.label!r} dataset ({dataset.first_date} .. {dataset.as_of})")
    return dataclasses.replace(dataset, as_of=day)
