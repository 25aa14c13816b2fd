"""`python -m pipeline backtest`: the strategy table (and the return of each calendar year) from
the published read-only warehouse, as a person reads it. With `--execution-lag` or `--fees-x` the
backtest is re-run here on the snapshot's tables; `--from`/`--to` measure a window of the days."""

from __future__ import annotations

import datetime as dt

import polars as pl

from pipeline.evaluation.metrics import summary, yearly_returns
from pipeline.evaluation.run import evaluate
from pipeline.evaluation.strategies import DESCRIPTIONS, NAMES
from pipeline.settings import Settings
from pipeline.strategy.playbook import Backtest, load_playbook
from pipeline.ranked_universe import universe_as_of
from warehouse import Warehouse


class ScorecardError(RuntimeError):
    """Nothing to show: no snapshot, no backtest in it, or no day in the window asked."""


def scorecard(
    first: dt.date | None = None, last: dt.date | None = None, execution_lag_days: int | None = None,
    fees_x: float | None = None, settings: Settings | None = None,
) -> str:
    settings = settings or Settings.from_env()
    snapshot = Warehouse(settings.warehouse_path).snapshot_path
    if not snapshot.exists():
        raise ScorecardError(f"no published warehouse at {snapshot}: run `make demo` (or the nightly job) first")
    playbook = load_playbook(settings.playbook_path)
    costs = playbook.backtest
    if execution_lag_days is not None:
        costs = costs.model_copy(update={"execution_lag_days": execution_lag_days})
    if fees_x is not None:
        costs = costs.with_fees_x(fees_x)
    wh = Warehouse(snapshot)
    if costs == playbook.backtest:
        daily = wh.query("select * from marts.backtest_daily order by strategy, date")
    else:
        daily = _rerun(wh, settings, playbook, costs)
    if daily.is_empty():
        raise ScorecardError(f"{snapshot} holds no backtest yet: it needs the recommendations (~200 days of history)")
    window = daily.filter(pl.col("date").is_between(first or dt.date.min, last or dt.date.max))
    if window.is_empty():
        raise ScorecardError(f"no backtest day in {first or '...'} .. {last or '...'} (it covers "
                             f"{daily['date'].min()} .. {daily['date'].max()})")
    ranked = universe_as_of(wh, None, settings, read_only=True)
    survivors = wh.query("select * from marts.backtest_survivorship")
    return render(summary(window), yearly_returns(window), costs, ranked.fallback) + "\n\n" + survivorship_table(survivors)


def _rerun(wh: Warehouse, settings: Settings, playbook, costs: Backtest) -> pl.DataFrame:
    ranked = universe_as_of(wh, None, settings, read_only=True)
    weighting = ranked.config.relative_strength.weighting
    q = wh.query
    daily, _, _, _ = evaluate(
        rotation=q("select * from marts.rotation_recommendation"), hedges=q("select * from marts.hedge_recommendation"),
        ohlcv=q("select * from raw.ohlcv_1d where exchange = ? order by symbol, date", [settings.exchange]),
        weights=q("select * from marts.sector_weights where weighting = ?", [weighting]),
        funding=q("select * from raw.funding_rates where exchange = ?", [settings.perp_exchange]),
        regime=q("select * from marts.market_regime"), tokens=ranked.tokens,
        playbook=playbook, costs=costs,
    )
    return daily


def _pct(value: float | None, width: int = 8) -> str:
    return f"{'n/a':>{width}}" if value is None else f"{value:>{width}.1%}"


def _ratio(value: float | None, width: int) -> str:
    return f"{'n/a':>{width}}" if value is None else f"{value:>{width}.2f}"


def _fall(peak: dt.date | None, trough: dt.date | None) -> str:
    return "never below a peak" if peak is None else f"{peak} -> {trough}"


def assumptions(costs: Backtest) -> str:
    """How the backtest trades, said next to every figure of it."""
    return (f"decisions of day D traded at D+{1 + costs.execution_lag_days}'s open; spot fee {costs.spot_fee_bps:g} bps, "
            f"perp fee {costs.perp_fee_bps:g} bps, slippage {costs.slippage_bps:g} bps a side, funding at every "
            "recorded settlement")


def biases(fallback: str | None) -> str:
    """The backtest's known biases, as of the universe the run had (`PointInTime.fallback`)."""
    if fallback:
        universe = ("the universe is today's fixed list of tokens (no market caps: tokens that died before are "
                    "missing, which flatters the alt legs)")
    else:
        universe = ("the universe is ranked by market cap as it was each month, dead coins included while their "
                    "candles are recorded (the recording misses some: FTT after 2022-10, UST and CEL entirely)")
    return f"Biases: {universe}; funding is 0 where none is recorded."


def survivorship_table(rows: pl.DataFrame) -> str:
    """marts.backtest_survivorship as text: each strategy on the universe as it was and on today's
    fixed list of survivors, over the same days and costs, and the difference."""
    if rows.is_empty():
        return "What survivorship was worth: not measured (no market caps: the backtest already runs on the fixed list)."
    order = {name: i for i, name in enumerate(NAMES)}
    wide = rows.pivot(on="universe", index="strategy", values=["cagr", "sharpe", "max_drawdown"])
    wide = wide.sort(pl.col("strategy").replace_strict(order, default=len(order)))
    first, last = rows["first_date"].min(), rows["last_date"].max()
    lines = [
        f"What survivorship was worth ({first} .. {last}, same days and costs): each strategy on the universe as",
        "it was (ranked by market cap, dead coins included) and on today's fixed list of survivors",
        "(pipeline/universe.yaml, the whole chain rerun on it); diff = as it was - fixed list.",
        "",
        f"  {'strategy':<19}{'CAGR':>9}{'fixed':>8}{'diff':>8}{'Sharpe':>9}{'fixed':>7}{'diff':>7}"
        f"{'max DD':>9}{'fixed':>8}{'diff':>8}",
    ]
    for r in wide.iter_rows(named=True):
        cells = []
        for metric, show, width in (("cagr", _pct, 8), ("sharpe", _ratio, 7), ("max_drawdown", _pct, 8)):
            was, fixed = r[f"{metric}_point_in_time"], r[f"{metric}_fixed_list"]
            diff = None if was is None or fixed is None else was - fixed
            cells.append(show(was, width + 1) + show(fixed, width) + show(diff, width))
        lines.append(f"  {r['strategy']:<19}" + "".join(cells))
    return "\n".join(lines)


def render(table: pl.DataFrame, years: pl.DataFrame, costs: Backtest, fallback: str | None = None) -> str:
    order = {name: i for i, name in enumerate(NAMES)}
    table = table.sort(pl.col("strategy").replace_strict(order, default=len(order)))
    first, last = table["first_date"].min(), table["last_date"].max()
    lines = [
        f"Backtest {first} .. {last}: {assumptions(costs)}",
        "",
        f"  {'strategy':<19}{'total':>9}{'CAGR':>8}{'vol':>8}{'Sharpe':>8}{'Sortino':>8}{'max DD':>8}"
        f"  {'peak -> trough':<24}{'Calmar':>7}{'turn/yr':>8}{'fees $':>9}{'funding $':>10}{'hedge $':>10}{'liq':>4}",
    ]
    for r in table.iter_rows(named=True):
        lines.append(
            f"  {r['strategy']:<19}{_pct(r['total_return'], 9)}{_pct(r['cagr'])}{_pct(r['volatility'])}"
            f"{_ratio(r['sharpe'], 8)}{_ratio(r['sortino'], 8)}{_pct(r['max_drawdown'])}"
            f"  {_fall(r['max_drawdown_peak'], r['max_drawdown_trough']):<24}{_ratio(r['calmar'], 7)}"
            f"{r['turnover']:>8.1f}{r['fees_paid']:>9,.0f}{r['funding_received'] - r['funding_paid']:>10,.0f}"
            f"{r['hedge_pnl']:>10,.0f}{r['liquidations']:>4}"
        )
    hedged = table.filter(pl.col("funding_missing_share").is_not_null())
    for r in hedged.iter_rows(named=True):
        lines.append(f"  {r['strategy']}: funding missing for {r['funding_missing_share']:.1%} of the hedge notional-days "
                     f"(counted as 0); average exposure gross {r['avg_gross_exposure']:.0%}, net {r['avg_net_exposure']:.0%}")
    calendar = years.pivot(on="year", index="strategy", values="ret", sort_columns=True)
    calendar = calendar.sort(pl.col("strategy").replace_strict(order, default=len(order)))
    year_columns = [c for c in calendar.columns if c != "strategy"]
    lines += ["", "Return per calendar year (first and last year: the part covered):",
              f"  {'strategy':<19}" + "".join(f"{y:>9}" for y in year_columns)]
    for row in calendar.iter_rows(named=True):
        lines.append(f"  {row['strategy']:<19}" + "".join(_pct(row[y], 9) for y in year_columns))
    lines += ["", "Strategies:"] + [f"  {name:<19}{DESCRIPTIONS[name]}" for name in NAMES if name in set(table["strategy"])]
    lines.append(biases(fallback))
    return "\n".join(lines)
