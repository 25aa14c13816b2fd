"""The seeds' playbook as numbers: risk buckets, each phase's posture and hedge, hedge sizing and
the funding limits. Every number is a field (`pipeline/playbook.yaml` overrides the defaults).

Weights and hedge sizes are fractions of the portfolio (0.10 = 10%); funding limits are APRs in
percentage points, as `marts.funding_costs` gives them.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from pipeline.config_file import ConfigError, load_model
from pipeline.universe import load_universe

DEFAULT_PLAYBOOK = Path(__file__).resolve().parent.parent / "playbook.yaml"
Bucket = Literal["core", "mid", "speculative"]
# No position of the playbook runs above 5x, whatever the config says: the articles' tactical longs
# top out there, and the quality suite of marts.hedge_recommendation holds it.
LEVERAGE_CEILING = 5.0
BUCKETS: tuple[Bucket, ...] = ("core", "mid", "speculative")


class PlaybookError(ConfigError):
    """The playbook config is malformed; the message names the file and the field."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Band(_Section):
    """A bucket's allowed range and the weight it is steered to."""

    low: float = Field(ge=0, le=1)
    target: float = Field(ge=0, le=1)
    high: float = Field(ge=0, le=1)

    @model_validator(mode="after")
    def _ordered(self) -> Band:
        if not self.low <= self.target <= self.high:
            raise ValueError(f"need low <= target <= high, got {self.low} / {self.target} / {self.high}")
        return self


class Posture(_Section):
    """One phase of the playbook: bucket bands and the BTC-perp short it holds."""

    core: Band
    mid: Band
    speculative: Band
    btc_short: float = Field(0.0, ge=0, le=1)  # short BTC perps, notional as a fraction of the portfolio
    btc_short_max: float | None = Field(None, ge=0, le=1)  # upper end where the seeds give a range
    strategy: str  # the playbook's name for it, shown with each recommendation
    favour: dict[str, int] = {}  # sector -> score added in this phase (altcoin surge: Layer-1 +1)

    def band(self, bucket: Bucket) -> Band:
        return getattr(self, bucket)

    @model_validator(mode="after")
    def _feasible(self) -> Posture:
        bands = [self.core, self.mid, self.speculative]
        if abs(sum(b.target for b in bands) - 1) > 1e-9:
            raise ValueError(f"bucket targets must sum to 1, got {sum(b.target for b in bands):.4f}")
        if self.btc_short_max is not None and self.btc_short_max < self.btc_short:
            raise ValueError("btc_short_max must be at least btc_short")
        return self


def _band(low: float, target: float, high: float) -> Band:
    return Band(low=low, target=target, high=high)


class Hedging(_Section):
    """Sizing of hedges and tactical longs."""

    sector_hedge: float = Field(0.175, gt=0, le=1)  # a sector's hedge: 15-20% of its spot notional
    sector_hedge_min: float = Field(0.15, gt=0, le=1)
    sector_hedge_max: float = Field(0.20, gt=0, le=1)
    exit_hedge: float = Field(0.30, ge=0, le=1)  # peak: short the exited sector's perp for 30% of what was sold
    leverage: float = Field(1.0, ge=1)  # hedges at 1x unless set
    max_leverage: float = Field(3.0, ge=1, le=LEVERAGE_CEILING)  # never above, for hedges
    tactical_long_max: float = Field(0.05, ge=0, le=1)  # of the portfolio
    tactical_leverage_min: float = Field(3.0, ge=1)
    tactical_leverage_max: float = Field(5.0, ge=1, le=LEVERAGE_CEILING)
    # A tactical long of the leading sector's perp in a risk-on surge or rotation (0 turns them off)
    tactical_long: float = Field(0.05, ge=0, le=1)
    # Bear: the BTC short is btc_short_max while BTC is at or below this % from its 200-day average (the
    # evidence a bear reading rests on), btc_short while the posture is held over a BTC back above it.
    # Was -30 (issue 23): the top of the range then came after most of 2022's fall (README, Resilience).
    bear_deep_trend_pct: float = 0.0

    @model_validator(mode="after")
    def _ordered(self) -> Hedging:
        if not self.sector_hedge_min <= self.sector_hedge <= self.sector_hedge_max:
            raise ValueError("need sector_hedge_min <= sector_hedge <= sector_hedge_max")
        if self.leverage > self.max_leverage:
            raise ValueError(f"hedge leverage {self.leverage} is above max_leverage {self.max_leverage}")
        if self.tactical_leverage_min > self.tactical_leverage_max:
            raise ValueError("need tactical_leverage_min <= tactical_leverage_max")
        if self.tactical_long > self.tactical_long_max:
            raise ValueError(f"tactical_long {self.tactical_long} is above tactical_long_max {self.tactical_long_max}")
        return self


class Funding(_Section):
    """When a funding rate is too expensive to carry (APR, percentage points)."""

    horizon_days: int = Field(30, ge=1)  # expected funding is shown over this many days
    excessive_apr_pct: float = Field(30.0, gt=0)  # longs paying more: cut tactical longs
    hedge_cut: float = Field(0.5, gt=0, le=1)  # a hedge that would pay more keeps this share of its size


Every = Literal["monthly", "weekly", "daily"]
PERIOD_DAYS: dict[str, int] = {"monthly": 30, "weekly": 7, "daily": 1}


class Cadence(_Section):
    """How often each layer may change: at most once per period (monthly = 30 days). Between those
    days the layer holds (no churn); a 300% profit-take does not wait."""

    posture: Every = "monthly"
    tilts: Every = "weekly"
    hedges: Every = "daily"


class Preferences(_Section):
    """Score added to sectors (one point = one 5 pp step toward them) by the day's risk mode."""

    quadrant_score: dict[str, int] = {"leading": 1, "improving": 1, "weakening": -1, "lagging": -1}
    risk_off: dict[str, int] = {"Infrastructure": 1, "DeFi": -1}  # risk-off: Infrastructure over DeFi
    risk_on_rising_tvl: dict[str, int] = {"DeFi": 1, "Infrastructure": -1}  # risk-on and DeFi TVL up over 30 days


class Backtest(_Section):
    """How the backtest trades (pipeline/evaluation/backtest.py): costs near the big exchanges'
    published taker fees, and when a decision trades."""

    spot_fee_bps: float = Field(10.0, ge=0)  # spot taker fee, basis points of the traded notional
    perp_fee_bps: float = Field(5.0, ge=0)  # perp taker fee
    slippage_bps: float = Field(5.0, ge=0)  # each fill this far from the open, against the trade
    execution_lag_days: int = Field(0, ge=0)  # extra whole days before a decision trades (0: the next open)
    initial_capital_usd: float = Field(100_000.0, gt=0)

    def with_fees_x(self, factor: float) -> Backtest:
        """Every cost (fees and slippage) times `factor`: the sensitivity to costs."""
        return self.model_copy(update={k: getattr(self, k) * factor for k in ("spot_fee_bps", "perp_fee_bps", "slippage_bps")})


class Playbook(_Section):
    sector_buckets: dict[str, Bucket] = {
        "Core": "core", "Layer-1": "mid", "Layer-2": "mid", "DeFi": "mid", "Infrastructure": "mid",
        "AI": "speculative", "Gaming": "speculative", "Memes": "speculative",
    }
    step: float = Field(0.05, gt=0, le=1)  # rotation moves in steps of 5 percentage points
    # A rotation out of a sector sells this share now and hedges the rest 1:1 with the sector's perp
    # until it is sold (the articles' $100,000 example: of $20,000, $15,000 sold, $5,000 hedged).
    profit_take_30d_pct: float = Field(300.0, gt=0)  # a sector up this much in 30 days trims its gains
    # The user's portfolio is rebalanced toward a sector's target only when it is this far off it
    drift_tolerance: float = Field(0.025, ge=0, le=1)
    preferences: Preferences = Preferences()
    postures: dict[str, Posture] = {
        "neutral": Posture(core=_band(0.50, 0.55, 0.60), mid=_band(0.25, 0.30, 0.35),
                           speculative=_band(0.10, 0.15, 0.15), strategy="neutral buckets"),
        "btc_dominance": Posture(core=_band(0.60, 0.65, 0.70), mid=_band(0.20, 0.25, 0.30),
                                 speculative=_band(0.05, 0.10, 0.10), strategy="core-heavy"),
        # The neutral targets, and Layer-1 favoured by one point: the step it takes comes from core
        # (BTC/ETH) unless a weak sector gives it, and a lagging Layer-1 cancels it.
        "altcoin_surge": Posture(core=_band(0.45, 0.55, 0.60), mid=_band(0.25, 0.30, 0.40),
                                 speculative=_band(0.10, 0.15, 0.15), strategy="5% from BTC to Layer-1s",
                                 favour={"Layer-1": 1}),
        "narrative_rotation": Posture(core=_band(0.30, 0.30, 0.35), mid=_band(0.45, 0.50, 0.50),
                                      speculative=_band(0.15, 0.20, 0.20), btc_short=0.10,
                                      strategy="long beta, hedge major"),
        "peak_consolidation": Posture(core=_band(0.55, 0.60, 0.65), mid=_band(0.25, 0.30, 0.35),
                                      speculative=_band(0.05, 0.10, 0.10),
                                      strategy="take profits into BTC/ETH, hedge the exited sector"),
        "bear": Posture(core=_band(0.70, 0.70, 0.80), mid=_band(0.15, 0.25, 0.25),
                        speculative=_band(0.0, 0.05, 0.05), btc_short=0.30, btc_short_max=0.50,
                        strategy="core 70%, alts cut, short BTC"),
    }
    hedging: Hedging = Hedging()
    funding: Funding = Funding()
    cadence: Cadence = Cadence()
    backtest: Backtest = Backtest()

    @model_validator(mode="after")
    def _complete(self) -> Playbook:
        from pipeline.transforms.market_regime import PHASES

        missing = [p for p in PHASES if p not in self.postures]
        if missing:
            raise ValueError(f"postures lacks the phase(s) {missing}")
        if list(self.sector_buckets.values()).count("core") != 1:
            raise ValueError("sector_buckets needs exactly one core sector (BTC/ETH)")
        prefs = self.preferences
        named = {f"postures.{phase}.favour": p.favour for phase, p in self.postures.items()}
        named |= {"preferences.risk_off": prefs.risk_off, "preferences.risk_on_rising_tvl": prefs.risk_on_rising_tvl}
        for where, sectors in named.items():
            unknown = set(sectors) - set(self.sector_buckets)
            if unknown:
                raise ValueError(f"{where} names unknown sector(s) {sorted(unknown)}")
        return self

    @property
    def core_sector(self) -> str:
        return next(s for s, b in self.sector_buckets.items() if b == "core")

    def sectors(self, bucket: Bucket) -> list[str]:
        return [s for s, b in self.sector_buckets.items() if b == bucket]


def load_playbook(path: str | Path | None = None, universe_path: str | Path | None = None) -> Playbook:
    """The playbook at `path` (default: the shipped one); with `universe_path`, checked to give every
    sector of that universe a bucket (a sector without one would silently get no allocation)."""
    path = Path(path or DEFAULT_PLAYBOOK)
    playbook = _load_cached(path.resolve())
    if universe_path is not None:
        unbucketed = [s for s in load_universe(universe_path).sectors if s not in playbook.sector_buckets]
        if unbucketed:
            raise PlaybookError(
                f"{universe_path}: sectors: {unbucketed} have no bucket in the playbook's sector_buckets ({path}), "
                f"so they would get no allocation: add them there (core, mid or speculative; a sector_buckets "
                f"in the playbook replaces the whole default list, so list every sector) or drop them from the universe")
    return playbook


@cache
def _load_cached(path: Path) -> Playbook:
    return load_model(path, Playbook, PlaybookError, "playbook")
