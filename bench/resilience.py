"""Issue 23, resilience: does the playbook with its hedges cut drawdowns against holding BTC, on
the same days and costs, without giving up return? The project's own backtest
(`marts.backtest_daily`, strategies `playbook` and `btc_hold`), computed by the assets on a temp
warehouse from the whole dataset, as the nightly does; the figures are `metrics.summary`'s (checked
against quantstats by tests/test_backtest_metrics.py).

Goals, each printed with PASS/MISS: max drawdown <= 0.6x BTC's, Sharpe >= BTC's, CAGR >= BTC's, on
the real history (`../shared/data/real`, or ROTATION_REPLAY_DATA) and on the embedded synthetic
market (the reference one: seed 7, up to REFERENCE_AS_OF, whatever today is); and in every calendar year of the real history, the playbook's worst drawdown inside the
year no worse than BTC's. The real history is also shown in two halves: the playbook's rules are to
be chosen on the first (2020-12 .. 2023-06); the second (2023-07 ..) is the out-of-sample check.

Bounds, printed after the verdicts: the same backtest with the model's phase replaced by a reading
no model can have, to tell a slow reading from a posture that cannot reach the goal at all: on the
synthetic market its generator's true regime (recorded in regimes_1d.parquet) on the model's days,
with no confirmation and no error; on the real history every BTC fall of 20% or more from a record
high read as `bear` from that high to its trough (known only in hindsight), the model's phase on the
other days, also called 7 to 45 days after each high (and on the synthetic market too). All act as
fast and as hedged as the playbook's rules allow (`generous`): the posture reviewed daily, every
hedge at the top of its range.
Last, the playbook's figures over a grid of the one parameter issue 23 changed (the README's table).
Exits 0 whatever the verdicts: it measures, it does not gate; an error fails it. Skipped, with the
reason printed, when the real history is absent. `--quick`: the real history of QUICK.real_days
only, a generated synthetic market of QUICK.synthetic_years (same seed and last day), two of the
late calls and one grid value."""

from __future__ import annotations

import argparse
import datetime as dt
import functools
import math
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from bench.nightly import GROUPS, REAL_HISTORY, direct, replay_data
from pipeline.evaluation.metrics import summary
from pipeline.evaluation.run import evaluate
from pipeline.settings import Settings
from pipeline.sources.replay import load_dataset
from pipeline.sources.replay.synthetic import REFERENCE_AS_OF, ensure_synthetic, generate
from pipeline.strategy.playbook import Playbook, load_playbook
from pipeline.strategy.recommend import recommendations
from pipeline.transforms.config import AnalyticsConfig
from pipeline.ranked_universe import universe_as_of
from warehouse import Warehouse

DRAWDOWN_RATIO_GOAL = 0.6
CHOSEN_ON = (dt.date(2020, 12, 1), dt.date(2023, 6, 30))  # the rules are chosen on these days only
OUT_OF_SAMPLE_FROM = dt.date(2023, 7, 1)
STRATEGY, BENCHMARK = "playbook", "btc_hold"
HINDSIGHT_FALL = 0.20  # a bear market, by the usual definition: 20% or more off the peak
LATE_DAYS = (0, 7, 14, 30, 45)  # the hindsight bound, called this many days after each record high
GRID = (-30.0, -20.0, -10.0, -5.0, 0.0, 5.0, 10.0, 20.0)  # hedging.bear_deep_trend_pct around its default (0)
Bound = Callable[[pl.DataFrame, pl.DataFrame], pl.DataFrame]  # (marts.market_regime, BTC's level) -> date, phase


@dataclass(frozen=True)
class Scope:
    real_days: tuple[dt.date, dt.date] | None  # None: the whole real history
    synthetic_years: float | None  # None: the reference market as it is embedded
    late_days: tuple[int, ...]
    grid: tuple[float, ...]


FULL = Scope(real_days=None, synthetic_years=None, late_days=LATE_DAYS, grid=GRID)
# Phases need 200 days of BTC history first: these windows leave days in and out of sample.
QUICK = Scope(real_days=(dt.date(2022, 9, 1), dt.date(2023, 12, 31)), synthetic_years=1.0, late_days=(0, 30), grid=(0.0,))


def measured(folder: Path, bounds: dict[str, Bound], grid_values: tuple[float, ...], days: tuple[dt.date, dt.date] | None = None
             ) -> tuple[pl.DataFrame, dict[str, pl.DataFrame], dict[float, pl.DataFrame]]:
    """On a temp warehouse the assets fill from the dataset (its `days`, else all of it): (marts.backtest_daily
    as they wrote it; name -> the daily rows with the phases that bound gives, the playbook `generous`;
    the daily rows with each of `grid_values` as `hedging.bear_deep_trend_pct`)."""
    dataset = load_dataset(folder)
    first, last = days or (dataset.first_date, dataset.as_of)
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "resilience.duckdb"
        direct(folder, db, first, last, GROUPS)
        wh, playbook = Warehouse(db), load_playbook()
        frames = Inputs.read(wh)
        grid = {value: replayed(frames, playbook=playbook.model_copy(update={
            "hedging": playbook.hedging.model_copy(update={"bear_deep_trend_pct": value})})) for value in grid_values}
        bounded = {name: replayed(frames, bound, generous(playbook)) for name, bound in bounds.items()}
        return wh.query("select * from marts.backtest_daily order by strategy, date"), bounded, grid


@dataclass(frozen=True)
class Inputs:
    """What the recommendations and the backtest read from a filled warehouse, read once for every replay."""

    regime: pl.DataFrame
    index: pl.DataFrame
    rs: pl.DataFrame
    costs: pl.DataFrame
    ohlcv: pl.DataFrame
    weights: pl.DataFrame
    funding: pl.DataFrame
    tokens: pl.DataFrame  # the run's universe (`ranked_universe.universe_as_of`)
    config: AnalyticsConfig  # the analytics configuration the run used

    @classmethod
    def read(cls, wh: Warehouse) -> Inputs:
        settings = Settings.from_env()
        last = wh.query("select max(date) as d from marts.market_regime")["d"][0]
        universe = universe_as_of(wh, last, settings)
        weighting = universe.config.relative_strength.weighting
        return cls(
            tokens=universe.tokens, config=universe.config,
            regime=wh.read("marts.market_regime", last), index=wh.read("marts.sector_index", last, weighting=weighting),
            rs=wh.read("marts.relative_strength", last),
            costs=wh.read("marts.funding_costs", last, exchange=settings.perp_exchange),
            ohlcv=wh.read("raw.ohlcv_1d", last, exchange=settings.exchange),
            weights=wh.read("marts.sector_weights", last, weighting=weighting),
            funding=wh.read("raw.funding_rates", last, exchange=settings.perp_exchange))


def replayed(frames: Inputs, bound: Bound | None = None, playbook: Playbook | None = None) -> pl.DataFrame:
    """marts.backtest_daily recomputed from the warehouse's marts by the functions the assets call,
    with each day's phase (and its risk mode) replaced by `bound`'s, or with another playbook."""
    config, playbook, tokens = frames.config, playbook or load_playbook(), frames.tokens
    regime, btc = frames.regime, config.sector_index.btc
    if bound is not None:
        levels = frames.index.filter(pl.col("sector") == btc).select("date", "level")
        regime = rephased(regime, bound(regime, levels), config)
    rotation, hedges, _ = recommendations(regime, frames.rs, frames.index, frames.costs, tokens, playbook, btc=btc)
    daily, _, _, _ = evaluate(rotation, hedges, frames.ohlcv, frames.weights, frames.funding, regime, tokens, playbook)
    return daily


def generous(playbook: Playbook) -> Playbook:
    """The playbook as fast and as hedged as its rules allow, for the bounds: the posture reviewed
    daily, the bear short at 50% on every bear day, a weakening sector's hedge at 20% of it."""
    hedging = playbook.hedging.model_copy(update={"bear_deep_trend_pct": math.inf, "sector_hedge": playbook.hedging.sector_hedge_max})
    return playbook.model_copy(update={"cadence": playbook.cadence.model_copy(update={"posture": "daily"}), "hedging": hedging})


def rephased(regime: pl.DataFrame, phases: pl.DataFrame, config: AnalyticsConfig) -> pl.DataFrame:
    """marts.market_regime with each day's phase (and the risk mode it implies) from `phases` (date,
    phase), on the days the model has a phase: the bound trades the same days as the model."""
    return regime.join(phases.rename({"phase": "_bound"}), on="date", how="left", maintain_order="left").with_columns(
        phase=pl.when(pl.col("phase").is_not_null()).then("_bound")).drop("_bound").with_columns(
        risk_mode=pl.when(pl.col("phase").is_null()).then(None)
        .when(pl.col("phase").is_in(config.regime.risk_off_phases)).then(pl.lit("risk_off")).otherwise(pl.lit("risk_on")))


def true_regimes(folder: Path) -> Bound:
    """The synthetic market's generator's regime of each day (it knows them; no model can)."""
    truth = pl.read_parquet(folder / "regimes_1d.parquet").select("date", "phase")
    return lambda regime, btc: regime.select("date").join(truth, on="date", how="left", maintain_order="left")


def hindsight_bears(regime: pl.DataFrame, btc: pl.DataFrame, depth: float = HINDSIGHT_FALL, late_days: int = 0) -> pl.DataFrame:
    """date, phase: `bear` on every day from a BTC record high (plus `late_days`) to the trough of a
    fall of `depth` or more before the next record (known only once that record comes), the model's
    phase on the other days, its own `bear` days read `btc_dominance`."""
    btc = btc.sort("date")
    dates, levels = btc["date"].to_list(), btc["level"].to_list()
    bear: set = set()
    peak = 0
    while peak < len(levels):
        trough = after = peak + 1
        while after < len(levels) and levels[after] < levels[peak]:
            trough = after if levels[after] < levels[trough] else trough
            after += 1
        if trough < len(levels) and levels[trough] <= (1 - depth) * levels[peak]:
            bear.update(d for d in dates[peak:trough + 1] if (d - dates[peak]).days >= late_days)
        peak = after
    fell = pl.col("date").is_in(sorted(bear))
    return regime.select("date", phase=pl.when(fell).then(pl.lit("bear"))
                         .when(pl.col("phase") == "bear").then(pl.lit("btc_dominance")).otherwise("phase"))


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


def main(quick: bool = False) -> int:
    scope = QUICK if quick else FULL
    if quick:
        print("quick mode: a short window of each market, to check that the bench runs; its figures mean nothing")
    real = replay_data()
    if real is None:
        print(f"Resilience: skipped, the real history is not at {REAL_HISTORY} (or set ROTATION_REPLAY_DATA)")
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        if scope.synthetic_years is None:
            synthetic = ensure_synthetic(Settings.from_env().replay_cache, as_of=REFERENCE_AS_OF)
        else:
            synthetic = generate(Path(tmp) / "synthetic", REFERENCE_AS_OF, seed=7, years=scope.synthetic_years)
        return report(real, synthetic, scope)


def report(real: Path, synthetic: Path, scope: Scope) -> int:
    print("Resilience: the playbook with its hedges vs BTC bought and held, the project's backtest "
          "(next-open execution, 10 bps spot / 5 bps perp fees + 5 bps slippage, recorded funding; the "
          "universe as it was, ranked by market cap, dead coins included where their candles are recorded)")
    late = {f"+{days}": functools.partial(hindsight_bears, late_days=days) for days in scope.late_days}
    daily, real_bounds, grid = measured(real, late, scope.grid, scope.real_days)
    lines, goal, years = real_history_lines(daily)
    print(f"Real history ({real}):\n" + "\n".join("  " + line for line in lines))
    synthetic_daily, synthetic_bounds, synthetic_grid = measured(synthetic, late | {"truth": true_regimes(synthetic)},
                                                                 scope.grid)
    lines, synthetic_goal = synthetic_lines(synthetic_daily, synthetic_bounds["truth"])
    print(f"Synthetic market ({synthetic}):\n" + "\n".join(lines))
    print(f"Goal on the real history: {verdict(goal)}; in every year: {verdict(years)}; "
          f"on the synthetic market: {verdict(synthetic_goal)}")
    print("Bound on the real history: the same playbook fed a reading of the turn no model can have")
    print("\n".join(hindsight_lines(real_bounds["+0"])))
    print("The same hindsight reading, called some days after each record high (max drawdown vs BTC's, all days):")
    print("\n".join(late_table(real_bounds, synthetic_bounds, scope.late_days)))
    print("The bear short's size (hedging.bear_deep_trend_pct: 50% at or below this % from BTC's 200-day average, "
          "else 30%), the playbook's figures:")
    print("\n".join(grid_table(grid, synthetic_grid)))
    return 0


def late_table(real: dict[str, pl.DataFrame], synthetic: dict[str, pl.DataFrame],
               late_days: tuple[int, ...] = LATE_DAYS) -> list[str]:
    """A Markdown table (the README's): the hindsight bound's max drawdown and its ratio to BTC's, on
    both markets, for each of `late_days`."""
    def cell(daily: pl.DataFrame) -> str:
        rows = compare(daily, dt.date.min, dt.date.max)
        ours, btc = rows[STRATEGY]["max_drawdown"], rows[BENCHMARK]["max_drawdown"]
        return f"{ours:+.1%} ({ours / btc:.2f}x, {verdict(ours / btc <= DRAWDOWN_RATIO_GOAL)})"

    return ["| called, days after the high | real history | synthetic market |", "|---|---|---|",
            *[f"| {days} | {cell(real[f'+{days}'])} | {cell(synthetic[f'+{days}'])} |" for days in late_days]]


def grid_table(real: dict[float, pl.DataFrame], synthetic: dict[float, pl.DataFrame]) -> list[str]:
    """A Markdown table (the README's): max drawdown, Sharpe and CAGR of the playbook in sample, out
    of sample and on the synthetic market, with its turnover and net funding, for each value."""
    def cells(daily: pl.DataFrame, first: dt.date, last: dt.date) -> list[str]:
        row = compare(daily, first, last)[STRATEGY]
        return [f"{row['max_drawdown']:+.1%}", f"{row['sharpe']:.2f}", f"{row['cagr']:+.1%}"]

    lines = ["| % from the average | in sample: max DD | Sharpe | CAGR | out of sample: max DD | Sharpe | CAGR "
             "| synthetic: max DD | Sharpe | CAGR | turnover a year (real) | net funding (real) |",
             "|" + "---|" * 12]
    for value in real:
        whole = compare(real[value], dt.date.min, dt.date.max)[STRATEGY]
        funding = whole["funding_received"] - whole["funding_paid"]
        lines.append("| " + " | ".join([f"{value:+.0f}", *cells(real[value], *CHOSEN_ON),
                                         *cells(real[value], OUT_OF_SAMPLE_FROM, dt.date.max),
                                         *cells(synthetic[value], dt.date.min, dt.date.max),
                                         f"{whole['turnover']:.1f}x", f"${funding / 1e3:+,.1f}k"]) + " |")
    return lines


def synthetic_lines(daily: pl.DataFrame, truth: pl.DataFrame) -> tuple[list[str], bool]:
    """The synthetic market's block (the README shows it as printed): the model, then its bound
    (the same playbook fed the market's true regimes); whether the model meets the goal."""
    lines, goal = window_lines("all days", daily, dt.date.min, dt.date.max)
    lines.append("bound: its true regimes read on the model's days (no confirmation, no error):")
    lines += ["  " + line for line in window_lines("all days", truth, dt.date.min, dt.date.max)[0]]
    return lines, goal


def hindsight_lines(daily: pl.DataFrame) -> list[str]:
    """The real history's bound (the README shows it as printed)."""
    lines = [f"  real history, every BTC fall of {HINDSIGHT_FALL:.0%} or more from a record high read as bear from that high "
             "to its trough (hindsight):"]
    for name, first, last in (("all days", dt.date.min, dt.date.max), ("chosen on (in sample)", *CHOSEN_ON),
                              ("out of sample", OUT_OF_SAMPLE_FROM, dt.date.max)):
        lines += ["    " + line for line in window_lines(name, daily, first, last)[0]]
    return lines


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="small sizes, seconds: errors still fail")
    raise SystemExit(main(quick=parser.parse_args().quick))
