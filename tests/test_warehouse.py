"""Warehouse writes: upserts replace on the key, are idempotent, and are all-or-nothing; one
process writes a warehouse at a time, and a second one waits or is told which run holds it."""

import datetime as dt
import os
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

import polars as pl
import pytest

from warehouse import Warehouse, WarehouseBusy, WarehouseError

ROOT = Path(__file__).resolve().parents[1]

NOW = dt.datetime(2025, 1, 1, tzinfo=dt.UTC)


def candles(days: int, close: float = 100.0, symbol: str = "BTC/USDT") -> pl.DataFrame:
    dates = [dt.date(2024, 1, 1) + dt.timedelta(days=i) for i in range(days)]
    return pl.DataFrame(
        {
            "exchange": "binance", "symbol": symbol, "date": dates,
            "open": close, "high": close + 1, "low": close - 1, "close": close, "volume": 10.0,
            "source": "test", "ingested_at": NOW,
        }
    )


def test_upsert_twice_leaves_one_row_per_key_with_the_newest_values(warehouse_path):
    wh = Warehouse(warehouse_path)
    wh.upsert({"raw.ohlcv_1d": candles(10)})
    wh.upsert({"raw.ohlcv_1d": candles(12, close=200.0)})
    got = wh.query("select count(*) n, count(distinct date) d, min(close) lo, max(close) hi from raw.ohlcv_1d")
    assert got.row(0) == (12, 12, 200.0, 200.0)


def test_a_failing_write_leaves_every_table_as_it_was(warehouse_path):
    wh = Warehouse(warehouse_path)
    wh.upsert({"raw.ohlcv_1d": candles(3)})
    dominance = pl.DataFrame(
        {"date": [dt.date(2024, 1, 1)], "btc_dominance_pct": [50.0], "total_market_cap_usd": [1e12],
         "source": "test", "ingested_at": NOW}
    )
    # the second frame has a column the table does not have: the insert fails mid-transaction
    broken = candles(1, symbol="ETH/USDT").with_columns(pl.lit(1).alias("not_a_column"))
    with pytest.raises(Exception, match="not_a_column"):
        wh.upsert({"raw.btc_dominance": dominance, "raw.ohlcv_1d": broken})
    assert wh.query("select count(*) from raw.btc_dominance").item() == 0
    assert wh.query("select count(*) from raw.ohlcv_1d").item() == 3


@pytest.mark.parametrize(
    ("table", "frame", "message"),
    [
        ("raw.nope", candles(1), "unknown table"),
        ("raw.ohlcv_1d", candles(1).drop("date"), "lacks key column"),
        ("raw.ohlcv_1d", pl.concat([candles(2), candles(1)]), "duplicate keys"),
        ("raw.ohlcv_1d", candles(1).with_columns(pl.lit(None, pl.Date).alias("date")), "null key"),
    ],
)
def test_bad_frames_are_refused_before_anything_is_written(warehouse_path, table, frame, message):
    wh = Warehouse(warehouse_path)
    with pytest.raises(WarehouseError, match=message):
        wh.upsert({table: frame})
    assert not warehouse_path.exists() or wh.query("select count(*) from raw.ohlcv_1d").item() == 0


def test_the_warehouse_path_comes_from_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("ROTATION_WAREHOUSE", str(tmp_path / "elsewhere.duckdb"))
    assert Warehouse().path == tmp_path / "elsewhere.duckdb"


def test_an_empty_write_is_a_no_op(warehouse_path):
    wh = Warehouse(warehouse_path)
    wh.upsert({"raw.ohlcv_1d": candles(2)})
    assert wh.upsert({"raw.ohlcv_1d": pl.DataFrame(), "raw.btc_dominance": pl.DataFrame()}) == {
        "raw.ohlcv_1d": 0, "raw.btc_dominance": 0,
    }
    assert wh.query("select count(*) from raw.ohlcv_1d").item() == 2


def test_newest_is_the_tables_last_day_and_only_for_allow_listed_tables(warehouse_path):
    wh = Warehouse(warehouse_path)
    assert wh.newest("raw.ohlcv_1d") is None  # no file yet
    wh.upsert({"raw.ohlcv_1d": pl.concat([candles(10), candles(4, symbol="ETH/USDT")])})
    assert wh.newest("raw.ohlcv_1d") == dt.date(2024, 1, 10)
    assert wh.newest("raw.btc_dominance") is None  # the table exists, empty
    for name in ("raw.quarantine", "raw.ohlcv_1d; drop table raw.ohlcv_1d", "main.secrets"):
        with pytest.raises(WarehouseError, match="not a table with a time column"):
            wh.newest(name)
    assert wh.newest("raw.ohlcv_1d") == dt.date(2024, 1, 10)


def test_changes_gives_the_complete_days_that_differ_and_a_recompute_of_the_same_rows_writes_nothing(warehouse_path):
    """A table recomputed whole is written a day at a time: the days with a new, gone or changed
    row (floats beyond their last bits), complete; then the table holds exactly the new rows."""
    wh = Warehouse(warehouse_path)
    held = pl.concat([candles(3, close=100.0), candles(3, close=50.0, symbol="ETH/USDT")])
    wh.upsert({"raw.ohlcv_1d": held})
    assert [f.height for f in wh.changes("raw.ohlcv_1d", held)] == [0, 0]
    day = held["date"].unique().sort()
    fresh = (
        held.filter(pl.col("date") != day[2])  # day 3 is gone
        .with_columns(close=pl.when((pl.col("date") == day[1]) & (pl.col("symbol") == "ETH/USDT")).then(51.0)
                      .otherwise(pl.col("close") * (1 + 1e-13)))  # day 2: ETH changed; day 1: its last bits
    )
    fresh = pl.concat([fresh, candles(4, close=60.0, symbol="SOL/USDT").filter(pl.col("date") == day[0] + dt.timedelta(days=3))])
    write, stale = wh.changes("raw.ohlcv_1d", fresh)
    assert sorted(set(write["date"])) == [day[1], day[0] + dt.timedelta(days=3)]  # day 2 whole (BTC too), day 4
    assert write.height == 3
    assert sorted(zip(stale["symbol"], stale["date"])) == sorted((s, d) for s in ("BTC/USDT", "ETH/USDT") for d in day[1:])
    wh.upsert({"raw.ohlcv_1d": write}, delete={"raw.ohlcv_1d": stale})
    stored = wh.query("select symbol, date, close from raw.ohlcv_1d order by all")
    assert stored.height == fresh.height and stored.filter(pl.col("date") == day[2]).is_empty()
    assert stored.filter((pl.col("symbol") == "ETH/USDT") & (pl.col("date") == day[1]))["close"].item() == 51.0
    # without a time column the table is one day: all of it when anything differs
    summary = pl.DataFrame({"strategy": ["a", "b"], "cagr": [0.1, 0.2]})
    assert wh.changes("marts.backtest_summary", summary)[0].height == 2


def test_the_readme_lists_every_table_with_its_key_as_the_schema_files_declare_it():
    """The README's tables of the warehouse are the schema files' tables and keys (warehouse.db reads them)."""
    import re
    from pathlib import Path

    from warehouse.db import TABLES

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    listed = {m[0]: tuple(k.strip() for k in m[1].split(",")) for m in re.findall(r"^\| `((?:raw|marts)\.\w+)` \| ([^|]+) \|", readme, re.M)}
    assert listed == TABLES


def test_sql_names_only_registered_tables_and_columns_and_spans_report_each_table(warehouse_path):
    """Identifiers reach SQL only through the registry (quoted); values, table names in results
    included, as parameters."""
    wh = Warehouse(warehouse_path)
    wh.upsert({"raw.ohlcv_1d": candles(3)})
    spans = wh.spans(["raw.ohlcv_1d", "raw.funding_rates"], dt.date(2030, 1, 1))
    assert spans.select("table_name", "rows").rows() == [("raw.ohlcv_1d", 3), ("raw.funding_rates", 0)]
    with pytest.raises(WarehouseError):  # a name outside the registry never becomes SQL text
        wh.read("raw.ohlcv_1d", dt.date(2024, 2, 1), **{"exchange = exchange or 1": "x"})
    with pytest.raises(WarehouseError):
        wh.changes("raw.ohlcv_1d", candles(1).rename({"volume": "volume; drop table raw.ohlcv_1d"}))
    assert wh.query("select count(*) n from raw.ohlcv_1d").item() == 3


# ------------------------------------------------------------------ one writer at a time

# A writer in another process, as a run is: it holds the warehouse (`writing`, what a run's
# warehouse resource does) across two writes, and waits for a line on stdin between them.
HOLDER = """
import sys, polars as pl
from warehouse import Warehouse
path, first, second = sys.argv[1:4]
wh = Warehouse(path)
with wh.writing(run_id="run-one"):
    wh.upsert({"raw.ohlcv_1d": pl.read_parquet(first)})
    print("holding", flush=True)
    sys.stdin.readline()
    wh.upsert({"raw.ohlcv_1d": pl.read_parquet(second)})
print("done", flush=True)
"""


def start_holder(warehouse_path: Path, tmp_path: Path) -> subprocess.Popen:
    """The writer above, once it holds the warehouse with BTC's candles written; ETH's follow on a line."""
    first, second = tmp_path / "first.parquet", tmp_path / "second.parquet"
    candles(3).write_parquet(first)
    candles(3, symbol="ETH/USDT").write_parquet(second)
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(warehouse_path), str(first), str(second)],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)})
    line = holder.stdout.readline().strip()
    if line != "holding":
        holder.kill()
        raise AssertionError(holder.stderr.read())
    return holder


def symbols(wh: Warehouse) -> list[tuple[str, int]]:
    return wh.query("select symbol, count(*) from raw.ohlcv_1d group by symbol order by symbol").rows()


def test_a_second_writer_is_refused_naming_the_run_that_holds_the_warehouse_and_the_first_completes(warehouse_path, tmp_path):
    holder = start_holder(warehouse_path, tmp_path)
    try:
        second = Warehouse(warehouse_path, wait_s=0.3)
        asked = time.monotonic()
        with pytest.raises(WarehouseBusy) as refused:
            second.upsert({"raw.ohlcv_1d": candles(3, symbol="SOL/USDT")})
        assert time.monotonic() - asked >= 0.3  # it waited that long first
        out, err = holder.communicate("\n", timeout=60)
    finally:
        holder.kill()
    assert re.match(rf"{re.escape(str(warehouse_path))} is being written by run run-one \(pid {holder.pid}, "
                    r"`python[\d.]* -c .*`, started \d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC\): wait for it to end", str(refused.value))
    assert "ROTATION_WAREHOUSE_WAIT_S" in str(refused.value)
    assert holder.returncode == 0, err
    assert out.split() == ["done"]
    assert symbols(second) == [("BTC/USDT", 3), ("ETH/USDT", 3)]  # the first's writes, all; none of the refused
    second.upsert({"raw.ohlcv_1d": candles(3, symbol="SOL/USDT")})  # the first is done: the second writes
    assert symbols(second)[-1] == ("SOL/USDT", 3)


def test_a_second_writer_waits_for_the_first_to_end_and_then_writes(warehouse_path, tmp_path):
    holder = start_holder(warehouse_path, tmp_path)
    try:
        threading.Timer(0.5, lambda: holder.communicate("\n", timeout=60)).start()
        asked = time.monotonic()
        Warehouse(warehouse_path, wait_s=60).upsert({"raw.ohlcv_1d": candles(3, symbol="SOL/USDT")})
        waited = time.monotonic() - asked
        holder.wait(timeout=60)
    finally:
        holder.kill()
    assert holder.returncode == 0
    assert 0.5 <= waited < 30
    assert symbols(Warehouse(warehouse_path)) == [("BTC/USDT", 3), ("ETH/USDT", 3), ("SOL/USDT", 3)]


def test_a_writer_killed_while_it_holds_the_warehouse_does_not_block_the_next(warehouse_path, tmp_path):
    holder = start_holder(warehouse_path, tmp_path)
    holder.kill()  # SIGKILL: no code of its own runs; the kernel drops its lock
    holder.wait(timeout=60)
    Warehouse(warehouse_path, wait_s=0).upsert({"raw.ohlcv_1d": candles(3, symbol="SOL/USDT")})
    assert symbols(Warehouse(warehouse_path)) == [("BTC/USDT", 3), ("SOL/USDT", 3)]


@pytest.mark.parametrize("value", ["soon", "-1", "nan"])
def test_a_wait_that_is_not_seconds_is_refused_by_name(warehouse_path, monkeypatch, value):
    monkeypatch.setenv("ROTATION_WAREHOUSE_WAIT_S", value)
    with pytest.raises(WarehouseError, match=f"ROTATION_WAREHOUSE_WAIT_S='{value}': not a number of seconds >= 0"):
        Warehouse(warehouse_path).upsert({"raw.ohlcv_1d": candles(1)})
    assert not warehouse_path.exists()


def test_make_demo_on_a_warehouse_being_written_stops_at_once_naming_the_holder(warehouse_path, tmp_path, monkeypatch):
    from pipeline.__main__ import main

    monkeypatch.setenv("ROTATION_WAREHOUSE", str(warehouse_path))
    monkeypatch.setenv("ROTATION_WAREHOUSE_WAIT_S", "0.2")
    holder = start_holder(warehouse_path, tmp_path)
    try:
        with pytest.raises(SystemExit) as stopped:
            main(["demo"])
        out, err = holder.communicate("\n", timeout=60)
    finally:
        holder.kill()
    assert str(stopped.value).startswith(f"{warehouse_path} is being written by run run-one (pid {holder.pid}, ")
    assert holder.returncode == 0, err
    assert symbols(Warehouse(warehouse_path)) == [("BTC/USDT", 3), ("ETH/USDT", 3)]  # the demo wrote nothing
