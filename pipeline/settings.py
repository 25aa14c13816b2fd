"""Run-time settings from environment variables, validated once, with offline-first defaults.

| variable | default | meaning |
|---|---|---|
| ROTATION_WAREHOUSE | warehouse/rotation.duckdb | DuckDB file the pipeline writes |
| ROTATION_SOURCES | replay | `replay` (local server on a dataset folder) or `live` (the real APIs) |
| ROTATION_REPLAY_DATA | (synthetic) | dataset folder to replay; unset = the embedded synthetic market |
| ROTATION_EXCHANGE | binance | ccxt exchange id for spot prices |
| ROTATION_PERP_EXCHANGE | binanceusdm | ccxt exchange id for perp funding |
| ROTATION_START_DATE | 2017-01-01 | first daily partition |
| ROTATION_UNIVERSE | pipeline/universe.yaml | the universe file |
| ROTATION_ANALYTICS | pipeline/analytics.yaml | analytics thresholds (overrides of the defaults) |
| ROTATION_QUALITY | pipeline/quality.yaml | quality-gate thresholds and the block/warn policy |
| COINGECKO_API_KEY / COINGECKO_API_PLAN | none / demo | CoinGecko key and plan (`demo` or `pro`) |
"""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, ValidationError

PROJECT_ROOT = Path(__file__).resolve().parent.parent


class SettingsError(ValueError):
    """An environment variable holds a value the pipeline cannot use."""


class Settings(BaseModel):
    model_config = ConfigDict(frozen=True)

    warehouse_path: Path = PROJECT_ROOT / "warehouse" / "rotation.duckdb"
    sources: Literal["replay", "live"] = "replay"
    replay_data: Path | None = None
    replay_cache: Path = PROJECT_ROOT / "warehouse" / "replay"
    exchange: str = "binance"
    perp_exchange: str = "binanceusdm"
    start_date: dt.date = dt.date(2017, 1, 1)
    universe_path: Path = PROJECT_ROOT / "pipeline" / "universe.yaml"
    analytics_path: Path = PROJECT_ROOT / "pipeline" / "analytics.yaml"
    quality_path: Path = PROJECT_ROOT / "pipeline" / "quality.yaml"
    coingecko_api_key: str | None = None
    coingecko_plan: Literal["demo", "pro"] = "demo"

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        mapping = {
            "ROTATION_WAREHOUSE": "warehouse_path",
            "ROTATION_SOURCES": "sources",
            "ROTATION_REPLAY_DATA": "replay_data",
            "ROTATION_EXCHANGE": "exchange",
            "ROTATION_PERP_EXCHANGE": "perp_exchange",
            "ROTATION_START_DATE": "start_date",
            "ROTATION_UNIVERSE": "universe_path",
            "ROTATION_ANALYTICS": "analytics_path",
            "ROTATION_QUALITY": "quality_path",
            "COINGECKO_API_KEY": "coingecko_api_key",
            "COINGECKO_API_PLAN": "coingecko_plan",
        }
        values = {field: env[var] for var, field in mapping.items() if env.get(var)}
        try:
            return cls(**values)
        except ValidationError as exc:
            err = exc.errors()[0]
            var = next(v for v, f in mapping.items() if f == err["loc"][0])
            raise SettingsError(f"{var}={env.get(var)!r}: {err['msg']}") from None
