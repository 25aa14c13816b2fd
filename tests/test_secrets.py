"""API keys come only from the environment and go only to the APIs: a night run with recognisable
fake keys (which the replay accepts and ignores) leaves them in no log line, no run record or
metadata, no warehouse table and no page it writes."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
from pathlib import Path

import polars as pl
import polars.selectors as cs

from pipeline.sources.replay.synthetic import generate
from warehouse import TABLES, Warehouse

ROOT = Path(__file__).resolve().parents[1]
SECRETS = {
    "BINANCE_API_KEY": "FAKE-binance-key-7f3a91", "BINANCE_API_SECRET": "FAKE-binance-secret-c24e08",
    "BINANCEUSDM_API_KEY": "FAKE-usdm-key-5b6d17", "BINANCEUSDM_API_SECRET": "FAKE-usdm-secret-e90a44",
    "COINGECKO_API_KEY": "CG-FAKE-coingecko-key-31d5c2", "COINMARKETCAP_API_KEY": "FAKE-cmc-key-8e02b7",
}


def test_api_keys_reach_no_log_no_run_record_no_table_and_no_page(tmp_path):
    data = generate(tmp_path / "market", dt.date(2025, 6, 30), seed=5, years=0.3)
    home = tmp_path / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    warehouse = tmp_path / "out" / "rotation.duckdb"
    done = subprocess.run(
        [sys.executable, "-m", "pipeline", "demo"], cwd=ROOT, capture_output=True, text=True, timeout=600,
        env={**os.environ, **SECRETS, "PYTHONPATH": str(ROOT), "DAGSTER_HOME": str(home),
             "ROTATION_WAREHOUSE": str(warehouse), "ROTATION_REPLAY_DATA": str(data)},
    )
    assert done.returncode == 0, done.stderr[-3000:]  # the replay accepted the keys and ignored them
    assert "Materialising raw/*" in done.stdout
    secrets = [value.encode() for value in SECRETS.values()]
    assert not [s for s in secrets if s in (done.stdout + done.stderr).encode()]  # every log line of the run
    # the run's records (event log, run storage, tags, metadata) and every file the run wrote beside the
    # warehouse (the report, the quality pages, the snapshot)
    files = [p for folder in (home, warehouse.parent) for p in folder.rglob("*") if p.is_file()]
    assert any(p.suffix == ".html" for p in files) and any(p.suffix == ".db" for p in files)
    leaks = [(p.name, s) for p in files for s in secrets if s in p.read_bytes()]
    assert not leaks
    wh = Warehouse(warehouse)  # and no value of any table (DuckDB may compress what a byte scan sees)
    for table in TABLES:
        text = wh.query("select * from " + table).select(cs.string(include_categorical=True))
        cells = {cell for col in text.iter_columns() for cell in col.drop_nulls().cast(pl.String).to_list()}
        assert not [v for v in SECRETS.values() for cell in cells if v in cell], table
