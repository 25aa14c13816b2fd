"""`make demo`: replay a dataset (the synthetic market by default) through the ingest job, in one
run over the dataset's whole date range, then print what the warehouse holds."""

from __future__ import annotations

import logging

import dagster as dg

from pipeline.settings import Settings
from pipeline.sources.replay.dataset import load_dataset
from pipeline.sources.replay.synthetic import SYNTHETIC_LABEL, ensure_synthetic
from warehouse import Warehouse

log = logging.getLogger(__name__)

SUMMARY_SQL = {
    "raw.ohlcv_1d": "select count(*), min(date), max(date), count(distinct symbol) from raw.ohlcv_1d",
    "raw.funding_rates": "select count(*), min(funding_time)::date, max(funding_time)::date, "
    "count(distinct symbol) from raw.funding_rates",
    "raw.defi_tvl": "select count(*), min(date), max(date), count(distinct scope || ':' || name) from raw.defi_tvl",
    "raw.btc_dominance": "select count(*), min(date), max(date), count(distinct source) from raw.btc_dominance",
}
SERIES_WORD = {"raw.ohlcv_1d": "symbols", "raw.funding_rates": "perps", "raw.defi_tvl": "series",
               "raw.btc_dominance": "sources"}


def table_counts(warehouse: Warehouse) -> dict[str, tuple]:
    if not warehouse.path.exists():
        return {t: (0, None, None, 0) for t in SUMMARY_SQL}
    with warehouse.connect(read_only=True) as con:
        return {t: con.execute(sql).fetchone() for t, sql in SUMMARY_SQL.items()}


def run_demo() -> int:
    from pipeline.definitions import defs

    settings = Settings.from_env()
    if settings.sources != "replay":
        raise SystemExit("make demo replays a dataset offline; unset ROTATION_SOURCES=live to run it")
    folder = settings.replay_data or ensure_synthetic(settings.replay_cache)
    dataset = load_dataset(folder)
    start = max(dataset.first_date, settings.start_date)
    warehouse = Warehouse(settings.warehouse_path)
    before = table_counts(warehouse)
    synthetic = dataset.label == SYNTHETIC_LABEL
    print(f"Replaying the {dataset.label!r} dataset ({folder}) as of {dataset.as_of}"
          + (": a SYNTHETIC market, not real prices." if synthetic else "."))
    print(f"Materialising raw/* and marts/* for {start} .. {dataset.as_of} in one run (a few minutes: Dagster records every day of every asset)...")
    result = defs.resolve_job_def("nightly").execute_in_process(
        instance=dg.DagsterInstance.get(),
        run_config={"loggers": {"console": {"config": {"log_level": "INFO"}}}},
        tags={
            "dagster/asset_partition_range_start": start.isoformat(),
            "dagster/asset_partition_range_end": dataset.as_of.isoformat(),
            "rotation/dataset": dataset.label,
        },
        raise_on_error=False,
    )
    if not result.success:
        failure = next((e for e in result.all_events if e.is_step_failure), None)
        message = failure.step_failure_data.error.message.strip() if failure else "see the run log"
        print(f"\nThe run failed: {message}")
        return 1
    print_summary(warehouse, before, run_id=result.run_id)
    return 0


def print_summary(warehouse: Warehouse, before: dict[str, tuple] | None = None, run_id: str | None = None) -> None:
    after = table_counts(warehouse)
    print(f"\nWarehouse: {warehouse.path}" + (f"  (run {run_id})" if run_id else ""))
    print(f"{'table':<20}{'rows':>10}{'new':>9}  {'first':<12}{'last':<12}series")
    for table, (rows, first, last, series) in after.items():
        new = rows - (before or {}).get(table, (0,))[0]
        print(f"{table:<20}{rows:>10,}{new:>9,}  {str(first):<12}{str(last):<12}{series} {SERIES_WORD[table]}")
    print("\nNext:")
    print("  make ui                                   # Dagster UI at http://127.0.0.1:3000 (lineage, runs)")
    print('  .venv/bin/python -m pipeline sql "select symbol, max(date) from raw.ohlcv_1d group by all"')
