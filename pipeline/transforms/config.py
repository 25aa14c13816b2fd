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
    # Ranked selection (with market caps; without them the fixed list in universe.yaml is used).
    # Top 150 by market cap: about the depth of the sector indices users compare with (CoinDesk's
    # DACS and MarketVector's sector indices draw on the few hundred largest coins), deep enough that
    # a small sector (Gaming, AI) has members in every year of the history.
    top_n: int = Field(150, ge=1)  # a coin enters when its rank (by market cap) is at most this
    exit_rank: int = Field(188, ge=1)  # ... and leaves only beyond this: 1.25 x top_n, a buffer
    # against members flickering in and out at the edge from one snapshot to the next
    # Size buckets (the seeds: core BTC/ETH; mid: established large caps; speculative: the rest).
    # Rank 25: the established large caps of every year of the history (SOL, BNB, XRP, ADA, AVAX,
    # DOT, LINK, ...) sit within it; below it are the small caps the seeds call speculative.
    mid_max_rank: int = Field(25, ge=1)

    @model_validator(mode="after")
    def _buffer(self) -> Membership:
        if self.exit_rank < self.top_n:
            raise ValueError("membership.exit_rank must be at least membership.top_n (it is the buffer's far edge)")
        return self


class SectorIndex(_Section):
    # equal; capped: by 30-day dollar volume; mcap_capped: by market cap (the industry's sector
    # indices' weighting); the two capped ones with no constituent above max_weight
    weightings: tuple[Literal["equal", "capped", "mcap_capped"], ...] = ("equal", "capped", "mcap_capped")
    max_weight: float = Field(0.30, gt=0, le=1)  # capped weightings: one constituent's ceiling
    btc: str = "BTC"  # token names of the BTC and ETH composites
    eth: str = "ETH"
    alts: str = "Alts"  # name of the "alts ex BTC/ETH" composite
    # Never alts for breadth or the alts composite: stablecoins, wrapped and staked BTC/ETH.
    excluded_tokens: tuple[str, ...] = (
        "USDT", "USDC", "DAI", "FDUSD", "TUSD", "USDE", "WBTC", "WETH", "STETH", "WSTETH", "CBBTC", "RETH",
    )


class RelativeStrength(_Section):
    # which index is compared with BTC and drives the recommendations: market-cap weighted, as the
    # index providers' are (without market caps the run falls back to `capped`, volume weighted)
    weighting: Literal["equal", "capped", "mcap_capped"] = "mcap_capped"
    smoothing_days: int = Field(5, ge=1)  # EMA span of the ratio before the RRG
    ratio_window_days: int = Field(60, ge=2)  # rs_ratio = smoothed ratio / its rolling mean
    momentum_lookback_days: int = Field(10, ge=1)  # rs_momentum = rate of change of rs_ratio


class Altseason(_Section):
    window_days: int = Field(90, ge=1)
    top_n: int = Field(50, ge=1)  # the top 50 alts by market cap (Blockchaincenter's definition)
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


def without_market_caps(cfg: AnalyticsConfig) -> AnalyticsConfig:
    """The configuration a run without market caps uses: no market-cap weighting, and the index the
    recommendations read is the volume-capped one where the market-cap one was asked for."""
    index, rs = cfg.sector_index, cfg.relative_strength
    weightings = tuple(w for w in index.weightings if w != "mcap_capped") or ("capped",)
    weighting = "capped" if rs.weighting == "mcap_capped" else rs.weighting
    if weighting not in weightings:
        weightings = (*weightings, weighting)
    return cfg.model_copy(update={
        "sector_index": index.model_copy(update={"weightings": weightings}),
        "relative_strength": rs.model_copy(update={"weighting": weighting}),
    })


def load_analytics_config(path: str | Path | None = None) -> AnalyticsConfig:
    return _load_cached(Path(path or DEFAULT_ANALYTICS).resolve())


@cache
def _load_cached(path: Path) -> AnalyticsConfig:
    return load_model(path, AnalyticsConfig, AnalyticsConfigError, "analytics")
