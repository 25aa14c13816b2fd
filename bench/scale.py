"""P6 scale: a synthetic universe of 5,000 tokens x 3 years through the whole nightly chain (ingest
from the replay, quality gate, marts, recommendations, backtest, publish) as a user runs it:
`python -m pipeline demo --rerun` in a child process on an empty warehouse and an empty Dagster
instance, with ROTATION_UNIVERSE pointing at the generated universe. The replay server runs in a
process of its own (`python -m pipeline.sources.replay`, ROTATION_REPLAY_URL), as the exchanges do
for a live run: its data is the exchange's memory, not the pipeline's. Prints the wall time, the
pipeline's peak RSS (goal <= 4 GiB), the replay's apart, and where the time goes: the child's
start-up, then the run's steps from the Dagster instance, grouped as ingest / quality / analytics /
recommendations / evaluation / publish. The wall time has no goal; it is reported.

The universe (the project's own tokens, BTC and ETH as Core, plus synthetic tokens spread over the
other sectors and buckets, ~15% with a perp) and its market are generated into a temp folder, never
committed. BENCH_SCALE_TOKENS (default 5000) and BENCH_SCALE_YEARS (default 3) change the size;
`--quick` runs 60 tokens x 0.75 years.
Exits non-zero only if the run fails."""

from __future__ import annotations

import argparse
import datetime as dt
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
import requests
import yaml

from pipeline.universe import DEFAULT_UNIVERSE, load_universe

ROOT = Path(__file__).resolve().parents[1]
QUICK_TOKENS, QUICK_YEARS = 60, 0.75
AS_OF = dt.date(2026, 11, 30)
SEED = 7
RSS_GOAL_MIB = 4096.0
PERP_SHARE = 0.15
MID_SHARE = 0.2  # of the synthetic tokens; the rest are speculative
SAMPLE_S = 0.5
GROUPS = ("ingest", "quality", "analytics", "recommendations", "evaluation", "publish")


def write_universe(path: Path, tokens: int, seed: int = SEED) -> Path:
    """A universe YAML of `tokens` tokens: the project's own (BTC and ETH as Core, the chains and DeFi
    protocols whose TVL is tracked, the example portfolio's holdings), then synthetic tokens S00001...
    spread evenly over the other sectors, MID_SHARE of them mid-cap, PERP_SHARE with a perp."""
    base = yaml.safe_load(DEFAULT_UNIVERSE.read_text())
    entries = dict(list(base["tokens"].items())[:tokens])
    sectors = [s for s in base["sectors"] if s != "Core"]
    rng = np.random.default_rng(seed)
    extra = max(0, tokens - len(entries))
    sector = rng.integers(len(sectors), size=extra)
    mid = rng.random(extra) < MID_SHARE
    perp = rng.random(extra) < PERP_SHARE
    for i in range(extra):
        name = f"S{i + 1:05d}"
        entries[name] = {"sector": sectors[sector[i]], "bucket": "mid" if mid[i] else "speculative",
                         "spot": f"{name}/USDT", "perp": f"{name}/USDT:USDT" if perp[i] else None,
                         "coingecko": f"synthetic-{name.lower()}"}
    path.write_text(yaml.safe_dump({"sectors": base["sectors"], "tokens": entries}, sort_keys=False))
    return path


def demo(env: dict[str, str], log: Path, samples: list[tuple[float, float]]) -> tuple[float, float, int]:
    """Wall seconds, peak RSS in MiB and exit code of one `python -m pipeline demo --rerun`; appends
    (unix time, RSS MiB) of the child to `samples` every SAMPLE_S, to tell which step the peak is in."""
    start = time.perf_counter()
    with log.open("w") as out:
        child = subprocess.Popen([sys.executable, "-m", "pipeline", "demo", "--rerun"], cwd=ROOT, env=env,
                                 stdout=out, stderr=subprocess.STDOUT)
        done = threading.Event()
        sampler = threading.Thread(target=sample_rss, args=(child.pid, samples, done), daemon=True)
        sampler.start()
        _, status, usage = os.wait4(child.pid, 0)
        done.set()
        sampler.join()
    return time.perf_counter() - start, usage.ru_maxrss / 1024, os.waitstatus_to_exitcode(status)


def sample_rss(pid: int, samples: list[tuple[float, float]], done: threading.Event) -> None:
    while not done.wait(SAMPLE_S):
        try:
            status = Path(f"/proc/{pid}/status").read_text()
        except OSError:  # exited (or not Linux)
            return
        kib = next((int(line.split()[1]) for line in status.splitlines() if line.startswith("VmRSS:")), 0)
        samples.append((time.time(), kib / 1024))


def step_groups() -> dict[str, str]:
    """Each asset step (op) of the nightly job -> its asset group; the job's other steps are the
    freshness checks (group quality)."""
    from pipeline.definitions import defs

    graph = defs.resolve_asset_graph()
    return {graph.get(key).assets_def.op.name: graph.get(key).group_name for key in graph.get_all_asset_keys()
            if graph.get(key).is_executable}


def where_the_time_goes(home: Path, started: float, samples: list[tuple[float, float]]
                        ) -> tuple[dict[str, list[tuple[str, float, float]]], float, float]:
    """From the child's Dagster instance: per group its steps' (key, seconds, highest RSS sampled
    while it ran), longest first; the start-up (the child's start to the run's start) and the run's
    own wall time."""
    import dagster as dg

    with dg.DagsterInstance.from_config(str(home)) as instance:
        run = instance.get_runs(limit=1)[0]
        record = instance.get_run_record_by_id(run.run_id)
        stats = instance.get_run_step_stats(run.run_id)
    groups = step_groups()
    per_group: dict[str, list[tuple[str, float]]] = defaultdict(list)
    for step in stats:
        end = step.end_time or step.start_time
        rss = max((mib for t, mib in samples if step.start_time <= t <= end), default=0.0)
        per_group[groups.get(step.step_key, "quality")].append((step.step_key, end - step.start_time, rss))
    for steps in per_group.values():
        steps.sort(key=lambda s: -s[1])
    return dict(per_group), record.start_time - started, record.end_time - record.start_time


def rows_of(warehouse: Path) -> dict[str, int]:
    import duckdb

    from warehouse.db import quoted_table

    with duckdb.connect(str(warehouse), read_only=True) as con:
        return {t: con.execute("select count(*) from " + quoted_table(t)).fetchone()[0]
                for t in ("raw.ohlcv_1d", "raw.funding_rates", "raw.defi_tvl", "marts.sector_weights",
                          "marts.sector_index", "marts.backtest_trades")}


def main(quick: bool = False) -> int:
    if quick:
        print("quick mode: a small universe, to check that the bench and the demo run; its timings mean nothing")
        tokens, years = QUICK_TOKENS, QUICK_YEARS
    else:
        tokens = int(os.environ.get("BENCH_SCALE_TOKENS", 5000))
        years = float(os.environ.get("BENCH_SCALE_YEARS", 3))
    from bench.nightly import replay_apart
    from pipeline.sources.replay.synthetic import generate

    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        t = time.perf_counter()
        universe_file = write_universe(tmp_path / "universe.yaml", tokens)
        universe = load_universe(universe_file)
        folder = generate(tmp_path / "market", AS_OF, seed=SEED, years=years, universe=universe)
        generated_s = time.perf_counter() - t
        print(f"P6 scale: {len(universe.tokens):,} tokens ({len(universe.perp_symbols):,} perps) x {years:g} years "
              f"to {AS_OF}, synthetic, through `python -m pipeline demo --rerun` (generated in {generated_s:.0f} s)")
        home = tmp_path / "dagster_home"
        home.mkdir()
        shutil.copyfile(ROOT / ".dagster_home" / "dagster.yaml", home / "dagster.yaml")
        warehouse = tmp_path / "rotation.duckdb"
        env = {**os.environ, "DAGSTER_HOME": str(home), "PYTHONPATH": str(ROOT), "ROTATION_UNIVERSE": str(universe_file),
               "ROTATION_WAREHOUSE": str(warehouse), "DAGSTER_EMIT_PARTITION_SUBSET_IN_PLANNED_EVENTS": "true"}
        with replay_apart(folder, env) as (url, replay):
            env["ROTATION_REPLAY_URL"] = url
            started, samples, replay_samples = time.time(), [], []
            watcher = threading.Event()
            threading.Thread(target=sample_rss, args=(replay.pid, replay_samples, watcher), daemon=True).start()
            seconds, rss, code = demo(env, tmp_path / "demo.log", samples)
            watcher.set()
            served = requests.get(env["ROTATION_REPLAY_URL"] + "/__replay__/info", timeout=10).json()["requests"]
        replay_rss = max((mib for _, mib in replay_samples), default=0.0)
        print(f"  demo: {seconds:.0f} s wall, peak RSS {rss:,.0f} MiB (the replay server apart: {replay_rss:,.0f} MiB), "
              f"exit {code}; {served:,} requests served by the replay")
        if code != 0:
            print((tmp_path / "demo.log").read_text()[-4000:])
            return 1
        rows = rows_of(warehouse)
        print("  rows: " + ", ".join(f"{table} {n:,}" for table, n in rows.items()))
        per_group, startup, run_s = where_the_time_goes(home, started, samples)
        print(f"  where the time goes: start-up (imports, the dataset, definitions) {startup:.0f} s; "
              f"the Dagster run {run_s:.0f} s; after it (summary, recommendation, scorecard) "
              f"{seconds - startup - run_s:.0f} s. Steps per group (each raw asset's step includes its "
              "quality gate; RSS = the highest sampled while it ran):")
        for group in (*GROUPS, *sorted(set(per_group) - set(GROUPS))):
            steps = per_group.get(group, [])
            print(f"    {group:<16}{sum(s for _, s, _ in steps):>7.0f} s  RSS {max((r for *_, r in steps), default=0):>6,.0f} MiB  "
                  + ", ".join(f"{k} {s:.0f} s" for k, s, _ in steps[:4]))
    print(f"  peak RSS <= {RSS_GOAL_MIB:,.0f} MiB: {'PASS' if rss <= RSS_GOAL_MIB else 'MISS'}; wall time {seconds:.0f} s "
          "(no goal)")
    return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="small sizes, seconds: errors and failed runs still fail")
    raise SystemExit(main(quick=parser.parse_args().quick))
