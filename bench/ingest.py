"""Ingest benchmark: the four raw assets over a replayed history vs the floor of loading the same
rows straight from Parquet into DuckDB, and Dagster's cost for a run over every monthly partition.

Prints ratios against baselines measured in the same process (no absolute targets here).
Dataset: ROTATION_REPLAY_DATA, else ../shared/data/real, else the synthetic market.
`--quick`: the dataset's last two months only (the floor still loads the whole files).
"""

from __future__ import annotations

import argparse
import datetime as dt
import tempfile
import time
from pathlib import Path

import dagster as dg
import duckdb

import assets  # noqa: F401  (silences Dagster's beta warning)
from assets.ingest import ingest_assets
from assets.partitions import month_key, monthly
from bench.nightly import replay_data
from pipeline.resources import MarketSources, QualitySettings, WarehouseResource
from pipeline.sources.replay import load_dataset
from pipeline.sources.replay.synthetic import ensure_synthetic
from pipeline.settings import Settings



def dataset_dir() -> Path:
    return replay_data() or ensure_synthetic(Settings.from_env().replay_cache)


def floor_seconds(folder: Path, db: Path) -> float:
    """Parquet -> DuckDB tables, no HTTP, no parsing: what any ingest must at least cost."""
    start = time.perf_counter()
    con = duckdb.connect(str(db))
    for name in ("ohlcv_1d", "funding_8h", "chain_tvl_1d", "btc_dominance_1d"):
        con.execute("create table " + name + " as select * from read_parquet(?)", [str(folder / f"{name}.parquet")])
    con.close()
    return time.perf_counter() - start


def resources(folder: Path, db: Path) -> dict:
    """What the ingest assets need: the replayed sources, the warehouse and the quality gate they pass."""
    return {
        "sources": MarketSources(replay_data=str(folder)),
        "warehouse": WarehouseResource(path=str(db)),
        "quality": QualitySettings(),
    }


def ingest_seconds(folder: Path, db: Path, months: dg.PartitionKeyRange) -> float:
    start = time.perf_counter()
    with dg.build_asset_context(partition_key_range=months, resources=resources(folder, db)) as ctx:
        for asset in ingest_assets:
            asset(ctx)
    return time.perf_counter() - start


def dagster_run_seconds(folder: Path, db: Path, months: dg.PartitionKeyRange) -> float:
    from pipeline.definitions import defs

    start = time.perf_counter()
    defs.resolve_job_def("ingest").execute_in_process(
        instance=dg.DagsterInstance.ephemeral(),
        resources=resources(folder, db),
        tags={"dagster/asset_partition_range_start": months.start, "dagster/asset_partition_range_end": months.end},
        run_config={"loggers": {"console": {"config": {"log_level": "ERROR"}}}},
    )
    return time.perf_counter() - start


def main(quick: bool = False) -> None:
    folder = dataset_dir()
    dataset = load_dataset(folder)
    first = dataset.first_date
    if quick:  # from the first day of the month before as_of's
        print("quick mode: the last two months, to check that the bench runs; its ratios mean nothing")
        first = dt.date.fromisoformat(month_key(dataset.as_of.replace(day=1) - dt.timedelta(days=1)))
    months = dg.PartitionKeyRange(month_key(first), month_key(dataset.as_of))
    partitions = len(monthly.get_partition_keys_in_range(months))
    days = (dataset.as_of - first).days + 1
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        floor = floor_seconds(folder, tmp / "floor.duckdb")
        ingest = ingest_seconds(folder, tmp / "ingest.duckdb", months)
        again = ingest_seconds(folder, tmp / "ingest.duckdb", months)
        rows = duckdb.connect(str(tmp / "ingest.duckdb"), read_only=True).execute(
            "select (select count(*) from raw.ohlcv_1d) + (select count(*) from raw.funding_rates)"
            " + (select count(*) from raw.defi_tvl) + (select count(*) from raw.btc_dominance)"
        ).fetchone()[0]
        run = dagster_run_seconds(folder, tmp / "run.duckdb", months)
    print(f"dataset {dataset.label!r}: {days} days, {rows:,} raw rows ingested")
    print(f"floor   parquet -> duckdb             {floor:7.2f} s")
    print(f"ingest  replay -> clients -> duckdb   {ingest:7.2f} s   {ingest / floor:6.1f}x floor")
    print(f"again   incremental, nothing new      {again:7.2f} s   {again / ingest:6.2f}x first ingest")
    print(f"run     Dagster range run (ephemeral) {run:7.2f} s   {run / ingest:6.1f}x bare ingest"
          f"  ({(run - ingest) / (4 * partitions) * 1000:.0f} ms per asset-partition of bookkeeping, {partitions} months)")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="small sizes, seconds: errors still fail")
    main(quick=parser.parse_args().quick)
