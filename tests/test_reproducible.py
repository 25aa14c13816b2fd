"""The same inputs give the same rows: the nightly, run as a user runs it (`python -m pipeline demo`) in
fresh processes with different hash seeds and Polars thread counts, writes every table of the
warehouse identically, bit for bit (floats exactly equal), on the synthetic market and the real history.

Only columns that record when or in which run a row was written are left out of the comparison.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import duckdb
import polars as pl
import pytest
from polars.testing import assert_frame_equal

from tests.conftest import REAL_DATA
from warehouse.db import TABLES, quoted_column, quoted_table

ROOT = Path(__file__).resolve().parents[1]
# Legitimately different from run to run: when a row was fetched (ingested_at) or quarantined
# (quarantined_at), the Dagster run that quarantined it (run_id), and the backtest's resume fingerprint,
# which hashes the raw rows whole, their ingested_at included (backtest_state.inputs).
RUN_DEPENDENT = {"ingested_at", "quarantined_at", "run_id"}
RUN_DEPENDENT_IN = {"marts.backtest_state": {"inputs"}}
# (PYTHONHASHSEED, POLARS_MAX_THREADS) of each run: set iteration, hash-map and thread order all differ
RUNS = [(1, 1), (2, 4)]
# The real history from 2024 on: a year and a half of marts, recommendations and backtest (the regime
# needs 200 days of BTC before its first phase), in about half the time of the whole history.
REAL_START = "2024-01-01"


def start_demo(dataset: Path, where: Path, hash_seed: int, threads: int, start_date: str | None = None) -> subprocess.Popen:
    """`python -m pipeline demo` on `dataset` into a fresh warehouse and Dagster home under `where`."""
    home = where / "dagster_home"
    home.mkdir(parents=True)
    shutil.copy(ROOT / ".dagster_home" / "dagster.yaml", home / "dagster.yaml")
    env = {k: v for k, v in os.environ.items() if not k.startswith("ROTATION_")}
    env |= {"PYTHONPATH": str(ROOT), "DAGSTER_HOME": str(home), "ROTATION_WAREHOUSE": str(where / "rotation.duckdb"),
            "ROTATION_REPLAY_DATA": str(dataset), "ROTATION_CHARTS": "0", "PYTHONHASHSEED": str(hash_seed),
            "POLARS_MAX_THREADS": str(threads)}
    if start_date:
        env["ROTATION_START_DATE"] = start_date
    log = (where / "demo.log").open("w")
    return subprocess.Popen([sys.executable, "-m", "pipeline", "demo"], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)


def tables(path: Path) -> dict[str, pl.DataFrame]:
    """Every table of the warehouse sorted by its key, without the run-dependent columns."""
    con = duckdb.connect(str(path), read_only=True)
    try:
        out = {}
        for table, key in TABLES.items():
            columns = [c for (c,) in con.execute(
                "select column_name from duckdb_columns() where schema_name || '.' || table_name = ? order by column_index",
                [table]).fetchall()]
            kept = [c for c in columns if c not in RUN_DEPENDENT | RUN_DEPENDENT_IN.get(table, set())]
            out[table] = con.sql("select " + ", ".join(quoted_column(c, columns) for c in kept) + " from "
                                 + quoted_table(table) + " order by " + ", ".join(quoted_column(k, key) for k in key)).pl()
        return out
    finally:
        con.close()


def nightly_runs(dataset: Path, tmp_path: Path, start_date: str | None = None) -> list[dict[str, pl.DataFrame]]:
    """The demo run once per RUNS entry, concurrently, each in its own process and warehouse."""
    runs = [(tmp_path / f"seed{seed}-threads{threads}", seed, threads) for seed, threads in RUNS]
    procs = [(where, start_demo(dataset, where, seed, threads, start_date)) for where, seed, threads in runs]
    for where, proc in procs:
        assert proc.wait(timeout=900) == 0, (where / "demo.log").read_text()[-3000:]
    return [tables(where / "rotation.duckdb") for where, _ in procs]


def assert_identical(first: dict[str, pl.DataFrame], other: dict[str, pl.DataFrame]) -> None:
    differing = []
    for table, rows in first.items():
        try:
            assert_frame_equal(rows, other[table], check_exact=True)
        except AssertionError as exc:
            differing.append(f"{table}: {str(exc).splitlines()[0]}")
    assert not differing, "tables that differ between runs:\n" + "\n".join(differing)


def test_the_nightly_writes_identical_rows_in_fresh_processes_on_the_synthetic_market(reference_market, tmp_path):
    first, second = nightly_runs(reference_market, tmp_path)
    # the comparison is of a whole night: marts, recommendations, orders and backtest all written
    for table in ("marts.sector_weights", "marts.rotation_recommendation", "marts.portfolio_orders",
                  "marts.backtest_daily", "marts.backtest_trades"):
        assert first[table].height > 0, table
    assert_identical(first, second)


def test_the_nightly_writes_identical_rows_in_fresh_processes_on_the_real_history(real, tmp_path):
    first, second = nightly_runs(REAL_DATA, tmp_path, REAL_START)
    assert first["marts.backtest_daily"]["strategy"].n_unique() == 6
    assert first["marts.backtest_trades"].height > 0
    assert_identical(first, second)
