"""Issue 23, resilience: does the playbook with its hedges cut drawdowns against holding BTC, on
the same days and costs, without giving up return? The project's own backtest
(`marts.backtest_daily`, strategies `playbook` and `btc_hold`), computed by the assets on a temp
warehouse from the whole dataset, as the nightly does; the figures are `metrics.summary`'s (checked
against quantstats by tests/test_backtest_metrics.py).

Goals, each printed with PASS/MISS: max drawdown <= 0.6x BTC's, Sharpe >= BTC's, CAGR >= BTC's, on
the real history (`../shared/data/real`, or ROTATION_REPLAY_DATA) and on the embedded synthetic
market; and in every calendar year of the real history, the playbook's worst drawdown inside the
year no worse than BTC's. The real history is also shown in two halves: the playbook's rules are to
be chosen on the first (2020-12 .. 2023-06); the second (2023-07 ..) is the out-of-sample check.
Exits 0 whatever the verdicts: it measures, it does not gate."""

from __future__ import annotations

import datetime as dt
import os
import tempfile
from pathlib import Path

import polars as pl

from bench.nightly import GROUPS, direct
from pipeline.evaluation.metrics import summary
from pipeline.settings import Settings
from pipeline.sources.replay import load_dataset
from pipeline.sources.replay.synthetic import ensure_synthetic
from warehouse import Warehouse

ROOT = Path(__file__).resolve().parents[1]
DRAWDOWN_RATIO_GOAL = 0.6
CHOSEN_ON = (dt.date(2020, 12, 1), dt.date(2023, 6, 30))  # the rules are chosen on these days only
OUT_OF_SAMPLE_FROM = dt.date(2023, 7, 1)
STRATEGY, BENCHMARK = "playbook", "btc_hold"


def backtest_daily(folder: Path) -> pl.DataFrame:
    """marts.backtest_daily of the whole dataset, from the assets on a temp warehouse."""
    dataset = load_dataset(folder)
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "resilience.duckdb"
        direct(folder, db, dataset.first_date, dataset.as_of, GROUPS)
        return Warehouse(db).query("select * from marts.backtest_daily order by strategy, date")


def compare(daily: pl.DataFrame, first: dt.date, last: dt.date) -> dict[str, dict[str, object]]:
    """strategy -> its `metrics.summary` row over the days first..last, for the playbook and BTC."""
    window = daily.filter(pl.col("date").is_between(first, last) & pl.col("strategy").is_in([STRATEGY, BENCHMARK]))
    return {row["strategy"]: row for row in summary(window).iter_rows(named=True)}


def verdict(ok: bool) -> str:
    return "PASS" if ok else "MISS"


def window_lines(name: str, daily: pl.DataFrame, first: dt.date, last: dt.date) -> tuple[list[str], bool]:
    """The three comparisons over first..last, and whether all hold."""
    rows = compare(daily, first, last)
    ours, btc = rows[STRATEGY], rows[BENCHMARK]
    ratio = ours["max_drawdown"] / btc["max_drawdown"] if btc["max_drawdown"] else float("inf")
    checks = [ratio <= DRAWDOWN_RATIO_GOAL, ours["sharpe"] >= btc["sharpe"], ours["cagr"] >= btc["cagr"]]
    return [
        f"{name}: {ours['first_date']} .. {ours['last_date']}",
        f"  max drawdown {ours['max_drawdown']:+.1%} vs BTC {btc['max_drawdown']:+.1%}: {ratio:.2f}x "
        f"(goal <= {DRAWDOWN_RATIO_GOAL}x) {verdict(checks[0])}",
        f"  Sharpe {ours['sharpe']:.2f} vs BTC {btc['sharpe']:.2f} (goal >=) {verdict(checks[1])}",
        f"  CAGR {ours['cagr']:+.1%} vs BTC {btc['cagr']:+.1%} (goal >=) {verdict(checks[2])}",
    ], all(checks)


def real_history_lines(daily: pl.DataFrame) -> tuple[list[str], bool, bool]:
    """The real history's block (the README shows it as printed): all days, the two halves, each
    calendar year; whether the goal holds on all days, and in every year."""
    last = daily["date"].max()
    lines, goal = window_lines("all days", daily, dt.date.min, last)
    lines += window_lines("chosen on (in sample)", daily, *CHOSEN_ON)[0]
    lines += window_lines("out of sample", daily, OUT_OF_SAMPLE_FROM, last)[0]
    lines.append("worst drawdown inside each calendar year (goal: the playbook's no worse than BTC's):")
    years = []
    for year in sorted(daily["date"].dt.year().unique().to_list()):
        rows = compare(daily, dt.date(year, 1, 1), dt.date(year, 12, 31))
        ours, btc = rows[STRATEGY], rows[BENCHMARK]
        years.append(ours["max_drawdown"] >= btc["max_drawdown"])
        lines.append(f"  {year} ({ours['days']} days): {ours['max_drawdown']:+.1%} vs BTC {btc['max_drawdown']:+.1%} "
                     f"{verdict(years[-1])}")
    return lines, goal, all(years)


def main() -> int:
    real = Path(os.environ.get("ROTATION_REPLAY_DATA") or ROOT.parent / "shared" / "data" / "real")
    synthetic = ensure_synthetic(Settings.from_env().replay_cache)
    print("Resilience (issue 23): the playbook with its hedges vs BTC bought and held, the project's backtest "
          "(next-open execution, 10 bps spot / 5 bps perp fees + 5 bps slippage, recorded funding; today's "
          "universe: survivorship flatters the alts)")
    lines, goal, years = real_history_lines(backtest_daily(real))
    print(f"Real history ({real}):\n" + "\n".join("  " + line for line in lines))
    lines, synthetic_goal = window_lines("all days", backtest_daily(synthetic), dt.date.min, dt.date.max)
    print(f"Synthetic market ({synthetic}):\n" + "\n".join("  " + line for line in lines))
    print(f"Goal on the real history: {verdict(goal)}; in every year: {verdict(years)}; "
          f"on the synthetic market: {verdict(synthetic_goal)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
