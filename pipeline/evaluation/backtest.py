"""Walk-forward backtest: what following a strategy's daily decisions would have made or lost, held
as token quantities and perp positions, traded through the one order engine (`strategy/orders.py`)
that writes the user's orders.

Execution. The decisions of `as_of` D are made from data up to D's close. They trade at the open
of D + 1 + `execution_lag_days` (the nightly runs after midnight UTC) and earn that day's moves from
there. Between trades the holdings drift with prices; a day's decision trades only the sectors that
drifted `drift_tolerance` or more off their targets, and moves a hedge that is that far off its line
(one the decision no longer holds is closed).

Holdings. A traded sector is bought as its index members at the weights of `marts.sector_weights`
on the trade day (known at the close before it); a member that leaves its index is sold at the
trade day's open, or at its last close when it no longer trades (delisted). The hedges' margin
(notional / leverage) stays in cash, so the spot targets apply to the rest.

Costs. Spot and perp fees on every traded notional, slippage on every fill (a buy fills above the
open, a sell below). Perp funding at every settlement recorded in `raw.funding_rates`, on the
notional held at the settlement (quantity x the underlying's open that day): a positive rate is paid
by longs to shorts. The 00:00 settlement of the trade day is paid on the position held overnight,
the later ones on the position after the trade. A held perp with no settlement recorded that day
pays nothing, and that notional is counted as missing. Perps are marked to the underlying's spot
price at the open and the close; a position whose loss since it was last sized exceeds its margin is
liquidated at that close (the whole loss booked, which is what a close-only check can see).

State is path dependent (holdings, cash, margin), so the day loop is plain Python over
dictionaries prepared with Polars; no Dagster, no DuckDB. A book's state at a day's close
(`Book.state`, JSON) lets a later run resume after that day instead of replaying every day before.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from functools import cached_property

import polars as pl

from pipeline.strategy.hedge_plan import HedgeLine
from pipeline.strategy.orders import LastClose, Order, hedge_margin_usd, perp_orders, spot_orders, value
from pipeline.strategy.playbook import Backtest, Playbook

DAILY_SCHEMA = {
    "strategy": pl.String, "date": pl.Date, "equity": pl.Float64, "ret": pl.Float64, "turnover": pl.Float64,
    "fees": pl.Float64, "funding": pl.Float64, "funding_paid": pl.Float64, "funding_received": pl.Float64,
    "hedge_pnl": pl.Float64, "gross_exposure": pl.Float64, "net_exposure": pl.Float64,
    "hedge_notional": pl.Float64, "funding_missing_notional": pl.Float64, "liquidations": pl.Int32,
    "phase": pl.String,
}
TRADE_SCHEMA = {
    "strategy": pl.String, "date": pl.Date, "instrument": pl.String, "side": pl.String, "quantity": pl.Float64,
    "price": pl.Float64, "notional_usd": pl.Float64, "fee_usd": pl.Float64, "reason": pl.String,
}
DUST = 1e-12  # a quantity this small after a full sale is float noise, not a holding


@dataclass(frozen=True)
class Decision:
    """What a strategy wants after a day's close: sector target weights (sum 1) and hedge lines."""

    targets: dict[str, float]
    hedges: tuple[HedgeLine, ...] = ()


@dataclass(frozen=True)
class Strategy:
    """A name, its decisions by as-of day, and how its sectors are made of tokens: `fixed_split`
    (sector -> token -> share) for a fixed basket such as BTC alone, else the index weights of the
    trade day."""

    name: str
    decisions: dict[dt.date, Decision]
    sector_of: dict[str, str]
    fixed_split: dict[str, dict[str, float]] | None = None


class ByDay(Mapping):
    """day -> what `build` makes of that day's rows (`frame` sorted by its `day` column), built when
    the loop asks and the last two kept: the dictionaries of every day at once took 1.7 GB for a
    2,500-token universe (P6), one day's take kilobytes."""

    def __init__(self, frame: pl.DataFrame, build: Callable[[pl.DataFrame], object]):
        runs = frame.group_by("day", maintain_order=True).len()
        starts = runs["len"].cum_sum() - runs["len"]
        self._slices = dict(zip(runs["day"].to_list(), zip(starts.to_list(), runs["len"].to_list())))
        self._rows, self._build = frame.drop("day"), build
        self._built: dict[dt.date, object] = {}

    def __getitem__(self, day: dt.date):
        if day not in self._built:
            start, length = self._slices[day]
            if len(self._built) == 2:
                del self._built[next(iter(self._built))]
            self._built[day] = self._build(self._rows.slice(start, length))
        return self._built[day]

    def __iter__(self) -> Iterator[dt.date]:
        return iter(self._slices)

    def __len__(self) -> int:
        return len(self._slices)


def _prices(column: str) -> Callable[[pl.DataFrame], dict[str, float]]:
    return lambda rows: dict(zip(rows["token"].to_list(), rows[column].to_list()))


def _members(rows: pl.DataFrame) -> dict[str, dict[str, float]]:
    members: dict[str, dict[str, float]] = {}
    for sector, token, weight in rows.iter_rows():
        members.setdefault(sector, {})[token] = weight
    return members


@dataclass
class Market:
    """Prices, index members, funding and phases by day, as dictionaries the day loop reads."""

    days: list[dt.date]
    opens: Mapping[dt.date, dict[str, float]]
    closes: Mapping[dt.date, dict[str, float]]
    members: Mapping[dt.date, dict[str, dict[str, float]]]  # day -> sector -> token -> weight
    funding: Mapping[dt.date, list[tuple[str, bool, float]]]  # day -> (perp, at 00:00, rate)
    phase: dict[dt.date, str]
    spot_symbol: dict[str, str]  # token -> spot symbol
    underlying: dict[str, str]  # perp -> token

    @cached_property
    def token_of(self) -> dict[str, str]:
        """spot symbol -> token (built once: the day loop asks on every rebalance)."""
        return {symbol: token for token, symbol in self.spot_symbol.items()}


def market(
    ohlcv: pl.DataFrame, weights: pl.DataFrame, funding: pl.DataFrame, regime: pl.DataFrame, tokens: pl.DataFrame,
) -> Market:
    """The loop's view of the warehouse: `ohlcv` (symbol, date, open, close) of the spot exchange,
    `weights` (sector, date, symbol, weight) of one weighting, `funding` (symbol, funding_time,
    funding_rate) of the perp exchange, `regime` (date, phase). Rows are put in key order first: sums
    over a day's holdings then run in one order, so a result never depends on how a frame arrived."""
    token_of = dict(zip(tokens["symbol"], tokens["token"], strict=True))

    def by_token(frame: pl.DataFrame) -> pl.DataFrame:
        listed = frame.filter(pl.col("symbol").is_in(list(token_of)))
        return listed.with_columns(token=pl.col("symbol").replace_strict(token_of)).rename({"date": "day"})

    candles = by_token(ohlcv).sort("day", "symbol").select("day", "token", "open", "close")
    members = by_token(weights).sort("day", "sector", "symbol").select("day", "sector", "token", "weight")
    settlements = funding.sort("funding_time", "symbol").select(
        pl.col("funding_time").dt.date().alias("day"), "symbol",
        ((pl.col("funding_time").dt.hour() == 0) & (pl.col("funding_time").dt.minute() == 0)).alias("midnight"),
        "funding_rate")
    perps = tokens.filter(pl.col("perp").is_not_null())
    return Market(
        days=candles["day"].unique(maintain_order=True).to_list(),
        opens=ByDay(candles, _prices("open")), closes=ByDay(candles, _prices("close")),
        members=ByDay(members, _members), funding=ByDay(settlements, lambda rows: list(rows.iter_rows())),
        phase=dict(regime.drop_nulls("phase").select("date", "phase").iter_rows()),
        spot_symbol=dict(zip(tokens["token"], tokens["symbol"], strict=True)),
        underlying=dict(zip(perps["perp"], perps["token"], strict=True)),
    )


@dataclass
class Position:
    """An open perp: signed quantity of the underlying (+ long), the price it is marked at, the
    margin set aside when it was last sized and its P&L since."""

    quantity: float
    mark: float
    margin: float
    pnl_since_sized: float = 0.0


@dataclass
class Day:
    """What one day did, summed as the loop goes."""

    turnover_usd: float = 0.0
    fees: float = 0.0
    funding_paid: float = 0.0
    funding_received: float = 0.0
    hedge_pnl: float = 0.0
    liquidations: int = 0
    trades: list[tuple] = field(default_factory=list)


class Book:
    """One strategy's holdings through time: tokens, cash (margin included), perps."""

    def __init__(self, strategy: Strategy, market: Market, costs: Backtest, playbook: Playbook):
        self.strategy, self.market, self.costs, self.playbook = strategy, market, costs, playbook
        self.cash = costs.initial_capital_usd
        self.tokens: dict[str, float] = {}
        self.perps: dict[str, Position] = {}
        self.last: dict[str, LastClose] = {}  # token -> newest close seen

    def state(self) -> dict:
        """Everything the next day needs, as JSON values (floats round-trip exactly)."""
        return {
            "cash": self.cash, "tokens": dict(self.tokens),
            "perps": {p: [pos.quantity, pos.mark, pos.margin, pos.pnl_since_sized] for p, pos in self.perps.items()},
            "last": {t: [c.date.isoformat(), c.price] for t, c in self.last.items()},
        }

    def restore(self, state: dict) -> None:
        self.cash, self.tokens = state["cash"], dict(state["tokens"])
        self.perps = {p: Position(*values) for p, values in state["perps"].items()}
        self.last = {t: LastClose(dt.date.fromisoformat(day), price) for t, (day, price) in state["last"].items()}

    # -- prices -------------------------------------------------------------------------------
    def spot_value(self) -> float:
        return sum(q * self.last[t].price for t, q in self.tokens.items() if t in self.last)

    def _underlying_price(self, perp: str, prices: dict[str, float]) -> float | None:
        return prices.get(self.market.underlying.get(perp, ""))

    # -- the day ------------------------------------------------------------------------------
    def trade_day(self, day: dt.date, decision: Decision | None) -> Day:
        m, record = self.market, Day()
        opens, closes = m.opens.get(day, {}), m.closes.get(day, {})
        settlements = m.funding.get(day, [])
        self._fund(day, [s for s in settlements if s[1]], opens, record)  # 00:00: the overnight positions
        self._mark(opens, record)
        value_at_open = self.cash + sum(q * (opens[t] if t in opens else self.last[t].price) for t, q in self.tokens.items())
        if self.strategy.fixed_split is None:
            self._sell_leavers(day, opens, record)
        if decision is not None:
            self._rebalance(day, decision, opens, record)
        self._fund(day, [s for s in settlements if not s[1]], opens, record)
        for token, price in closes.items():
            self.last[token] = LastClose(day, price)
        self._mark(closes, record)
        self._liquidate(day, closes, record)
        record.turnover_usd /= max(value_at_open, 1e-9)
        return record

    def _fund(self, day: dt.date, settlements: list[tuple[str, bool, float]], opens: dict[str, float], record: Day) -> None:
        for perp, _, rate in settlements:
            position = self.perps.get(perp)
            price = self._underlying_price(perp, opens) if position else None
            if position is None or price is None:
                continue
            income = -position.quantity * price * rate  # positive rate: longs pay, shorts receive
            self.cash += income
            position.pnl_since_sized += income
            if income >= 0:
                record.funding_received += income
            else:
                record.funding_paid -= income

    def _mark(self, prices: dict[str, float], record: Day) -> None:
        for perp, position in self.perps.items():
            price = self._underlying_price(perp, prices)
            if price is None:
                continue  # the underlying did not trade: the mark stays
            pnl = position.quantity * (price - position.mark)
            self.cash += pnl
            record.hedge_pnl += pnl
            position.pnl_since_sized += pnl
            position.mark = price

    def _sell_leavers(self, day: dt.date, opens: dict[str, float], record: Day) -> None:
        members = self.market.members.get(day, {})
        for token in sorted(self.tokens):
            sector = self.strategy.sector_of[token]
            if token in members.get(sector, {}):
                continue
            price = opens[token] if token in opens else self.last[token].price
            where = "the open" if token in opens else f"its last close of {self.last[token].date}"
            self._fill_spot(day, Order(self.market.spot_symbol[token], "sell", self.tokens[token],
                                       self.tokens[token] * price, price, f"left the {sector} index: sold at {where}"),
                            token, record)

    def _rebalance(self, day: dt.date, decision: Decision, opens: dict[str, float], record: Day) -> None:
        prices = {t: LastClose(day, p) for t, p in opens.items()}
        prices |= {t: self.last[t] for t in self.tokens if t not in opens}
        held = value(self.tokens, self.cash, prices, self.strategy.sector_of, day)
        splits = self.strategy.fixed_split or self.market.members.get(day, {})
        margin = hedge_margin_usd(list(decision.hedges), held.value_usd)
        orders = spot_orders(held, decision.targets, opens, self.strategy.sector_of, self.market.spot_symbol, splits,
                             self.playbook, margin_usd=margin)
        token_of = self.market.token_of
        for order in (o for o in orders if o.side == "sell"):  # sells first: they pay for the buys
            self._fill_spot(day, order, token_of[order.instrument], record)
        buys = [o for o in orders if o.side == "buy"]
        # the engine leaves the margin in cash; the fees and slippage on the buys come out of the rest
        budget = self.cash - margin
        wanted = sum(o.notional_usd for o in buys) * (1 + self.costs.spot_fee_bps / 1e4)
        scale = min(1.0, max(budget, 0.0) / wanted) if wanted > 0 else 1.0
        for order in buys if scale > 0 else []:  # the margin took what the sells freed: nothing to buy with
            self._fill_spot(day, Order(order.instrument, "buy", order.quantity * scale, order.notional_usd * scale,
                                       order.price, order.reason), token_of[order.instrument], record)
        current = {p: pos.quantity * pos.mark for p, pos in self.perps.items()}
        # a perp whose underlying had no close by the decision's day cannot be sized by it (a listing day)
        perp_prices = {p: LastClose(day, opens[t]) for p, t in self.market.underlying.items() if t in opens and t in self.last}
        perp_prices |= {p: LastClose(day - dt.timedelta(days=1), pos.mark) for p, pos in self.perps.items() if p not in perp_prices}
        leverage = {h.instrument: h.leverage for h in decision.hedges}
        for order in perp_orders(held, current, list(decision.hedges), perp_prices, day, self.playbook):
            if order.side != "hold":
                self._fill_perp(day, order, leverage.get(order.instrument, 1.0), record)

    def _liquidate(self, day: dt.date, closes: dict[str, float], record: Day) -> None:
        for perp, position in list(self.perps.items()):
            if position.pnl_since_sized >= -position.margin or perp not in self.market.underlying:
                continue
            price = closes.get(self.market.underlying[perp], position.mark)
            why = f"liquidated: loss ${-position.pnl_since_sized:,.0f} since sized exceeds its margin ${position.margin:,.0f}"
            side = "buy" if position.quantity < 0 else "sell"
            self._fill_perp(day, Order(perp, side, abs(position.quantity), abs(position.quantity) * price, price, why), 1.0, record)
            record.liquidations += 1

    # -- fills --------------------------------------------------------------------------------
    def _slipped(self, side: str, price: float) -> float:
        return price * (1 + self.costs.slippage_bps / 1e4 * (1 if side == "buy" else -1))

    def _fill_spot(self, day: dt.date, order: Order, token: str, record: Day) -> None:
        fill = self._slipped(order.side, order.price)
        fee_rate = self.costs.spot_fee_bps / 1e4
        if order.side == "sell":
            quantity = min(order.quantity, self.tokens.get(token, 0.0))
            proceeds = quantity * fill
            fee = proceeds * fee_rate
            self.cash += proceeds - fee
            left = self.tokens.get(token, 0.0) - quantity
            if left <= DUST * max(quantity, 1.0):
                self.tokens.pop(token, None)
            else:
                self.tokens[token] = left
        else:
            # the engine's notional buys fewer tokens at the slipped fill; the fee comes on top
            spend = order.notional_usd
            quantity = spend / fill
            fee = spend * fee_rate
            self.cash -= spend + fee
            self.tokens[token] = self.tokens.get(token, 0.0) + quantity
            self.last.setdefault(token, LastClose(day, order.price))
        notional = quantity * fill
        record.turnover_usd += notional / 2
        record.fees += fee
        record.trades.append((day, order.instrument, order.side, quantity, fill, notional, fee, order.reason))

    def _fill_perp(self, day: dt.date, order: Order, leverage: float, record: Day) -> None:
        fill = self._slipped(order.side, order.price)
        signed = order.quantity if order.side == "buy" else -order.quantity
        position = self.perps.get(order.instrument)
        if position is not None:
            slip = signed * (position.mark - fill)  # the fill against the mark: slippage is a price loss
            self.cash += slip
            record.hedge_pnl += slip
        quantity = (position.quantity if position else 0.0) + signed
        notional = order.quantity * fill
        fee = notional * self.costs.perp_fee_bps / 1e4
        self.cash -= fee
        record.fees += fee
        record.turnover_usd += notional / 2
        if abs(quantity) * fill <= DUST * max(notional, 1.0):
            self.perps.pop(order.instrument, None)
        else:
            mark = position.mark if position else fill
            self.perps[order.instrument] = Position(quantity, mark, abs(quantity) * mark / leverage)
        record.trades.append((day, order.instrument, order.side, order.quantity, fill, notional, fee, order.reason))


@dataclass(frozen=True)
class Resume:
    """A strategy's book at the close of `day` and its equity then: where a run picks up."""

    day: dt.date
    equity: float
    book: dict


def simulate(
    strategy: Strategy, market: Market, playbook: Playbook, costs: Backtest, resume: Resume | None = None,
) -> tuple[list[tuple], list[tuple], Resume | None]:
    """(daily rows, trade rows, where the next run resumes) of one strategy: from the first day its
    first decision trades, or from the day after `resume`'s (the market then needs only the days
    after it). The resume point is None when the strategy never traded."""
    lag = dt.timedelta(days=1 + costs.execution_lag_days)
    book, daily, trades = Book(strategy, market, costs, playbook), [], []
    if resume is not None:
        book.restore(resume.book)
        start, previous = resume.day + dt.timedelta(days=1), resume.equity
    elif strategy.decisions:
        start, previous = min(strategy.decisions) + lag, costs.initial_capital_usd
    else:
        return [], [], None
    for day in market.days:
        if day < start:
            for token, price in market.closes.get(day, {}).items():
                book.last[token] = LastClose(day, price)
            continue
        record = book.trade_day(day, strategy.decisions.get(day - lag))
        spot = book.spot_value()
        exposure = sum(p.quantity * p.mark for p in book.perps.values())
        hedge_notional = sum(abs(p.quantity * p.mark) for p in book.perps.values())
        funded = {perp for perp, _, _ in market.funding.get(day, [])}
        missing = sum(abs(p.quantity * p.mark) for perp, p in book.perps.items() if perp not in funded)
        equity = book.cash + spot
        daily.append((
            strategy.name, day, equity, equity / previous - 1, record.turnover_usd, record.fees,
            record.funding_received - record.funding_paid, record.funding_paid, record.funding_received,
            record.hedge_pnl, (spot + hedge_notional) / equity, (spot + exposure) / equity, hedge_notional, missing,
            record.liquidations, market.phase.get(day - lag),
        ))
        trades += [(strategy.name, *t) for t in record.trades]
        previous = equity
    last = daily[-1][1] if daily else resume.day if resume else None
    return daily, trades, Resume(last, previous, book.state()) if last else None


def backtest(
    strategies: Iterable[Strategy], market: Market, playbook: Playbook, costs: Backtest | None = None,
    resume: Mapping[str, Resume] | None = None,
) -> tuple[pl.DataFrame, pl.DataFrame, dict[str, Resume]]:
    """(marts.backtest_daily, marts.backtest_trades, strategy -> where the next run resumes) of every
    strategy, each from the day its first decision trades to the market's last day (the same days
    when their first decisions are), or from the day after its `resume` point."""
    costs = costs or playbook.backtest
    daily, trades, books = [], [], {}
    for strategy in strategies:
        d, t, book = simulate(strategy, market, playbook, costs, (resume or {}).get(strategy.name))
        daily += d
        trades += t
        if book is not None:
            books[strategy.name] = book
    daily_frame = pl.DataFrame(daily, schema=DAILY_SCHEMA, orient="row")
    return daily_frame, _one_row_per_key(pl.DataFrame(trades, schema=TRADE_SCHEMA, orient="row")), books


def _one_row_per_key(trades: pl.DataFrame) -> pl.DataFrame:
    """A strategy may trade one instrument on one side twice in a day (a leaver's sale, then a
    liquidation): one row per (strategy, date, instrument, side), at the average price."""
    return (
        trades.group_by("strategy", "date", "instrument", "side", maintain_order=True)
        .agg(pl.col("quantity").sum(), pl.col("notional_usd").sum(), pl.col("fee_usd").sum(),
             pl.col("reason").str.join("; "))
        .with_columns(price=pl.col("notional_usd") / pl.col("quantity"))
        .select(list(TRADE_SCHEMA))
    )
