"""P5 first run: `python -m pipeline demo` as a new user runs it (the synthetic market, an empty
warehouse and an empty Dagster instance, in a child process: wall time and peak RSS), then again with
nothing new. The baseline, in this process: the same assets over the same days called directly,
without Dagster's run and event log (fetch + quality gate + compute + write), which is what the run
would cost if Dagster's bookkeeping were free. The repeat finds the dataset already published with
the same code and configuration and skips the run, as the nightly schedule skips a published night. Goals: first run <= 90 s, peak RSS <= 2 GiB, repeat
<= 30 s. Takes as long as two demos and the baseline (a few minutes on a 2-core machine).
`--quick`: the same on a synthetic market of QUICK_YEARS (ROTATION_REPLAY_DATA for the demos)."""

from __future__ import annotations

import argparse
import datetime as dt
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import dagster as dg

import assets  # noqa: F401  (silences Dagster's beta warning)
from assets.analytics import analytics_assets
from assets.evaluation import evaluation_assets
from assets.ingest import ingest_assets
from assets.partitions import month_key
from assets.recommendations import recommendation_assets
from pipeline.resources import AnalyticsSettings, MarketSources, QualitySettings, StrategySettings, WarehouseResource
from pipeline.settings import Settings
from pipeline.sources.replay import load_dataset
from pipeline.sources.replay.synthetic import ensure_synthetic, generate

ROOT = Path(__file__).resolve().parents[1]
FIRST_GOAL_S, REPEAT_GOAL_S, RSS_GOAL_MIB = 90.0, 30.0, 2048.0
QUICK_YEARS = 0.75


def demo(env: dict[str, str], log: Path) -> tuple[float, float, int]:
    """Wall seconds, peak RSS in MiB and exit code of one `python -m pipeline demo`."""
    start = time.perf_counter()
    with log.open("w") as out:
        child = subprocess.Popen([sys.executable, "-m", "pipeline", "demo"], cwd=ROOT, env=env,
                                 stdout=out, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(child.pid, 0)
    return time.perf_counter() - start, usage.ru_maxrss / 1024, os.waitstatus_to_exitcode(status)


def direct_seconds(folder: Path, db: Path, months: dg.PartitionKeyRange) -> float:
    """Every asset of the demo's run but the snapshot, the report and the orders, called in order
    without a Dagster run (no events recorded): the raw ones over `months`."""
    resources = {"sources": MarketSources(replay_data=str(folder)), "warehouse": WarehouseResource(path=str(db)),
                 "analytics": AnalyticsSettings(), "quality": QualitySettings(), "strategy": StrategySettings()}
    start = time.perf_counter()
    rest_resources = {k: v for k, v in resources.items() if k != "sources"}  # one replay server, not two
    with dg.build_asset_context(partition_key_range=months, resources=resources) as raw, \
            dg.build_asset_context(resources=rest_resources) as rest:
        for asset in (*ingest_assets, *analytics_assets, recommendation_assets, *evaluation_assets):
            output = asset(raw if asset in ingest_assets else rest)
            if not isinstance(output, dg.MaterializeResult):
                list(output)
    return time.perf_counter() - start


def verdict(ok: bool) -> str:
    return "PASS" if ok else "MISS"


def main(quick: bool = False) -> int:
    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "PYTHONPATH": str(ROOT), "DAGSTER_EMIT_PARTITION_SUBSET_IN_PLANNED_EVENTS": "true"}
        if quick:
            print(f"quick mode: a {QUICK_YEARS:g}-year synthetic market, to check that the bench and the demo run;"
                  " its timings mean nothing")
            yesterday = dt.datetime.now(dt.UTC).date() - dt.timedelta(days=1)
            folder = generate(Path(tmp) / "market", yesterday, years=QUICK_YEARS)
            env["ROTATION_REPLAY_DATA"] = str(folder)
        else:
            folder = ensure_synthetic(Settings.from_env().replay_cache)
            env.pop("ROTATION_REPLAY_DATA", None)
        dataset = load_dataset(folder)
        first, last = dataset.first_date.isoformat(), dataset.as_of.isoformat()
        months = dg.PartitionKeyRange(month_key(dataset.first_date), month_key(dataset.as_of))
        home = Path(tmp) / "dagster_home"
        home.mkdir()
        shutil.copyfile(ROOT / ".dagster_home" / "dagster.yaml", home / "dagster.yaml")
        env |= {"DAGSTER_HOME": str(home), "ROTATION_WAREHOUSE": str(Path(tmp) / "rotation.duckdb")}
        print(f"P5 first run: `python -m pipeline demo` on the synthetic market, {first} .. {last}")
        baseline = direct_seconds(folder, Path(tmp) / "direct.duckdb", months)
        print(f"  baseline, the same assets called without Dagster: {baseline:.1f} s")
        runs = []
        for name in ("first", "repeat"):
            seconds, rss, code = demo(env, Path(tmp) / f"{name}.log")
            runs.append((seconds, rss, code))
            skipped = "Nothing new: run " in Path(tmp, f"{name}.log").read_text()
            print(f"  {name} run: {seconds:.1f} s, peak RSS {rss:,.0f} MiB, exit {code}: " + (
                "nothing new, so no run (the demo names the run that published it)" if skipped else
                f"{seconds / baseline:.1f}x the baseline (the other {max(0.0, 1 - baseline / seconds):.0%}: "
                "process start, Dagster's run and events, snapshot, report, orders)"))
            if code != 0:
                print(Path(tmp, f"{name}.log").read_text()[-3000:])
                return 1
    (first_s, first_rss, _), (repeat_s, repeat_rss, _) = runs
    print(f"  first run <= {FIRST_GOAL_S:.0f} s: {verdict(first_s <= FIRST_GOAL_S)}; "
          f"peak RSS <= {RSS_GOAL_MIB:,.0f} MiB: {verdict(max(first_rss, repeat_rss) <= RSS_GOAL_MIB)}; "
          f"repeat <= {REPEAT_GOAL_S:.0f} s: {verdict(repeat_s <= REPEAT_GOAL_S)}")
    return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="small sizes, seconds: errors and failed runs still fail")
    raise SystemExit(main(quick=parser.parse_args().quick))
