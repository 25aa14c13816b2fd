"""Moving money between sectors: the day's bucket bands from the phase, and a rotation out of one
sector into another (sold in part now, the rest hedged until it is sold)."""

from __future__ import annotations

from dataclasses import dataclass

from pipeline.strategy.hedges import Perp, hedge
from pipeline.strategy.playbook import BUCKETS, Band, Bucket, Playbook


@dataclass(frozen=True)
class SpotOrder:
    sector: str
    side: str  # buy | sell
    usd: float


@dataclass(frozen=True)
class Rotation:
    spot: tuple[SpotOrder, ...]
    hedge: Perp | None

    def weights_after(self, holdings_usd: dict[str, float]) -> dict[str, float]:
        """Spot weights of `holdings_usd` once the spot orders are filled (the hedge is not spot)."""
        after = dict(holdings_usd)
        for order in self.spot:
            after[order.sector] = after.get(order.sector, 0.0) + (order.usd if order.side == "buy" else -order.usd)
        total = sum(after.values())
        return {sector: usd / total for sector, usd in after.items()}


def bucket_bands(phase: str, playbook: Playbook) -> dict[Bucket, Band]:
    """The bands the day's allocation must hold: those of the phase's posture."""
    posture = playbook.postures[phase]
    return {bucket: posture.band(bucket) for bucket in BUCKETS}


def rotate(
    holdings_usd: dict[str, float], source: str, target: str, share: float, perp: str, playbook: Playbook,
    leverage: float | None = None,
) -> Rotation:
    """Rotate `share` of the portfolio from `source` to `target`: sell `rotation_sell_now` of it and
    buy `target` with the proceeds; hedge what is still to sell with a 1:1 short of `perp`."""
    portfolio = sum(holdings_usd.values())
    amount = portfolio * share
    if amount > holdings_usd.get(source, 0.0) + 1e-9:
        raise ValueError(f"cannot rotate {share:.0%} of the portfolio (${amount:,.0f}) out of {source}: "
                         f"it holds ${holdings_usd.get(source, 0.0):,.0f}")
    sold = amount * playbook.rotation_sell_now
    remaining = amount - sold
    spot = (SpotOrder(source, "sell", sold), SpotOrder(target, "buy", sold))
    return Rotation(spot, hedge(perp, remaining, playbook.hedging, leverage) if remaining > 0 else None)
