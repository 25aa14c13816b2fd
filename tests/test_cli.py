"""What a user types: settings from the environment, `python -m pipeline sql`, Dagster's validator."""

import datetime as dt
import os
import re
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest

from pipeline.demo import other_datasets
from pipeline.settings import Settings, SettingsError
from tests.test_warehouse import candles
from warehouse import Warehouse

ROOT = Path(__file__).resolve().parents[1]


def test_settings_default_to_an_offline_replay():
    settings = Settings.from_env({})
    assert settings.sources == "replay"
    assert (settings.exchange, settings.perp_exchange) == ("binance", "binanceusdm")
    assert settings.warehouse_path == ROOT / "warehouse" / "rotation.duckdb"


@pytest.mark.parametrize(
    ("env", "variable"),
    [({"ROTATION_SOURCES": "internet"}, "ROTATION_SOURCES"), ({"ROTATION_START_DATE": "yesterday"}, "ROTATION_START_DATE")],
)
def test_a_bad_setting_names_its_variable(env, variable):
    with pytest.raises(SettingsError, match=variable):
        Settings.from_env(env)


def _cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "pipeline", *args], cwd=ROOT, capture_output=True, text=True, timeout=120,
        env={**os.environ, "PYTHONPATH": str(ROOT), **env},
    )


def test_sql_reads_the_published_snapshot_while_the_writer_holds_the_warehouse(warehouse_path):
    wh = Warehouse(warehouse_path)
    wh.upsert({"raw.ohlcv_1d": candles(3, close=123.5)})
    wh.publish_snapshot()
    with wh.connect():  # a run holding the writer's lock
        done = _cli("sql", "select symbol, count(*) as n, max(close) from raw.ohlcv_1d group by all",
                    env={"ROTATION_WAREHOUSE": str(warehouse_path)})
    assert done.returncode == 0, done.stderr
    assert "BTC/USDT" in done.stdout and "123.5" in done.stdout


def test_summary_reads_the_published_snapshot_while_the_writer_holds_the_warehouse(warehouse_path):
    wh = Warehouse(warehouse_path)
    wh.upsert({"raw.ohlcv_1d": candles(3, close=123.5)})
    wh.publish_snapshot()
    wh.upsert({"raw.ohlcv_1d": candles(5, close=99.0)})  # written after the snapshot: not in it
    with wh.connect():  # a run holding the writer's lock
        done = _cli("summary", env={"ROTATION_WAREHOUSE": str(warehouse_path)})
    assert done.returncode == 0, done.stderr
    assert f"Warehouse: {wh.snapshot_path}" in done.stdout
    line = next(row for row in done.stdout.splitlines() if row.startswith("raw.ohlcv_1d"))
    assert line.split()[1] == "3"  # the published rows


def test_sql_without_a_query_is_a_prompt(warehouse_path):
    wh = Warehouse(warehouse_path)
    wh.upsert({"raw.ohlcv_1d": candles(2, close=7.25)})
    wh.publish_snapshot()
    done = subprocess.run(
        [sys.executable, "-m", "pipeline", "sql"], cwd=ROOT, capture_output=True, text=True, timeout=120,
        input="select max(close) as top\nfrom raw.ohlcv_1d;\nselect nope;\n.quit\n",
        env={**os.environ, "PYTHONPATH": str(ROOT), "ROTATION_WAREHOUSE": str(warehouse_path)},
    )
    assert done.returncode == 0, done.stderr
    assert "7.25" in done.stdout and "error:" in done.stdout and "rotation_read.duckdb" in done.stdout


def test_sql_without_a_warehouse_says_to_run_the_demo(tmp_path):
    done = _cli("sql", "select 1", env={"ROTATION_WAREHOUSE": str(tmp_path / "none.duckdb")})
    assert done.returncode == 1
    assert "make demo" in done.stderr


def test_the_demo_will_not_replay_a_dataset_into_a_warehouse_holding_another(warehouse_path, real_data):
    wh = Warehouse(warehouse_path)
    wh.upsert({"raw.ohlcv_1d": candles(3).with_columns(source=pl.lit("fetch_ohlcv@replay:synthetic"))})
    assert other_datasets(wh, "synthetic") == []
    assert other_datasets(wh, "real") == ["synthetic"]
    done = _cli("demo", env={"ROTATION_WAREHOUSE": str(warehouse_path), "ROTATION_REPLAY_DATA": str(real_data)})
    assert done.returncode == 1
    assert "already holds the 'synthetic' data" in done.stderr and "ROTATION_WAREHOUSE=" in done.stderr
    assert wh.query("select count(*) from raw.ohlcv_1d").item() == 3  # nothing written
    wh.upsert({"raw.ohlcv_1d": candles(2, symbol="ETH/USDT")})  # fetched live: no replay tag
    assert other_datasets(wh, "synthetic") == ["live"]


def test_dagster_validates_the_workspace(tmp_path):
    (tmp_path / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    done = subprocess.run(
        [str(Path(sys.executable).with_name("dagster")), "definitions", "validate", "-w", "workspace.yaml"],
        cwd=ROOT, capture_output=True, text=True, timeout=180,
        env={**os.environ, "PYTHONPATH": str(ROOT), "DAGSTER_HOME": str(tmp_path)},
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "All code locations passed validation" in done.stdout + done.stderr


def test_a_repeat_demo_with_nothing_new_skips_the_run(tmp_path):
    """The second `demo` on the same dataset, warehouse, code and configuration publishes nothing new:
    it says which run already did, and shows what that run left."""
    from pipeline.sources.replay.synthetic import generate

    data = generate(tmp_path / "market", dt.date(2025, 6, 30), seed=5, years=0.3)
    home = tmp_path / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    env = {"ROTATION_WAREHOUSE": str(tmp_path / "rotation.duckdb"), "ROTATION_REPLAY_DATA": str(data),
           "DAGSTER_HOME": str(home)}
    first = _cli("demo", env=env)
    assert first.returncode == 0, first.stderr[-3000:]
    assert "Materialising raw/*" in first.stdout
    run_id = re.search(r"\(run ([0-9a-f-]{36})\)", first.stdout).group(1)
    again = _cli("demo", env=env)
    assert again.returncode == 0, again.stderr[-3000:]
    assert f"Nothing new: run {run_id} already published it as of 2025-06-30" in again.stdout
    assert "Materialising" not in again.stdout and f"(run {run_id})" in again.stdout


def test_the_fingerprint_changes_with_the_configuration_not_with_an_api_key(tmp_path):
    from pipeline.fingerprint import fingerprint

    settings = Settings.from_env({})
    playbook = tmp_path / "playbook.yaml"
    playbook.write_text(settings.playbook_path.read_text())
    same = settings.model_copy(update={"playbook_path": playbook})
    assert fingerprint(same) != fingerprint(settings)  # another file is another input, even with the same text
    before = fingerprint(same)
    playbook.write_text(playbook.read_text() + "\n# a user's edit\n")
    assert fingerprint(same) != before
    assert fingerprint(settings.model_copy(update={"coingecko_api_key": "CG-SECRET"})) == fingerprint(settings)


def test_the_summary_covers_every_table_with_a_time_column_but_the_quarantine():
    from pipeline.demo import SERIES
    from warehouse.db import TIME_COLUMN

    assert set(SERIES) == set(TIME_COLUMN) - {"raw.quarantine"}
