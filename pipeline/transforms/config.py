"""Every analytics threshold in one validated place (`pipeline/analytics.yaml` overrides the defaults).

The defaults come from the seeds' description of the crypto cycle, turned into daily-data numbers;
each is a field here so a user can change it without touching the math.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from pipeline.config_file import ConfigError, load_model

DEFAULT_ANALYTICS = Path(__file__).resolve().parent.parent / "analytics.yaml"


class AnalyticsConfigError(ConfigError):
    """The analytics config is malformed; the message names the file and the field."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Membership(_Section):
    """Point-in-time sector membership: who counts in an index on day D, from data up to D."""

    min_history_days: int = Field(30, ge=1)  # days since listing (the symbol's first candle)
    min_dollar_volume_usd: float = Field(1_000_000, ge=0)  # average daily dollar volume over the window
    dollar_volume_window_days: int = Field(30, ge=1)
    stale_after_days: int = Field(3, ge=1)  # no candle for this many days: the token leaves until it trades


class SectorIndex(_Section):
    weightings: tuple[Literal["equal", "capped"], ...] = ("equal", "capped")
    max_weight: float = Field(0.30, gt=0, le=1)  # capped weighting: one constituent's ceiling
    btc: str = "BTC"  # token names of the BTC and ETH composites
    eth: str = "ETH"
    alts: str = "Alts"  # name of the "alts ex BTC/ETH" composite
    # Never alts for breadth or the alts composite: stablecoins, wrapped and staked BTC/ETH.
    excluded_tokens: tuple[str, ...] = (
        "USDT", "USDC", "DAI", "FDUSD", "TUSD", "USDE", "WBTC", "WETH", "STETH", "WSTETH", "CBBTC", "RETH",
    )


class RelativeStrength(_Section):
    weighting: Literal["equal", "capped"] = "capped"  # which index is compared with BTC
    smoothing_days: int = Field(5, ge=1)  # EMA span of the ratio before the RRG
    ratio_window_days: int = Field(60, ge=2)  # rs_ratio = smoothed ratio / its rolling mean
    momentum_lookback_days: int = Field(10, ge=1)  # rs_momentum = rate of change of rs_ratio


class Altseason(_Section):
    window_days: int = Field(90, ge=1)
    alt_season: float = 75.0  # index >= this: alt season
    btc_season: float = 25.0  # index <= this: BTC season
    min_eligible: int = Field(10, ge=1)  # fewer eligible alts: no index that day


class Regime(_Section):
    """Market phase rules (see `market_regime.py`); `_pct` thresholds are percentage points.

    Defaults: the seeds' cycle read on daily data, then checked against the synthetic market's true
    regimes (see the README's confusion matrix); none is fitted to the real history.
    """

    btc_trend_days: int = Field(200, ge=2)  # BTC vs its simple moving average
    btc_momentum_days: int = Field(30, ge=1)
    btc_volatility_days: int = Field(30, ge=2)  # realised volatility window (annualised)
    dominance_trend_days: int = Field(30, ge=1)
    bear_momentum_pct: float = -5.0  # below its trend average and falling this much: bear ...
    funding_negative_apr_pct: float = 0.0  # ... or below its trend while shorts pay funding
    tvl_outflow_30d: float = -0.10  # ... or below its trend while DeFi TVL drains this much (fraction)
    peak_volatility_pct: float = 70.0  # above its trend but this volatile: a choppy top
    alts_outperform_pct: float = 5.0  # alts composite vs BTC over leadership_days: alts winning
    alts_underperform_pct: float = -5.0  # ... or losing
    dominance_rising_pp: float = 2.0  # dominance up this much over its trend window: BTC leads
    breadth_wide: float = 75.0  # altseason index at or above: alts winning whatever the composite says
    platform_sectors: tuple[str, ...] = ("Layer-1", "Layer-2", "Infrastructure")
    narrative_sectors: tuple[str, ...] = ("DeFi", "AI", "Gaming", "Memes")
    leadership_days: Literal[7, 30, 90] = 30  # RS momentum window for alts and sector leadership
    tvl_growth_days: int = Field(30, ge=1)
    funding_hot_apr_pct: float = 30.0  # BTC 7-day funding above: crowded longs (funding_regime = hot)
    confirm_days: int = Field(5, ge=1)  # a new phase must hold this many days in a row
    risk_off_phases: tuple[str, ...] = ("peak_consolidation", "bear")


class AnalyticsConfig(_Section):
    membership: Membership = Membership()
    sector_index: SectorIndex = SectorIndex()
    relative_strength: RelativeStrength = RelativeStrength()
    altseason: Altseason = Altseason()
    regime: Regime = Regime()

    @model_validator(mode="after")
    def _seasons_ordered(self) -> AnalyticsConfig:
        if self.relative_strength.weighting not in self.sector_index.weightings:
            raise ValueError("relative_strength.weighting must be one of sector_index.weightings")
        if self.altseason.btc_season >= self.altseason.alt_season:
            raise ValueError("altseason.btc_season must be below altseason.alt_season")
        if self.regime.alts_underperform_pct >= self.regime.alts_outperform_pct:
            raise ValueError("regime.alts_underperform_pct must be below regime.alts_outperform_pct")
        return self


def load_analytics_config(path: str | Path | None = None) -> AnalyticsConfig:
    return _load_cached(Path(path or DEFAULT_ANALYTICS).resolve())


@cache
def _load_cached(path: Path) -> AnalyticsConfig:
    return load_model(path, AnalyticsConfig, AnalyticsConfigError, "analytics")
