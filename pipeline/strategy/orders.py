"""The one order engine: from what a portfolio holds to the day's sector targets and hedges, spot
buys and sells per token and perp orders. It writes the user's orders (`marts.portfolio_orders`,
at the day's closes) and every trade of the backtest (at the next day's open), so the two can
never disagree.

A sector is traded only when its weight is `drift_tolerance` or more off its target (no churn for
dust); a traded sector is brought to its target token by token, split as the caller says (the
user's: in the proportions held, or as its index's largest members when not held; the backtest's:
the index weights). The hedges' margin (notional / leverage) is kept in cash: the spot targets
apply to the rest. Sells come first; buys are scaled down when sells and cash (less that margin)
cannot pay for them, so the orders never spend money the portfolio does not have.

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
from pipeline.strategy.portfolio import PortfolioError

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
    """A token's newest price on or before the day: `date` is the day itself when it traded."""

    date: dt.date
    price: float


@dataclass(frozen=True)
class Holdings:
    """Spot holdings valued at the day's prices, plus cash; `no_market`: held tokens that did not
    trade that day, with their last close (None: the exchange has no close of them at all)."""

    value_usd: float
    cash_usd: float
    token_usd: dict[str, float]
    sector_usd: dict[str, float]
    no_market: dict[str, LastClose | None]

    def weight(self, sector: str) -> float:
        return self.sector_usd.get(sector, 0.0) / self.value_usd if self.value_usd > 0 else 0.0

    def tradable(self, token: str) -> bool:
        return token in self.token_usd and token not in self.no_market


def value(
    holdings: dict[str, float], cash_usd: float, prices: dict[str, LastClose], sector_of: dict[str, str], as_of: dt.date,
) -> Holdings:
    """Each holding at its price of `as_of`; one that did not trade that day at its last known close
    (and none at all: at 0), listed in `no_market` so that nothing plans to trade it."""
    token_usd, no_market = {}, {}
    for token, quantity in holdings.items():
        if quantity <= 0:
            continue
        last = prices.get(token)
        if last is None or last.date < as_of:
            no_market[token] = last
        token_usd[token] = quantity * last.price if last is not None else 0.0
    sector_usd: dict[str, float] = {}
    for token, usd in token_usd.items():
        sector_usd[sector_of[token]] = sector_usd.get(sector_of[token], 0.0) + usd
    return Holdings(sum(token_usd.values()) + cash_usd, cash_usd, token_usd, sector_usd, no_market)


def no_market_note(token: str, last: LastClose | None, as_of: dt.date) -> str:
    """What the orders and `recommend` say of a holding that cannot be traded on `as_of`."""
    if last is None:
        return f"{token}: no market: the exchange has no close of it on record; valued at 0, not traded"
    days = (as_of - last.date).days
    return (f"{token}: no market since {last.date} (last close {last.price:,.6g}, {days} days old); "
            f"valued at it and left out of the sells")


def no_market_orders(
    holdings: dict[str, float], held: Holdings, spot_symbol: dict[str, str], as_of: dt.date,
) -> list[Order]:
    """One `hold` line per holding that cannot be traded: what is held and why it stays."""
    return [
        Order(spot_symbol[t], "hold", holdings[t], held.token_usd[t], last.price if last else None,
              no_market_note(t, last, as_of))
        for t, last in sorted(held.no_market.items())
    ]


def held_split(
    held: Holdings, sector_of: dict[str, str], constituents: dict[str, list[tuple[str, float]]], prices: dict[str, float],
) -> dict[str, dict[str, float]]:
    """The user's split of each sector among tokens: the tradable holdings in the proportions held;
    a sector not held: its index's `BUY_TOP_CONSTITUENTS` largest members that trade, reweighted."""
    splits: dict[str, dict[str, float]] = {}
    for token, usd in held.token_usd.items():
        if held.tradable(token) and usd > 0:
            splits.setdefault(sector_of[token], {})[token] = usd
    for sector, members in constituents.items():
        if sector not in splits:
            top = sorted(((t, w) for t, w in members if t in prices), key=lambda tw: (-tw[1], tw[0]))[:BUY_TOP_CONSTITUENTS]
            if top:
                splits[sector] = dict(top)
    return {sector: {t: w / sum(split.values()) for t, w in split.items()} for sector, split in splits.items()}


def spot_orders(
    held: Holdings, targets: dict[str, float], prices: dict[str, float], sector_of: dict[str, str],
    spot_symbol: dict[str, str], splits: dict[str, dict[str, float]], playbook: Playbook, margin_usd: float = 0.0,
) -> list[Order]:
    """Spot orders moving each sector that drifted `drift_tolerance` or more off its target, token by
    token to `splits` (sector -> token -> share, summing to 1). `prices`: the day's price of every
    token that trades that day; `margin_usd`: cash the hedges need, which the spot targets leave
    aside. Holdings without a market that day are neither sold nor bought: their sector trades what
    else it holds."""
    if held.value_usd <= 0:
        return []  # nothing to rebalance
    investable = max(held.value_usd - margin_usd, 0.0)
    sells: list[tuple[str, float, str]] = []  # (token, usd, reason)
    buys: list[tuple[str, float, str]] = []
    for sector in sorted(set(targets) | set(held.sector_usd)):
        current, wanted = held.sector_usd.get(sector, 0.0), targets.get(sector, 0.0) * investable
        if abs(wanted - current) < playbook.drift_tolerance * held.value_usd:
            continue
        why = f"{sector} {current / held.value_usd:.1%} -> {wanted / held.value_usd:.1%} of ${held.value_usd:,.0f}"
        split = {t: w for t, w in splits.get(sector, {}).items() if t in prices}
        mine = {t: v for t, v in held.token_usd.items() if sector_of[t] == sector and held.tradable(t)}
        stuck = current - sum(mine.values())  # what has no market
        if wanted < stuck:
            why += f"; ${stuck - wanted:,.0f} of it has no market"
        if not split and wanted > stuck:
            continue  # nothing of the sector is priced that day: nothing to buy
        tradable_target = max(wanted - stuck, 0.0) / sum(split.values()) if split else 0.0
        if split and not mine:
            why += f" (index members {', '.join(split)})"
        for token in sorted(set(split) | set(mine)):
            change = tradable_target * split.get(token, 0.0) - mine.get(token, 0.0)
            if change < 0:
                sells.append((token, -change, why))
            elif change > 0:
                buys.append((token, change, why))
    funds = max(held.cash_usd + sum(usd for _, usd, _ in sells) - margin_usd, 0.0)
    wanted_usd = sum(usd for _, usd, _ in buys)
    scale = min(1.0, funds / wanted_usd) if wanted_usd > 0 else 1.0
    orders = [Order(spot_symbol[t], "sell", usd / prices[t], usd, prices[t], why) for t, usd, why in sells]
    for token, usd, why in buys:
        if scale < 0.999:
            why += f"; scaled to {scale:.1%}: sells and cash pay for no more"
        if usd * scale > 0:
            orders.append(Order(spot_symbol[token], "buy", usd * scale / prices[token], usd * scale, prices[token], why))
    return orders


def perp_orders(
    held: Holdings, current: dict[str, float], hedges: list[HedgeLine], perp_price: dict[str, LastClose], as_of: dt.date,
    playbook: Playbook,
) -> list[Order]:
    """Perp orders from the open positions (`current`: instrument -> signed notional USD, + long) to
    the day's hedge lines (a sell opens or adds to a short), priced at the underlying's spot price.
    A line changes when it moves `drift_tolerance` of the portfolio or more; a position no line
    asks for is closed. An open perp whose underlying did not trade that day gets a `hold` line;
    one whose underlying was never priced is an error (nothing can size it)."""
    target = {h.instrument: (1 if h.side == "long" else -1) * h.notional_pct / 100 * held.value_usd for h in hedges}
    lines = {h.instrument: h for h in hedges}
    current = {i: n for i, n in current.items() if n != 0}
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
        closing = target.get(instrument, 0.0) == 0 and instrument in current
        if change == 0 or (abs(change) < playbook.drift_tolerance * held.value_usd and not closing):
            continue
        line = lines.get(instrument)
        why = (f"{line.strategy}: {line.side} {line.notional_pct:.1f}% at {line.leverage:g}x "
               f"(margin {line.margin_pct:.1f}%)" if line and line.notional_pct else "no hedge recommended: close it")
        orders.append(Order(instrument, "buy" if change > 0 else "sell", abs(change) / last.price, abs(change), last.price, why))
    return orders


def hedge_margin_usd(hedges: list[HedgeLine], value_usd: float) -> float:
    """Cash the day's hedges tie up as margin."""
    return sum(h.margin_pct for h in hedges) / 100 * value_usd
