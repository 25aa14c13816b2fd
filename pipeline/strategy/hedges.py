"""Perp hedges: size, margin, profit and funding, with the two conventions spelled out.

- Notional is the position's size; margin is what it ties up: margin = notional / leverage. A
  $5,000 hedge at 5x is $5,000 of notional on $1,000 of margin, not a $25,000 position.
- A positive funding rate is paid by longs and received by shorts. A short hedge therefore earns
  funding while the rate is positive and pays it while it is negative.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from pipeline.strategy.playbook import Hedging

Side = Literal["long", "short"]


class LeverageError(ValueError):
    """A position asked for more leverage than the playbook allows."""


@dataclass(frozen=True)
class Perp:
    instrument: str
    side: Side
    notional_usd: float
    leverage: float

    @property
    def margin_usd(self) -> float:
        return self.notional_usd / self.leverage

    def pnl_usd(self, price_move: float) -> float:
        """Profit of the position when its price moves by `price_move` (-0.10 = falls 10%)."""
        sign = 1.0 if self.side == "long" else -1.0
        return sign * self.notional_usd * price_move

    def funding_usd(self, apr_pct: float, days: float) -> float:
        """Funding received (+) or paid (-) over `days` at an annualised rate (positive: longs pay)."""
        paid_by_longs = self.notional_usd * apr_pct / 100 * days / 365
        return -paid_by_longs if self.side == "long" else paid_by_longs


def hedge(instrument: str, notional_usd: float, rules: Hedging, leverage: float | None = None) -> Perp:
    """A short hedge at the playbook's leverage (or `leverage`), refused above its cap."""
    lev = rules.leverage if leverage is None else leverage
    if lev > rules.max_leverage:
        raise LeverageError(f"{instrument}: hedge leverage {lev}x is above the playbook's {rules.max_leverage}x cap")
    return Perp(instrument, "short", notional_usd, lev)


def sector_hedge(spot_usd: float, rules: Hedging, instrument: str = "BTC/USDT:USDT",
                 fraction: float | None = None, leverage: float | None = None) -> Perp:
    """The hedge of a sector's spot: `sector_hedge` (15-20%) of its notional, short."""
    share = rules.sector_hedge if fraction is None else fraction
    if not rules.sector_hedge_min <= share <= rules.sector_hedge_max:
        raise ValueError(f"a sector hedge is {rules.sector_hedge_min:.0%}-{rules.sector_hedge_max:.0%} of the spot, "
                         f"got {share:.0%}")
    return hedge(instrument, spot_usd * share, rules, leverage)


def tactical_long(instrument: str, portfolio_usd: float, share: float, leverage: float, rules: Hedging) -> Perp:
    """A tactical long: at most `tactical_long_max` of the portfolio, at 3-5x."""
    if share > rules.tactical_long_max:
        raise ValueError(f"a tactical long is at most {rules.tactical_long_max:.0%} of the portfolio, got {share:.0%}")
    if not rules.tactical_leverage_min <= leverage <= rules.tactical_leverage_max:
        raise LeverageError(f"a tactical long runs at {rules.tactical_leverage_min:g}-{rules.tactical_leverage_max:g}x, "
                            f"got {leverage:g}x")
    return Perp(instrument, "long", portfolio_usd * share, leverage)
