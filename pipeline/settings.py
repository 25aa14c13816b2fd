"""Run-time settings from environment variables, validated once, with offline-first defaults.

| variable | default | meaning |
|---|---|---|
| ROTATION_WAREHOUSE | warehouse/rotation.duckdb | DuckDB file the pipeline writes |
| ROTATION_SOURCES | replay | `replay` (local server on a dataset folder) or `live` (the real APIs) |
| ROTATION_REPLAY_DATA | (synthetic) | dataset folder to replay; unset = the embedded synthetic market |
| ROTATION_EXCHANGE | binance | ccxt exchange id for spot prices |
| ROTATION_PERP_EXCHANGE | binanceusdm | ccxt exchange id for perp funding |
| ROTATION_START_DATE | 2017-01-01 | first daily partition |
| ROTATION_UNIVERSE | pipeline/universe.yaml | the universe file (the fixed list) |
| ROTATION_TAXONOMY | pipeline/taxonomy.yaml | every coin's sector or why it is excluded |
| ROTATION_ANALYTICS | pipeline/analytics.yaml | analytics thresholds (overrides of the defaults) |
| ROTATION_QUALITY | pipeline/quality.yaml | quality-gate thresholds and the block/warn policy |
| ROTATION_PLAYBOOK | pipeline/playbook.yaml | the rotation and hedge playbook (overrides of the defaults) |
| ROTATION_PORTFOLIO | pipeline/portfolio.yaml | your portfolio: the nightly orders are for it (the example by default) |
| COINGECKO_API_KEY / COINGECKO_API_PLAN | none / demo | CoinGecko key and plan (`demo` or `pro`) |
| COINMARKETCAP_API_KEY | none | CoinMarketCap key (historical listings need a paid plan); live without it, CMC is skipped |
| ROTATION_MARKET_CAP_TOP_N | 500 | coins per market-cap snapshot (CoinGecko's nightly top N; CMC's monthly listing) |
| ROTATION_CATEGORY_CALLS | 50 | CoinGecko `/coins/{id}` calls per night for new coins' categories (the rest wait) |
| ROTATION_SCHEDULE_CRON | 15 1 * * * | when the nightly schedule ticks (cron, in the timezone below) |
| ROTATION_SCHEDULE_TIMEZONE | UTC | the schedule's timezone (IANA name, e.g. Europe/Berlin) |
| ROTATION_RETRIES | 3 | Dagster re-runs of a failed ingest asset (on top of each request's own retries) |
| ROTATION_RETRY_DELAY_S | 60 | first re-run's delay in seconds; doubles per re-run, jittered |
| ROTATION_CHARTS | 1 | 0: no chart in the assets' materializations (they cost about a second each) |
"""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from pipeline.config_file import ConfigError

PROJECT_ROOT = Path(__file__).resolve().parent.parent


class SettingsError(ConfigError):
    """An environment variable holds a value the pipeline cannot use."""


class Settings(BaseModel):
    model_config = ConfigDict(frozen=True)

    warehouse_path: Path = PROJECT_ROOT / "warehouse" / "rotation.duckdb"
    sources: Literal["replay", "live"] = "replay"
    replay_data: Path | None = None
    # a replay server already running (python -m pipeline.sources.replay): runs use it instead of their own
    replay_url: str | None = None
    replay_cache: Path = PROJECT_ROOT / "warehouse" / "replay"
    exchange: str = "binance"
    perp_exchange: str = "binanceusdm"
    start_date: dt.date = dt.date(2017, 1, 1)
    universe_path: Path = PROJECT_ROOT / "pipeline" / "universe.yaml"
    taxonomy_path: Path = PROJECT_ROOT / "pipeline" / "taxonomy.yaml"
    analytics_path: Path = PROJECT_ROOT / "pipeline" / "analytics.yaml"
    quality_path: Path = PROJECT_ROOT / "pipeline" / "quality.yaml"
    playbook_path: Path = PROJECT_ROOT / "pipeline" / "playbook.yaml"
    portfolio_path: Path = PROJECT_ROOT / "pipeline" / "portfolio.yaml"
    coingecko_api_key: str | None = None
    coingecko_plan: Literal["demo", "pro"] = "demo"
    coinmarketcap_api_key: str | None = None
    market_cap_top_n: int = Field(500, ge=1)
    category_calls_per_night: int = Field(50, ge=0)
    # Partitions are UTC days; 01:15 UTC leaves the sources an hour to publish yesterday's close.
    schedule_cron: str = "15 1 * * *"
    schedule_timezone: str = "UTC"
    retries: int = Field(3, ge=0)
    retry_delay_s: float = Field(60.0, ge=0)
    charts: bool = True  # each asset's chart in its materialization (about a second each)

    @field_validator("schedule_cron")
    @classmethod
    def _cron(cls, value: str) -> str:
        from dagster._utils.schedules import is_valid_cron_string

        if not is_valid_cron_string(value):
            raise ValueError(f"not a cron expression (5 fields, e.g. '15 1 * * *'): {value!r}")
        return value

    @field_validator("schedule_timezone")
    @classmethod
    def _timezone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown timezone {value!r} (an IANA name such as UTC or Europe/Berlin)") from None
        return value

    def check_files(self) -> None:
        """Read and cross-check every configuration file these settings point at: a ConfigError
        names the first mistake before a run starts, instead of a failed run after it has."""
        from pipeline.quality.config import load_quality_config
        from pipeline.strategy.playbook import load_playbook
        from pipeline.strategy.portfolio import load_portfolio
        from pipeline.taxonomy import load_taxonomy
        from pipeline.transforms.config import load_analytics_config
        from pipeline.universe import load_universe

        universe = load_universe(self.universe_path)
        load_taxonomy(self.taxonomy_path)
        load_playbook(self.playbook_path, universe_path=self.universe_path)
        load_analytics_config(self.analytics_path)
        load_quality_config(self.quality_path)
        load_portfolio(self.portfolio_path, universe)

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        mapping = {
            "ROTATION_WAREHOUSE": "warehouse_path",
            "ROTATION_SOURCES": "sources",
            "ROTATION_REPLAY_DATA": "replay_data",
            "ROTATION_REPLAY_URL": "replay_url",
            "ROTATION_EXCHANGE": "exchange",
            "ROTATION_PERP_EXCHANGE": "perp_exchange",
            "ROTATION_START_DATE": "start_date",
            "ROTATION_UNIVERSE": "universe_path",
            "ROTATION_TAXONOMY": "taxonomy_path",
            "ROTATION_ANALYTICS": "analytics_path",
            "ROTATION_QUALITY": "quality_path",
            "ROTATION_PLAYBOOK": "playbook_path",
            "ROTATION_PORTFOLIO": "portfolio_path",
            "COINGECKO_API_KEY": "coingecko_api_key",
            "COINGECKO_API_PLAN": "coingecko_plan",
            "COINMARKETCAP_API_KEY": "coinmarketcap_api_key",
            "ROTATION_MARKET_CAP_TOP_N": "market_cap_top_n",
            "ROTATION_CATEGORY_CALLS": "category_calls_per_night",
            "ROTATION_SCHEDULE_CRON": "schedule_cron",
            "ROTATION_SCHEDULE_TIMEZONE": "schedule_timezone",
            "ROTATION_RETRIES": "retries",
            "ROTATION_RETRY_DELAY_S": "retry_delay_s",
            "ROTATION_CHARTS": "charts",
        }
        values = {field: env[var] for var, field in mapping.items() if env.get(var)}
        try:
            return cls(**values)
        except ValidationError as exc:
            err = exc.errors()[0]
            var = next(v for v, f in mapping.items() if f == err["loc"][0])
            raise SettingsError(f"{var}={env.get(var)!r}: {err['msg']}") from None
