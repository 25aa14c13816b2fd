"""P5 first run: `python -m pipeline demo` as a new user runs it (the synthetic market, an empty
warehouse and an empty Dagster instance, in a child process: wall time and peak RSS), then again with
nothing new. The baseline, in this process: the same assets over the same days called directly,
without Dagster's run and event log (fetch + quality gate + compute + write), which is what the run
would cost if Dagster's bookkeeping were free. The repeat finds the dataset already published with
the same code and configuration and skips the run, as the nightly schedule skips a published night. Goals: first run <= 90 s, peak RSS <= 2 GiB, repeat
<= 30 s. Takes as long as two demos and the baseline (a few minutes on a 2-core machine)."""

from __future__ import annotations

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
from pipeline.sources.replay.synthetic import ensure_synthetic

ROOT = Path(__file__).resolve().parents[1]
FIRST_GOAL_S, REPEAT_GOAL_S, RSS_GOAL_MIB = 90.0, 30.0, 2048.0


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


def main() -> int:
    folder = ensure_synthetic(Settings.from_env().replay_cache)
    dataset = load_dataset(folder)
    first, last = dataset.first_date.isoformat(), dataset.as_of.isoformat()
    months = dg.PartitionKeyRange(month_key(dataset.first_date), month_key(dataset.as_of))
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp) / "dagster_home"
        home.mkdir()
        shutil.copyfile(ROOT / ".dagster_home" / "dagster.yaml", home / "dagster.yaml")
        env = {**os.environ, "DAGSTER_HOME": str(home), "PYTHONPATH": str(ROOT),
               "ROTATION_WAREHOUSE": str(Path(tmp) / "rotation.duckdb"),
               "DAGSTER_EMIT_PARTITION_SUBSET_IN_PLANNED_EVENTS": "true"}
        env.pop("ROTATION_REPLAY_DATA", None)
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
    raise SystemExit(main())
