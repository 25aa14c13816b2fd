"""The marts in, the recommendation tables out: evidence per day from the analytics, the allocation
and hedges of the model portfolio, and the orders that take the user's portfolio there.

A day gets no recommendation when its phase is unknown (warm-up, a missing input); the model
portfolio holds through it. A day whose data failed a blocking quality check never gets here: the
check stops the run before the recommendation assets (see assets/recommendations.py).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json

import polars as pl

from pipeline.strategy.allocation import Allocation, Evidence, Move, SectorSignal, allocate, bucket_total
from pipeline.strategy.hedge_plan import HedgeLine, plan_hedges
from pipeline.strategy.orders import (
    Holdings, LastClose, hedge_margin_usd, held_split, no_market_orders, perp_orders, spot_orders, value,
)
from pipeline.strategy.playbook import PERIOD_DAYS, Playbook
from pipeline.strategy.portfolio import Portfolio

ROTATION_SCHEMA = {
    "as_of": pl.Date, "sector": pl.String, "bucket": pl.String, "posture": pl.String,
    "current_weight": pl.Float64, "target_weight": pl.Float64, "action": pl.String, "score": pl.Int32,
    "rationale": pl.String,
}
HEDGE_SCHEMA = {
    "as_of": pl.Date, "instrument": pl.String, "side": pl.String, "notional_pct": pl.Float64,
    "leverage": pl.Float64, "margin_pct": pl.Float64, "funding_apr": pl.Float64, "funding_30d_pct": pl.Float64,
    "strategy": pl.String, "rationale": pl.String,
}
ORDER_SCHEMA = {
    "as_of": pl.Date, "instrument": pl.String, "side": pl.String, "quantity": pl.Float64,
    "notional_usd": pl.Float64, "price": pl.Float64, "reason": pl.String,
}


def evidence(regime: pl.DataFrame, rs: pl.DataFrame, index: pl.DataFrame) -> list[Evidence]:
    """One Evidence per day that has a phase. `index` is one weighting of
    marts.sector_index; a sector counts on a day when its index has members that day."""
    levels = index.filter(pl.col("n_constituents") > 0).select("sector", "date", "level")
    month_ago = levels.select("sector", pl.col("date") + pl.duration(days=30), level_30d="level")
    sectors = (
        levels.join(month_ago, on=["sector", "date"], how="left")
        .join(rs.select("sector", "date", "quadrant", "rs_mom_30d_pct"), on=["sector", "date"], how="left")
        .with_columns(ret_30d_pct=(pl.col("level") / pl.col("level_30d") - 1) * 100)
        .sort("date", "sector")  # each day's sectors in name order: the allocation's moves follow it
    )
    by_day: dict[dt.date, dict[str, SectorSignal]] = {}
    for row in sectors.iter_rows(named=True):
        by_day.setdefault(row["date"], {})[row["sector"]] = SectorSignal(
            row["quadrant"], row["rs_mom_30d_pct"], row["ret_30d_pct"]
        )
    days = regime.filter(pl.col("phase").is_not_null()).sort("date")
    return [
        Evidence(
            date=r["date"], phase=r["phase"], risk_mode=r["risk_mode"], sectors=by_day.get(r["date"], {}),
            tvl_growth_30d=r["tvl_growth_30d"], btc_trend_pct=r["btc_trend_pct"],
            btc_funding_apr_pct=r["btc_funding_apr_pct"], leading_sector=r["leading_sector"],
        )
        for r in days.iter_rows(named=True)
    ]


def main_perps(tokens: pl.DataFrame, playbook: Playbook, btc: str) -> tuple[dict[str, str], str]:
    """(sector -> the perp of its first token in the universe that has one, BTC's perp)."""
    btc_perp = tokens.filter(pl.col("token") == btc)["perp"].item()
    perps: dict[str, str] = {playbook.core_sector: btc_perp}
    for row in tokens.filter(pl.col("perp").is_not_null()).iter_rows(named=True):
        perps.setdefault(row["sector"], row["perp"])
    return perps, btc_perp


def _pct(value: float | None, fmt: str = "+.1f") -> str:
    return "n/a" if value is None else f"{value:{fmt}}%"


def _rationale(sector: str, ev: Evidence, alloc: Allocation, playbook: Playbook) -> str:
    bucket = playbook.sector_buckets[sector]
    posture = playbook.postures[alloc.posture]
    band = posture.band(bucket)
    parts = [
        f"phase {ev.phase} ({ev.risk_mode}); posture {alloc.posture} since {alloc.posture_since} "
        f"({posture.strategy}); {bucket} band {band.low:.0%}-{band.high:.0%}, "
        f"bucket at {bucket_total(alloc.weights, bucket, playbook):.0%}"
    ]
    signal = ev.sectors.get(sector)
    if signal is None:
        parts.append("no index today")
    elif sector != playbook.core_sector:
        parts.append(f"quadrant {signal.quadrant or 'n/a'}, RS mom 30d {_pct(signal.rs_mom_30d_pct)}, "
                     f"30d return {_pct(signal.ret_30d_pct)}; score {alloc.scores.get(sector, 0):+d} at the tilts of {alloc.tilted_on}")
    tvl = "n/a" if ev.tvl_growth_30d is None else f"{ev.tvl_growth_30d * 100:+.1f}%"
    parts.append(f"DeFi TVL 30d {tvl}, BTC funding {_pct(ev.btc_funding_apr_pct, '.1f')} APR")
    moves = [f"{m.weight:.0%} {m.why}" for m in alloc.moves if sector in (m.source, m.target)]
    if moves:
        parts.append("moves: " + "; ".join(moves))
    parts += alloc.notes.get(sector, []) + alloc.notes.get("*", [])
    return "; ".join(parts)


def _action(current: float | None, target: float) -> str:
    if current is None:
        return "increase" if target > 0 else "hold"
    if target > current + 1e-9:
        return "increase"
    return "decrease" if target < current - 1e-9 else "hold"


@dataclasses.dataclass(frozen=True)
class Model:
    """The model portfolio at the close of a day: its allocation, and the hedges it holds (since
    when, under which posture): where a run resumes."""

    allocation: Allocation
    held: tuple[dt.date, str, list[HedgeLine]] | None

    def to_json(self) -> str:
        a = self.allocation
        return json.dumps({
            "date": a.date.isoformat(), "posture": a.posture, "posture_since": a.posture_since.isoformat(),
            "tilted_on": a.tilted_on.isoformat(), "weights": a.weights, "before_posture": a.before_posture,
            "scores": a.scores, "moves": [dataclasses.astuple(m) for m in a.moves],
            "held": None if self.held is None else
            [self.held[0].isoformat(), self.held[1], [dataclasses.astuple(line) for line in self.held[2]]],
        })

    @classmethod
    def from_json(cls, text: str) -> Model:
        s = json.loads(text)
        day = dt.date.fromisoformat
        allocation = Allocation(
            date=day(s["date"]), posture=s["posture"], posture_since=day(s["posture_since"]), weights=s["weights"],
            previous=None, before_posture=s["before_posture"], scores=s["scores"],
            moves=tuple(Move(*m) for m in s["moves"]), tilted_on=day(s["tilted_on"]))
        held = None if s["held"] is None else (
            day(s["held"][0]), s["held"][1], [HedgeLine(*line) for line in s["held"][2]])
        return cls(allocation, held)


def recommendations(
    regime: pl.DataFrame, rs: pl.DataFrame, index: pl.DataFrame, costs: pl.DataFrame, tokens: pl.DataFrame,
    playbook: Playbook, btc: str = "BTC", after: Model | None = None,
) -> tuple[pl.DataFrame, pl.DataFrame, Model | None]:
    """(marts.rotation_recommendation, marts.hedge_recommendation, the model at the last day) of the
    model portfolio, every day from the first with evidence, or from the day after `after`'s (the
    frames then need only those days, `index` from 30 days before them). `costs` is
    marts.funding_costs of one exchange."""
    days = evidence(regime, rs, index)
    if after is not None:
        days = [ev for ev in days if ev.date > after.allocation.date]
    perps, btc_perp = main_perps(tokens, playbook, btc)
    apr_by_day: dict[dt.date, dict[str, float]] = {}
    for row in costs.drop_nulls("funding_apr_7d_pct").iter_rows(named=True):
        apr_by_day.setdefault(row["date"], {})[row["symbol"]] = row["funding_apr_7d_pct"]
    rotation, hedges = [], []
    held = after.held if after else None
    last = after.allocation if after else None
    horizon = playbook.funding.horizon_days
    for ev, alloc in zip(days, allocate(days, playbook, last), strict=True):
        last = alloc
        for sector in sorted(set(alloc.weights) | set(alloc.previous or {})):
            current = None if alloc.previous is None else alloc.previous.get(sector, 0.0)
            target = alloc.weights.get(sector, 0.0)
            rotation.append((ev.date, sector, playbook.sector_buckets[sector], alloc.posture, current, target,
                             _action(current, target), alloc.scores.get(sector), _rationale(sector, ev, alloc, playbook)))
        fresh = plan_hedges(ev, alloc, playbook, perps, btc_perp, apr_by_day.get(ev.date, {}))
        due = held is None or held[1] != alloc.posture or (ev.date - held[0]).days >= PERIOD_DAYS[playbook.cadence.hedges]
        if due:
            held = (ev.date, alloc.posture, fresh)
        for line in held[2]:
            hedges.append((ev.date, line.instrument, line.side, line.notional_pct, line.leverage, line.margin_pct,
                           line.funding_apr_pct, line.funding_pct(horizon), line.strategy, line.rationale))
    return (pl.DataFrame(rotation, schema=ROTATION_SCHEMA, orient="row"), pl.DataFrame(hedges, schema=HEDGE_SCHEMA, orient="row"),
            Model(last, held) if last else None)


def portfolio_orders(
    as_of: dt.date, portfolio: Portfolio, rotation: pl.DataFrame, hedges: pl.DataFrame, closes: pl.DataFrame,
    weights: pl.DataFrame, tokens: pl.DataFrame, playbook: Playbook,
) -> pl.DataFrame:
    """marts.portfolio_orders of `as_of`: the user's portfolio moved to that day's targets and hedges.

    `closes`: symbol, date, close: each symbol's newest close on or before `as_of` (a holding whose
    newest close is older has no market that day: see `orders`); `weights`: sector, symbol, weight
    of the day's index members. No rotation rows that day (no recommendation): no orders.
    """
    day = rotation.filter(pl.col("as_of") == as_of)
    if day.is_empty():
        return pl.DataFrame(schema=ORDER_SCHEMA)
    by_symbol = dict(zip(tokens["symbol"], tokens["token"], strict=True))
    last = _last_closes(closes, tokens, as_of)
    prices = {t: c.price for t, c in last.items() if c.date == as_of}
    sector_of = dict(zip(tokens["token"], tokens["sector"], strict=True))
    spot_symbol = dict(zip(tokens["token"], tokens["symbol"], strict=True))
    members: dict[str, list[tuple[str, float]]] = {}
    for sector, symbol, weight in weights.select("sector", "symbol", "weight").iter_rows():
        if symbol in by_symbol:
            members.setdefault(sector, []).append((by_symbol[symbol], weight))
    held = value(portfolio.holdings, portfolio.cash_usd, last, sector_of, as_of)
    targets = dict(day.select("sector", "target_weight").iter_rows())
    lines = [
        HedgeLine(r["instrument"], r["side"], r["notional_pct"], r["leverage"], r["funding_apr"], r["strategy"], r["rationale"])
        for r in hedges.filter(pl.col("as_of") == as_of).iter_rows(named=True)
    ]
    perp_price = {p: last[t] for t, p in zip(tokens["token"], tokens["perp"], strict=True) if p and t in last}
    open_perps: dict[str, float] = {}
    for perp in portfolio.perps:
        open_perps[perp.instrument] = open_perps.get(perp.instrument, 0.0) + (1 if perp.side == "long" else -1) * perp.notional_usd
    splits = held_split(held, sector_of, members, prices)
    orders = no_market_orders(portfolio.holdings, held, spot_symbol, as_of)
    orders += spot_orders(held, targets, prices, sector_of, spot_symbol, splits, playbook,
                          margin_usd=hedge_margin_usd(lines, held.value_usd))
    orders += perp_orders(held, open_perps, lines, perp_price, as_of, playbook)
    return pl.DataFrame(
        [(as_of, o.instrument, o.side, o.quantity, o.notional_usd, o.price, o.reason) for o in orders],
        schema=ORDER_SCHEMA, orient="row",
    )


def _last_closes(closes: pl.DataFrame, tokens: pl.DataFrame, as_of: dt.date) -> dict[str, LastClose]:
    """token -> its newest close on or before as_of, from `closes` (symbol, date, close)."""
    by_symbol = dict(zip(tokens["symbol"], tokens["token"], strict=True))
    return {by_symbol[s]: LastClose(d, c) for s, d, c in closes.select("symbol", "date", "close").iter_rows()
            if s in by_symbol and d <= as_of}


def portfolio_value(as_of: dt.date, portfolio: Portfolio, closes: pl.DataFrame, tokens: pl.DataFrame) -> Holdings:
    """The user's spot holdings and cash valued at `closes` as of the day (see `orders.value`)."""
    sector_of = dict(zip(tokens["token"], tokens["sector"], strict=True))
    return value(portfolio.holdings, portfolio.cash_usd, _last_closes(closes, tokens, as_of), sector_of, as_of)
