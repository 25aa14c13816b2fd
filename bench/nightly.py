"""P5b nightly: one nightly run (the newest day) on the real history, as the schedule starts it, vs
the same assets called directly on a copy of the same warehouse: how much of a night is Dagster's
bookkeeping, and, of the rest, how much each group of assets takes (ingest: fetch + gate + write;
analytics and model: compute + gate + write). Prints, never asserts; no goal is set for it; exits
non-zero if the run fails. Dataset: ROTATION_REPLAY_DATA, else ../shared/data/real (skipped, with
the reason printed, when that is absent). `--quick`: a history of the QUICK_HISTORY_DAYS before the
night only."""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import dagster as dg

import assets  # noqa: F401  (silences Dagster's beta warning)
from assets.analytics import analytics_assets
from assets.evaluation import evaluation_assets
from assets.ingest import ingest_assets
from assets.partitions import month_key
from assets.recommendations import recommendation_assets
from pipeline.resources import AnalyticsSettings, MarketSources, QualitySettings, StrategySettings, WarehouseResource
from pipeline.sources.replay import load_dataset

ROOT = Path(__file__).resolve().parents[1]
REAL_HISTORY = ROOT.parent / "shared" / "data" / "real"  # where tests/conftest.py finds it too
QUICK_HISTORY_DAYS = 60
GROUPS = {"ingest": ingest_assets, "analytics": analytics_assets, "model": [recommendation_assets, *evaluation_assets]}


@contextlib.contextmanager
def replay_apart(folder: Path, env: dict[str, str] | None = None) -> Iterator[tuple[str, subprocess.Popen]]:
    """(its URL, the process) of a replay server of `folder` in a process of its own, as an exchange
    is for a live run: its data is not the run's memory, and loading it is not the run's time."""
    server = subprocess.Popen([sys.executable, "-m", "pipeline.sources.replay", "--data", str(folder)], cwd=ROOT,
                              env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        yield server.stdout.readline().strip(), server
    finally:
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:  # seen under make test's load: a server slow to die is killed
            server.kill()
            server.wait(timeout=30)


def resources(folder: Path, db: Path, until: dt.date, sources: bool = True) -> dict:
    """The run's resources; without `sources` for the assets after ingest (no second replay server)."""
    return ({"sources": MarketSources(replay_data=str(folder), until=until.isoformat())} if sources else {}) | {
        "warehouse": WarehouseResource(path=str(db)),
        "analytics": AnalyticsSettings(), "quality": QualitySettings(), "strategy": StrategySettings()}


def direct(folder: Path, db: Path, first: dt.date, last: dt.date, groups: dict[str, list]) -> dict[str, float]:
    """Seconds per group of the assets called in order as on the night after `last` (the raw ones
    over the months of first..last), without a Dagster run."""
    seconds = {}
    months = dg.PartitionKeyRange(month_key(first), month_key(last))
    with (dg.build_asset_context(partition_key_range=months, resources=resources(folder, db, last)) as raw,
          dg.build_asset_context(resources=resources(folder, db, last, sources=False)) as rest):
        for name, group in groups.items():
            start = time.perf_counter()
            for asset in group:
                output = asset(raw if asset in ingest_assets else rest)
                if not isinstance(output, dg.MaterializeResult):
                    list(output)
            seconds[name] = time.perf_counter() - start
    return seconds


def replay_data() -> Path | None:
    """ROTATION_REPLAY_DATA (which must exist), else the real history; None when that is absent, as
    on a fresh clone without ../shared beside it."""
    if os.environ.get("ROTATION_REPLAY_DATA"):
        return Path(os.environ["ROTATION_REPLAY_DATA"])
    return REAL_HISTORY if REAL_HISTORY.is_dir() else None


def main(quick: bool = False) -> int:
    if quick:
        print(f"quick mode: {QUICK_HISTORY_DAYS} days of history, to check that the bench and the night run;"
              " its timings mean nothing")
    folder = replay_data()
    if folder is None:
        print(f"P5b nightly: skipped, the real history is not at {REAL_HISTORY} (or set ROTATION_REPLAY_DATA)")
        return 0
    dataset = load_dataset(folder)
    night = dataset.as_of
    first = night - dt.timedelta(days=QUICK_HISTORY_DAYS) if quick else dataset.first_date
    with tempfile.TemporaryDirectory() as tmp:
        history = Path(tmp) / "history.duckdb"
        print(f"P5b nightly: the night of {night} on {folder} (history {first} .. {night - dt.timedelta(days=1)})")
        start = time.perf_counter()
        before = night - dt.timedelta(days=1)
        direct(folder, history, first, before, {"data": [*ingest_assets, *analytics_assets]})
        direct(folder, history, first, before, {"model": GROUPS["model"]})
        print(f"  history materialised directly in {time.perf_counter() - start:.0f} s")
        copy = Path(tmp) / "direct.duckdb"
        shutil.copyfile(history, copy)
        parts = direct(folder, copy, night, night, GROUPS)
        from pipeline.definitions import defs

        with dg.DagsterInstance.ephemeral() as instance:
            start = time.perf_counter()
            result = defs.resolve_job_def("nightly").execute_in_process(
                instance=instance, resources={"sources": MarketSources(replay_data=str(folder)),
                                              "warehouse": WarehouseResource(path=str(history))},
                tags={"dagster/asset_partition_range_start": month_key(night),
                      "dagster/asset_partition_range_end": month_key(night)},
                run_config={"loggers": {"console": {"config": {"log_level": "ERROR"}}}}, raise_on_error=False)
            wall = time.perf_counter() - start
            steps = {s.step_key: s.end_time - s.start_time for s in instance.get_run_step_stats(result.run_id)}
    alone = sum(parts.values())
    print(f"  nightly run: {wall:.1f} s ({'success' if result.success else 'FAILED'}), {len(steps)} steps")
    print(f"  the same assets called directly: {alone:.1f} s = " + ", ".join(f"{k} {v:.1f} s" for k, v in parts.items()))
    publish = sum(v for k, v in steps.items() if k.startswith("warehouse__") or k == "marts__portfolio_orders")
    print(f"  snapshot, report and orders (steps of the run): {publish:.1f} s")
    overhead = max(0.0, wall - alone - publish)
    print(f"  Dagster's share (run minus the assets' own work): {overhead:.1f} s = {overhead / wall:.0%} of the night")
    return 0 if result.success else 1


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="small sizes, seconds: errors and failed runs still fail")
    raise SystemExit(main(quick=parser.parse_args().quick))
