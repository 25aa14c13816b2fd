"""The read-only snapshot: a reader in another process holds it open while the writer writes and
publishes again; neither side hits DuckDB's lock, and the reader's next connection sees the new data."""

from __future__ import annotations

import datetime as dt
import subprocess
import sys

import polars as pl

from warehouse import Warehouse

READER = """
import sys, time, pathlib, duckdb
snapshot, go = sys.argv[1], pathlib.Path(sys.argv[2])
held = duckdb.connect(snapshot, read_only=True)
count = lambda con: con.execute("select count(*) from raw.btc_dominance").fetchone()[0]
print(count(held), flush=True)
while not go.exists():
    time.sleep(0.05)
print(count(held), flush=True)  # the copy it opened: unchanged under it
held.close()  # (DuckDB shares one instance per file and process: close it to see the new file)
print(count(duckdb.connect(snapshot, read_only=True)), flush=True)  # a new connection: the new copy
"""


def dominance(days: range) -> pl.DataFrame:
    first = dt.date(2024, 1, 1)
    return pl.DataFrame({
        "date": [first + dt.timedelta(days=d) for d in days],
        "btc_dominance_pct": [50.0 + d / 10 for d in days],
        "total_market_cap_usd": [2e12] * len(days),
        "source": ["test"] * len(days),
        "ingested_at": [dt.datetime(2024, 2, 1, tzinfo=dt.UTC)] * len(days),
    })


def test_a_reader_holding_the_snapshot_never_blocks_the_writer(tmp_path):
    wh = Warehouse(tmp_path / "rotation.duckdb")
    wh.upsert({"raw.btc_dominance": dominance(range(3))})
    snapshot = wh.publish_snapshot()
    assert snapshot == tmp_path / "rotation_read.duckdb"
    go = tmp_path / "go"
    reader = subprocess.Popen([sys.executable, "-c", READER, str(snapshot), str(go)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert reader.stdout.readline().strip() == "3"  # the reader holds the snapshot open...
        wh.upsert({"raw.btc_dominance": dominance(range(3, 5))})  # ...while this process writes
        wh.publish_snapshot()  # ...and publishes over it
        assert wh.query("select count(*) from raw.btc_dominance").item() == 5
        go.touch()
        out, err = reader.communicate(timeout=60)
    finally:
        reader.kill()
    assert reader.returncode == 0, err
    assert out.split() == ["3", "5"]  # after the first line read above
    assert not list(tmp_path.glob("*.publishing"))


def test_publishing_twice_in_a_row_and_reading_while_the_writer_holds_its_file(tmp_path):
    """A reader opens the snapshot even while the writer's own connection is open (another file)."""
    wh = Warehouse(tmp_path / "rotation.duckdb")
    wh.upsert({"raw.btc_dominance": dominance(range(2))})
    wh.publish_snapshot()
    wh.publish_snapshot()
    with wh.connect():  # the writer's lock on rotation.duckdb
        count = subprocess.run(
            [sys.executable, "-c", "import duckdb,sys; print(duckdb.connect(sys.argv[1], read_only=True)"
             ".execute('select count(*) from raw.btc_dominance').fetchone()[0])", str(wh.snapshot_path)],
            capture_output=True, text=True, timeout=60,
        )
        assert count.returncode == 0, count.stderr
        assert count.stdout.strip() == "2"
