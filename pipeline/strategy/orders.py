"""From the user's portfolio to the day's targets: spot buys and sells per token and perp orders,
at the day's closes.

A sector is traded only when its weight is `drift_tolerance` or more off its target (no churn for
dust). Sells come first; buys are scaled down when sells and cash cannot pay for them, so the
orders never spend money the portfolio does not have. A sector the user holds is bought in the
proportions held; one the user does not hold is bought as its index's largest constituents.

A holding with no close on the day (delisted, halted, renamed, or never listed by the exchange) is
valued at its last known close and never traded at a price that does not exist: it gets a `hold`
line saying since when it has had no market, and the rest of the portfolio is rebalanced with what
can be traded.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from pipeline.strategy.hedge_plan import HedgeLine
from pipeline.strategy.playbook import Playbook
from pipeline.strategy.portfolio import Portfolio, PortfolioError

BUY_TOP_CONSTITUENTS = 5  # a sector the user does not hold: its index's 5 largest members, reweighted


@dataclass(frozen=True)
class Order:
    instrument: str  # spot symbol (UNI/USDT) or perp symbol (UNI/USDT:USDT)
    side: str  # buy | sell | hold (a holding with no market that day: kept, not traded)
    quantity: float
    notional_usd: float
    price: float | None  # None: a holding the exchange never priced
    reason: str


@dataclass(frozen=True)
class LastClose:
    """A token's newest close on or before the day: `date` is the day itself when it traded."""

    date: dt.date
    price: float


@dataclass(frozen=True)
class Holdings:
    """The portfolio valued at the day's closes; `no_market`: held tokens that did not trade that
    day, with their last close (None: the exchange has no close of them at all)."""

    value_usd: float
    token_usd: dict[str, float]
    sector_usd: dict[str, float]
    no_market: dict[str, LastClose | None]

    def weight(self, sector: str) -> float:
        return self.sector_usd.get(sector, 0.0) / self.value_usd if self.value_usd > 0 else 0.0

    def tradable(self, token: str) -> bool:
        return token in self.token_usd and token not in self.no_market


def value(portfolio: Portfolio, closes: dict[str, LastClose], sector_of: dict[str, str], as_of: dt.date) -> Holdings:
    """Each holding at its close of `as_of`; one that did not trade that day at its last known close
    (and none at all: at 0), listed in `no_market` so that nothing plans to trade it."""
    token_usd, no_market = {}, {}
    for token, quantity in portfolio.holdings.items():
        if quantity <= 0:
            continue
        last = closes.get(token)
        if last is None or last.date < as_of:
            no_market[token] = last
        token_usd[token] = quantity * last.price if last is not None else 0.0
    sector_usd: dict[str, float] = {}
    for token, usd in token_usd.items():
        sector_usd[sector_of[token]] = sector_usd.get(sector_of[token], 0.0) + usd
    return Holdings(sum(token_usd.values()) + portfolio.cash_usd, token_usd, sector_usd, no_market)


def no_market_note(token: str, last: LastClose | None, as_of: dt.date) -> str:
    """What the orders and `recommend` say of a holding that cannot be traded on `as_of`."""
    if last is None:
        return f"{token}: no market: the exchange has no close of it on record; valued at 0, not traded"
    days = (as_of - last.date).days
    return (f"{token}: no market since {last.date} (last close {last.price:,.6g}, {days} days old); "
            f"valued at it and left out of the sells")


def no_market_orders(
    portfolio: Portfolio, held: Holdings, spot_symbol: dict[str, str], as_of: dt.date,
) -> list[Order]:
    """One `hold` line per holding that cannot be traded: what is held and why it stays."""
    return [
        Order(spot_symbol[t], "hold", portfolio.holdings[t], held.token_usd[t], last.price if last else None,
              no_market_note(t, last, as_of))
        for t, last in sorted(held.no_market.items())
    ]


def spot_orders(
    portfolio: Portfolio, held: Holdings, targets: dict[str, float], prices: dict[str, float],
    sector_of: dict[str, str], spot_symbol: dict[str, str], constituents: dict[str, list[tuple[str, float]]],
    playbook: Playbook,
) -> list[Order]:
    """Spot orders moving each sector that drifted `drift_tolerance` or more to its target weight.
    `prices`: the day's close of every token that traded that day; `constituents`: sector ->
    [(token, index weight)], to buy a sector the user does not hold. Holdings without a market
    that day are neither sold nor bought: their sector trades what else it holds."""
    if held.value_usd <= 0:
        return []  # nothing to rebalance
    sells: list[tuple[str, float, str]] = []  # (token, usd, reason)
    buys: list[tuple[str, float, str]] = []
    for sector in sorted(set(targets) | set(held.sector_usd)):
        current, target = held.weight(sector), targets.get(sector, 0.0)
        if abs(target - current) < playbook.drift_tolerance:
            continue
        why = f"{sector} {current:.1%} -> {target:.1%} of ${held.value_usd:,.0f}"
        usd = (target - current) * held.value_usd
        mine = {t: v for t, v in held.token_usd.items() if sector_of[t] == sector and held.tradable(t)}
        if usd < 0:
            sellable = sum(mine.values())
            if sellable < -usd:
                why += f"; ${-usd - sellable:,.0f} of it has no market"
            sells += [(t, min(-usd, sellable) * v / sellable, why) for t, v in mine.items() if v > 0]
            continue
        if mine:
            split = {t: v / sum(mine.values()) for t, v in mine.items()}
        else:
            top = sorted(((t, w) for t, w in constituents.get(sector, []) if t in prices), key=lambda tw: -tw[1])
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
    orders = [Order(spot_symbol[t], "sell", usd / prices[t], usd, prices[t], why) for t, usd, why in sells]
    for token, usd, why in buys:
        if scale < 0.999:
            why += f"; scaled to {scale:.1%}: sells and cash pay for no more"
        orders.append(Order(spot_symbol[token], "buy", usd * scale / prices[token], usd * scale, prices[token], why))
    return orders


def perp_orders(
    portfolio: Portfolio, held: Holdings, hedges: list[HedgeLine], perp_price: dict[str, LastClose], as_of: dt.date,
    playbook: Playbook,
) -> list[Order]:
    """Perp orders from the open positions to the day's hedge lines (a sell opens or adds to a short),
    priced at the underlying's spot close. An open perp whose underlying did not trade that day gets a
    `hold` line; one whose underlying was never priced is an error (nothing can size it)."""
    target = {h.instrument: (1 if h.side == "long" else -1) * h.notional_pct / 100 * held.value_usd for h in hedges}
    lines = {h.instrument: h for h in hedges}
    current: dict[str, float] = {}
    for perp in portfolio.perps:
        current[perp.instrument] = current.get(perp.instrument, 0.0) + (1 if perp.side == "long" else -1) * perp.notional_usd
    unpriced = sorted(set(current) - set(perp_price))
    if unpriced:
        raise PortfolioError(f"no close on record for the underlying of {', '.join(unpriced)}: cannot size the perp orders")
    orders = []
    for instrument in sorted(set(target) | set(current)):
        last = perp_price.get(instrument)
        if last is None:
            continue  # a recommended hedge on a perp with no price (cannot happen for the model's own)
        if last.date < as_of:
            if instrument in current:
                orders.append(Order(instrument, "hold", abs(current[instrument]) / last.price, abs(current[instrument]),
                                    last.price, no_market_note(instrument, last, as_of).replace("left out of the sells",
                                                                                               "not traded")))
            continue
        change = target.get(instrument, 0.0) - current.get(instrument, 0.0)
        if change == 0 or abs(change) < playbook.drift_tolerance * held.value_usd:
            continue  # (an empty portfolio has nothing to hedge)
        line = lines.get(instrument)
        why = (f"{line.strategy}: {line.side} {line.notional_pct:.1f}% at {line.leverage:g}x "
               f"(margin {line.margin_pct:.1f}%)" if line else "no hedge recommended: close it")
        orders.append(Order(instrument, "buy" if change > 0 else "sell", abs(change) / last.price, abs(change), last.price, why))
    return orders
