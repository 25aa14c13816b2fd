"""`python -m pipeline recommend`: the day's phase, allocation, hedges and orders as tables a person
reads, from the published read-only warehouse (no Dagster, no writer's lock).

The allocation and hedges are the nightly run's (marts.rotation_recommendation and
marts.hedge_recommendation). The orders are recomputed here for the portfolio given, so anyone can
ask "what would I do with mine" without re-running the pipeline.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from pipeline.settings import Settings
from pipeline.strategy.playbook import load_playbook
from pipeline.strategy.portfolio import holds_nothing, load_portfolio
from pipeline.strategy.recommend import portfolio_orders
from pipeline.ranked_universe import universe_as_of
from pipeline.universe import load_universe
from warehouse import Warehouse


class BriefError(RuntimeError):
    """Nothing to show: no snapshot, or no recommendation for the day asked."""


@dataclass(frozen=True)
class ModelDay:
    """What the model said on a day: its phase, allocation and hedges, and the index members the
    orders split a sector's trades by."""

    day: dt.date
    newest: dt.date  # the newest recommendation the warehouse holds
    regime: pl.DataFrame
    rotation: pl.DataFrame
    hedges: pl.DataFrame
    weights: pl.DataFrame


def published(settings: Settings) -> Warehouse:
    """The read-only snapshot every reader uses (never the writer's file: a run may hold its lock)."""
    snapshot = Warehouse(settings.warehouse_path).snapshot_path
    if not snapshot.exists():
        raise BriefError(f"no published warehouse at {snapshot}: run `make demo` (or the nightly job) first")
    return Warehouse(snapshot)


def model_day(wh: Warehouse, as_of: dt.date | None, weighting: str) -> ModelDay:
    """The recommendation of `as_of` (default: the newest) from the warehouse's marts."""
    q = wh.query
    newest = q("select max(as_of) as day from marts.rotation_recommendation")["day"][0]
    if newest is None:
        raise BriefError(f"{wh.path} holds no recommendation yet: the marts need ~200 days of history")
    day = as_of or newest
    rotation = q("select * from marts.rotation_recommendation where as_of = ? order by target_weight desc, sector", [day])
    if rotation.is_empty():
        raise BriefError(f"no recommendation for {day} (the newest is {newest}; days without a known phase have none)")
    return ModelDay(
        day=day, newest=newest, rotation=rotation,
        hedges=q("select * from marts.hedge_recommendation where as_of = ? order by instrument", [day]),
        regime=q("select * from marts.market_regime where date = ?", [day]),
        weights=q("select sector, symbol, weight from marts.sector_weights where date = ? and weighting = ? order by sector, symbol",
                  [day, weighting]),
    )


def brief(portfolio_path: Path | None = None, as_of: dt.date | None = None, settings: Settings | None = None) -> str:
    settings = settings or Settings.from_env()
    universe = load_universe(settings.universe_path)  # the user's files first: their errors need no warehouse
    playbook = load_playbook(settings.playbook_path, universe_path=settings.universe_path)
    portfolio_path = portfolio_path or settings.portfolio_path
    portfolio = load_portfolio(portfolio_path, universe)
    wh = published(settings)
    ranked = universe_as_of(wh, as_of, settings, read_only=True)
    model = model_day(wh, as_of, ranked.config.relative_strength.weighting)
    tokens = ranked.tokens
    closes = wh.last_closes(model.day, settings.exchange, tokens["symbol"].to_list())
    orders = portfolio_orders(model.day, portfolio, model.rotation, model.hedges, closes, model.weights, tokens, playbook)
    return render(model.day, model.regime, model.rotation, model.hedges, orders, portfolio_path,
                  holds_nothing=holds_nothing(portfolio))


def _table(frame: pl.DataFrame, empty: str, header: str, line) -> list[str]:
    """A table of the brief, indented: its header and a line per row, or `empty`."""
    return [f"  {empty}"] if frame.is_empty() else [f"  {header}", *(f"  {line(r)}" for r in frame.iter_rows(named=True))]


def _hedge_line(h: dict) -> str:
    apr = "n/a" if h["funding_apr"] is None else f"{h['funding_apr']:.1f}%"
    f30 = "n/a" if h["funding_30d_pct"] is None else f"{h['funding_30d_pct']:+.2f}%"
    return (f"{h['instrument']:<17}{h['side']:<6}{h['notional_pct']:>8.1f}%{h['leverage']:>4g}x"
            f"{h['margin_pct']:>7.1f}%{apr:>10}{f30:>8}  {h['strategy']}")


def _order_line(o: dict) -> str:
    price = "n/a" if o["price"] is None else f"{o['price']:,.6g}"
    return f"{o['instrument']:<17}{o['side']:<6}{o['quantity']:>16,.6g}{price:>12}{o['notional_usd']:>12,.0f}  {o['reason']}"


def render(day: dt.date, regime: pl.DataFrame, rotation: pl.DataFrame, hedges: pl.DataFrame, orders: pl.DataFrame,
           portfolio_path: Path, holds_nothing: bool = False) -> str:
    lines = []
    if regime.height:
        r = regime.row(0, named=True)
        lines.append(f"Recommendation for {day}: phase {r['phase']} ({r['risk_mode']}, {r['days_in_phase']} days), "
                     f"posture {rotation['posture'][0]}")
    lines += ["", "Allocation (model portfolio):",
              f"  {'sector':<16}{'bucket':<13}{'current':>9}{'target':>9}  action"]
    for row in rotation.iter_rows(named=True):
        current = "-" if row["current_weight"] is None else f"{row['current_weight']:.1%}"
        lines.append(f"  {row['sector']:<16}{row['bucket']:<13}{current:>9}{row['target_weight']:>9.1%}  {row['action']}")
    lines += ["", "Hedges (% of the portfolio; funding + = income):"]
    lines += _table(hedges, "none", f"{'instrument':<17}{'side':<6}{'notional':>9}{'lev':>5}{'margin':>8}{'fund APR':>10}"
                    f"{'30d':>8}  strategy", _hedge_line)
    lines += ["", f"Orders for {portfolio_path} at the {day} closes:"]
    lines += [f"  WARNING {reason}" for reason in orders.filter(pl.col("side") == "hold")["reason"]]
    none = ("none: the portfolio holds nothing (no holding above 0, no cash_usd, no perps); put in what you hold"
            if holds_nothing else "none: every sector is within the drift tolerance of its target")
    lines += _table(orders, none,
                    f"{'instrument':<17}{'side':<6}{'quantity':>16}{'price':>12}{'USD':>12}  reason", _order_line)
    lines += ["", "Why (evidence per sector):"]
    lines += [f"  {row['sector']}: {row['rationale']}" for row in rotation.iter_rows(named=True)]
    lines += [f"  {h['instrument']}: {h['rationale']}" for h in hedges.iter_rows(named=True)]
    return "\n".join(lines)
