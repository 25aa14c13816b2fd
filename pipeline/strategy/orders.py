"""From the user's portfolio to the day's targets: spot buys and sells per token and perp orders,
at the day's closes.

A sector is traded only when its weight is `drift_tolerance` or more off its target (no churn for
dust). Sells come first; buys are scaled down when sells and cash cannot pay for them, so the
orders never spend money the portfolio does not have. A sector the user holds is bought in the
proportions held; one the user does not hold is bought as its index's largest constituents.
"""

from __future__ import annotations

from dataclasses import dataclass

from pipeline.strategy.hedge_plan import HedgeLine
from pipeline.strategy.playbook import Playbook
from pipeline.strategy.portfolio import Portfolio, PortfolioError

BUY_TOP_CONSTITUENTS = 5  # a sector the user does not hold: its index's 5 largest members, reweighted


@dataclass(frozen=True)
class Order:
    instrument: str  # spot symbol (UNI/USDT) or perp symbol (UNI/USDT:USDT)
    side: str  # buy | sell
    quantity: float
    notional_usd: float
    price: float
    reason: str


@dataclass(frozen=True)
class Holdings:
    """The portfolio valued at the day's closes."""

    value_usd: float
    token_usd: dict[str, float]
    sector_usd: dict[str, float]

    def weight(self, sector: str) -> float:
        return self.sector_usd.get(sector, 0.0) / self.value_usd if self.value_usd > 0 else 0.0


def value(portfolio: Portfolio, closes: dict[str, float], sector_of: dict[str, str], as_of: object) -> Holdings:
    """Each holding at its close; a held token without a close that day is an error, not a zero."""
    missing = sorted(t for t, q in portfolio.holdings.items() if q > 0 and t not in closes)
    if missing:
        raise PortfolioError(f"no close on {as_of} for {', '.join(missing)}: cannot value the portfolio that day")
    token_usd = {t: q * closes[t] for t, q in portfolio.holdings.items() if q > 0}
    sector_usd: dict[str, float] = {}
    for token, usd in token_usd.items():
        sector_usd[sector_of[token]] = sector_usd.get(sector_of[token], 0.0) + usd
    return Holdings(sum(token_usd.values()) + portfolio.cash_usd, token_usd, sector_usd)


def spot_orders(
    portfolio: Portfolio, held: Holdings, targets: dict[str, float], closes: dict[str, float],
    sector_of: dict[str, str], spot_symbol: dict[str, str], constituents: dict[str, list[tuple[str, float]]],
    playbook: Playbook,
) -> list[Order]:
    """Spot orders moving each sector that drifted `drift_tolerance` or more to its target weight.
    `constituents`: sector -> [(token, index weight)], to buy a sector the user does not hold."""
    sells: list[tuple[str, float, str]] = []  # (token, usd, reason)
    buys: list[tuple[str, float, str]] = []
    for sector in sorted(set(targets) | set(held.sector_usd)):
        current, target = held.weight(sector), targets.get(sector, 0.0)
        if abs(target - current) < playbook.drift_tolerance:
            continue
        why = f"{sector} {current:.1%} -> {target:.1%} of ${held.value_usd:,.0f}"
        usd = (target - current) * held.value_usd
        mine = {t: v for t, v in held.token_usd.items() if sector_of[t] == sector}
        if usd < 0:
            sells += [(t, -usd * v / held.sector_usd[sector], why) for t, v in mine.items()]
            continue
        if mine:
            split = {t: v / held.sector_usd[sector] for t, v in mine.items()}
        else:
            top = sorted(((t, w) for t, w in constituents.get(sector, []) if t in closes), key=lambda tw: -tw[1])
            top = top[:BUY_TOP_CONSTITUENTS]
            if not top:
                continue  # nothing of the sector is priced that day: nothing to buy
            total = sum(w for _, w in top)
            split = {t: w / total for t, w in top}
            why += f" (index members {', '.join(split)})"
        buys += [(t, usd * share, why) for t, share in split.items()]
    funds = portfolio.cash_usd + sum(usd for _, usd, _ in sells)
    wanted = sum(usd for _, usd, _ in buys)
    scale = min(1.0, funds / wanted) if wanted > 0 else 1.0
    orders = [Order(spot_symbol[t], "sell", usd / closes[t], usd, closes[t], why) for t, usd, why in sells]
    for token, usd, why in buys:
        if scale < 0.999:
            why += f"; scaled to {scale:.1%}: sells and cash pay for no more"
        orders.append(Order(spot_symbol[token], "buy", usd * scale / closes[token], usd * scale, closes[token], why))
    return orders


def perp_orders(
    portfolio: Portfolio, held: Holdings, hedges: list[HedgeLine], perp_price: dict[str, float], playbook: Playbook,
) -> list[Order]:
    """Perp orders from the open positions to the day's hedge lines (a sell opens or adds to a short),
    priced at the underlying's spot close; an open perp without one is an error."""
    target = {h.instrument: (1 if h.side == "long" else -1) * h.notional_pct / 100 * held.value_usd for h in hedges}
    lines = {h.instrument: h for h in hedges}
    current: dict[str, float] = {}
    for perp in portfolio.perps:
        current[perp.instrument] = current.get(perp.instrument, 0.0) + (1 if perp.side == "long" else -1) * perp.notional_usd
    unpriced = sorted(set(current) - set(perp_price))
    if unpriced:
        raise PortfolioError(f"no close for the underlying of {', '.join(unpriced)}: cannot size the perp orders")
    orders = []
    for instrument in sorted(set(target) | set(current)):
        change = target.get(instrument, 0.0) - current.get(instrument, 0.0)
        if abs(change) < playbook.drift_tolerance * held.value_usd or instrument not in perp_price:
            continue
        line = lines.get(instrument)
        why = (f"{line.strategy}: {line.side} {line.notional_pct:.1f}% at {line.leverage:g}x "
               f"(margin {line.margin_pct:.1f}%)" if line else "no hedge recommended: close it")
        price = perp_price[instrument]
        orders.append(Order(instrument, "buy" if change > 0 else "sell", abs(change) / price, abs(change), price, why))
    return orders
