"""P3 incremental: one night on 5 years of history vs on 1 year (the same synthetic universe, seed and
last day), as the nightly schedule runs it: wall time of the Dagster run (goal: 5 years <= 1.2x one
year), and the requests the night's ingest makes per source (goal: one page per symbol and source,
the same count whatever the history). Each history is materialised first without a Dagster run, up
to the day before the night. The timed nights fetch from a replay server in a process of its own,
as a live night fetches from the exchanges, each three times on a fresh copy of its history, the two
histories in turn (timings swing by a third on a shared machine): medians. Prints, and exits
non-zero only if a run fails. `--quick`: 0.25 and 0.5 years, one night each, no warm-up night."""

from __future__ import annotations

import argparse
import datetime as dt
import os
import shutil
import statistics
import tempfile
import time
from collections import Counter
from pathlib import Path

import dagster as dg

import assets  # noqa: F401  (silences Dagster's beta warning)
from assets.analytics import analytics_assets
from assets.evaluation import evaluation_assets
from assets.ingest import ingest_assets
from assets.partitions import month_key
from assets.recommendations import recommendation_assets
from bench.nightly import replay_apart, resources
from pipeline.resources import MarketSources, WarehouseResource
from pipeline.sources.replay import load_dataset
from pipeline.sources.replay.synthetic import generate
from pipeline.sources.replay import load_dataset
from pipeline.universe import load_universe

NIGHT = dt.date(2025, 6, 30)
GOAL = 1.2
FULL, QUICK = ((1, 5), 3, True), ((0.25, 0.5), 1, False)  # (short, long) years; rounds; a warm-up night first
SOURCES = {"/api/v3/klines": "candles", "/fapi/v1/fundingRate": "funding", "/api/v3/coins/bitcoin/market_chart": "dominance",
           "/api/v3/global/market_cap_chart": "dominance", "/api/v3/coins/markets": "market caps",
           "/v1/cryptocurrency/listings/historical": "market caps"}


def source_of(path: str) -> str:
    if path in SOURCES:
        return SOURCES[path]
    if path.startswith(("/v2/", "/protocol/")):
        return "defillama"
    if path.startswith("/api/v3/coins/"):  # a ranked coin's categories: at most ROTATION_CATEGORY_CALLS a night
        return "categories"
    return "markets" if path.endswith(("exchangeInfo", "fundingInfo")) else f"other {path}"


def history(folder: Path, db: Path, first: dt.date, last: dt.date, only_ingest: bool = False) -> Counter:
    """Every asset of the nightly but publishing (or only the raw ones), called directly as on the
    night after `last` (raw: the months of first..last); the requests the ingest made, per source."""
    months = dg.PartitionKeyRange(month_key(first), month_key(last))
    called = ingest_assets if only_ingest else (*ingest_assets, *analytics_assets, recommendation_assets, *evaluation_assets)
    with (dg.build_asset_context(partition_key_range=months, resources=resources(folder, db, last)) as raw,
          dg.build_asset_context(resources=resources(folder, db, last, sources=False)) as rest):
        for asset in called:
            output = asset(raw if asset in ingest_assets else rest)
            if not isinstance(output, dg.MaterializeResult):
                list(output)
        return Counter(source_of(r.path) for r in raw.resources.sources._server.requests)


def group_of(step: str) -> str:
    return "ingest" if step.startswith("raw__") else "marts" if step.startswith("marts__") else step.split("__")[-1]


def night(url: str, db: Path) -> tuple[float, bool, dict[str, float]]:
    """Wall seconds of the nightly job for NIGHT (its month) on the warehouse `db`, against the replay
    server at `url`, its success, and the seconds of its steps per group."""
    from pipeline.definitions import defs

    os.environ["ROTATION_REPLAY_URL"] = url
    with dg.DagsterInstance.ephemeral() as instance:
        start = time.perf_counter()
        result = defs.resolve_job_def("nightly").execute_in_process(
            instance=instance,
            resources={"sources": MarketSources(), "warehouse": WarehouseResource(path=str(db))},
            tags={"dagster/asset_partition_range_start": month_key(NIGHT),
                  "dagster/asset_partition_range_end": month_key(NIGHT)},
            run_config={"loggers": {"console": {"config": {"log_level": "ERROR"}}}}, raise_on_error=False)
        wall = time.perf_counter() - start
        groups: Counter = Counter()
        for step in instance.get_run_step_stats(result.run_id):
            groups[group_of(step.step_key)] += step.end_time - step.start_time
    return wall, result.success, dict(groups)


def main(quick: bool = False) -> int:
    (short, long), rounds_of_each, warm_up = QUICK if quick else FULL
    if quick:
        print("quick mode: short histories, one night each, to check that the bench and the nights run;"
              " its timings mean nothing")
    universe = load_universe()
    print(f"P3 incremental: the night of {NIGHT} on {short:g} and {long:g} years of synthetic history "
          f"({len(universe.spot_symbols)} spot symbols, {len(universe.perp_symbols)} perps)")
    walls, requests, places = {}, {}, {}
    with tempfile.TemporaryDirectory() as tmp:
        for years in (short, long):
            folder = generate(Path(tmp) / f"market-{years}y", NIGHT, seed=7, years=years)
            db = Path(tmp) / f"{years}y.duckdb"
            first = NIGHT - dt.timedelta(days=round(years * 365))
            history(folder, db, first, NIGHT - dt.timedelta(days=1))
            probe = Path(tmp) / f"{years}y-probe.duckdb"
            shutil.copyfile(db, probe)  # the night's requests, counted on a copy
            requests[years] = history(folder, probe, NIGHT, NIGHT, only_ingest=True)
            places[years] = folder, db
            if years == long:  # the pairs the candle ingest asks for that the market lists (dead coins' too)
                listed = load_dataset(folder)
                traded = set(listed.ohlcv["symbol"]) | set(() if listed.ohlcv_delisted is None else listed.ohlcv_delisted["symbol"])
        # A first night in a process pays one-time costs (lazy imports, the report's first render):
        # one untimed night on a copy first, so that every timed night runs warm. Then rounds_of_each
        # nights of each history, in turn, each on a fresh copy of it; the ratio is of the medians.
        rounds: dict[float, list[tuple[float, dict[str, float]]]] = {short: [], long: []}
        with replay_apart(places[short][0]) as (short_url, _), replay_apart(places[long][0]) as (long_url, _):
            urls = {short: short_url, long: long_url}
            if warm_up:
                shutil.copyfile(places[short][1], Path(tmp) / "warm-up.duckdb")
                night(urls[short], Path(tmp) / "warm-up.duckdb")
            for _ in range(rounds_of_each):
                for years, (_, db) in places.items():
                    copy = Path(tmp) / f"{years}y-night.duckdb"
                    shutil.copyfile(db, copy)
                    wall, ok, steps = night(urls[years], copy)
                    if not ok:
                        print(f"  {years:g} year(s): the night FAILED")
                        return 1
                    rounds[years].append((wall, steps))
        for years, runs in rounds.items():
            walls[years] = statistics.median(w for w, _ in runs)
            steps = {group: statistics.median(s.get(group, 0.0) for _, s in runs) for group in runs[0][1]}
            print(f"  {years:g} year(s): night {walls[years]:.1f} s (median of {', '.join(f'{w:.1f}' for w, _ in runs)}); "
                  "requests " + ", ".join(f"{k} {v}" for k, v in sorted(requests[years].items())))
            print("    steps (medians): " + ", ".join(f"{k} {v:.1f} s" for k, v in sorted(steps.items(), key=lambda kv: -kv[1])))
    ratio = walls[long] / walls[short]
    same = requests[short] == requests[long]
    one_page = (requests[long]["candles"] <= len(traded)
                and requests[long]["funding"] <= len(universe.perp_symbols))
    print(f"  {long:g} years / {short:g} year: {ratio:.2f}x (goal <= {GOAL}x): {'PASS' if ratio <= GOAL else 'MISS'}")
    print(f"  requests the same whatever the history, at most one page per symbol: "
          f"{'PASS' if same and one_page else 'MISS'}")
    return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="small sizes, seconds: errors and failed runs still fail")
    raise SystemExit(main(quick=parser.parse_args().quick))
