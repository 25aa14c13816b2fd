"""Operating it: a run killed with SIGKILL mid-ingest leaves no partial partition and the next run
finishes the job; a reader holding the published snapshot and a run writing in another process never
lock each other out; a second run on a warehouse being written is refused, naming the first.

The runs are real `dagster asset materialize` processes (their own DAGSTER_HOME and warehouse) on a
small synthetic market. The test watches them through their Dagster event log and the file system,
never by opening the warehouse while a run holds it: DuckDB lets nobody else in, even read-only.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import polars as pl
import pytest
from polars.testing import assert_frame_equal

from assets.partitions import month_key
from pipeline.resources import AnalyticsSettings, MarketSources, QualitySettings, WarehouseResource
from pipeline.sources.replay.synthetic import generate
from warehouse import Warehouse
from warehouse.db import TABLES

ROOT = Path(__file__).resolve().parents[1]
AS_OF = dt.date(2025, 6, 30)
WINDOW = (dt.date(2025, 6, 1), AS_OF)  # the days of the run that gets killed: its one month partition
# Columns that say when and by which run a row was written: they differ between two clean runs.
VOLATILE = {"raw.ohlcv_1d": ("ingested_at",), "raw.funding_rates": ("ingested_at",), "raw.defi_tvl": ("ingested_at",),
            "raw.btc_dominance": ("ingested_at",), "raw.market_caps": ("ingested_at",),
            "raw.coin_categories": ("ingested_at",), "raw.quarantine": ("run_id", "quarantined_at")}
LOCK_ERROR = re.compile(r"could not set lock|conflicting lock|lock on file", re.IGNORECASE)
# Every funding-history request waits 5 s: the perps are fetched 16 at a time, so the run is still
# fetching (the next 16) some 5 s after the first 3 are logged.
SLOW_FUNDING = "latency=5:/fapi/v1/fundingRate"


@pytest.fixture(scope="module")
def market(tmp_path_factory) -> Path:
    return generate(tmp_path_factory.mktemp("ops") / "synthetic", AS_OF, seed=5, years=0.4)


@pytest.fixture
def instance(tmp_path):
    """A Dagster instance of its own (telemetry off) that the runs record into and the test reads."""
    home = tmp_path / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\nnux:\n  enabled: false\n")
    with dg.DagsterInstance.from_config(str(home)) as instance:
        yield instance


# ------------------------------------------------------------------ runs in another process


@dataclass
class Run:
    """A `dagster asset materialize` process, the file its output goes to, and the ids of the runs
    its instance held before (the run it starts is the one that is not among them)."""

    process: subprocess.Popen
    log: Path
    earlier: set[str]

    def output(self) -> str:
        return self.log.read_text()

    def wait(self, timeout_s: float = 300) -> int:
        try:
            return self.process.wait(timeout=timeout_s)
        finally:
            self.stop()

    def stop(self) -> None:
        if self.process.poll() is None:
            self.kill()

    def kill(self) -> None:
        """SIGKILL the run and everything it started (Dagster's compute-log `tail`s), and wait until
        they are all gone."""
        with contextlib.suppress(ProcessLookupError):  # it may have ended on its own just now
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=30)
        deadline = time.monotonic() + 10
        while group_members(self.process.pid):
            assert time.monotonic() < deadline, f"alive after SIGKILL: {group_members(self.process.pid)}"
            time.sleep(0.05)

    def wait_for(self, instance: dg.DagsterInstance, what: str, seen: Callable[[list[dg.EventLogEntry]], bool],
                 timeout_s: float = 180) -> list[dg.EventLogEntry]:
        """Poll this run's event log until `seen` holds."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            self.assert_running(what)
            ours = [r for r in instance.get_runs(limit=len(self.earlier) + 1) if r.run_id not in self.earlier]
            if ours:
                logs = list(instance.all_logs(ours[0].run_id))
                if seen(logs):
                    return logs
            time.sleep(0.05)
        raise AssertionError(f"no {what} within {timeout_s} s:\n{self.output()[-3000:]}")

    def spin_until(self, what: str, reached: Callable[[], bool], timeout_s: float = 60) -> None:
        """Check every 0.2 ms: a DuckDB commit and its checkpoint last a few milliseconds."""
        deadline = time.monotonic() + timeout_s
        while not reached():
            self.assert_running(what)
            assert time.monotonic() < deadline, f"no {what} within {timeout_s} s"
            time.sleep(0.0002)

    def assert_running(self, what: str) -> None:
        code = self.process.poll()
        assert code is None, f"the run ended (exit {code}) before {what}:\n{self.output()[-3000:]}"


def start_run(instance: dg.DagsterInstance, warehouse: Path, market: Path, window: tuple[dt.date, dt.date],
              faults: list[str] | None = None) -> Run:
    """The nightly job as on the night after `window`'s last day, over its months, in a process group
    of its own, output into a log file."""
    home = Path(instance.root_directory)
    config = {"resources": {"sources": {"config": {"faults": faults or [], "until": window[1].isoformat()}}}}
    env = {**os.environ, "DAGSTER_HOME": str(home), "ROTATION_WAREHOUSE": str(warehouse),
           "ROTATION_REPLAY_DATA": str(market), "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1",
           "DAGSTER_EMIT_PARTITION_SUBSET_IN_PLANNED_EVENTS": "true"}
    earlier = {r.run_id for r in instance.get_runs()}
    log = home.parent / f"run-{len(earlier)}.log"
    config_file = log.with_suffix(".json")  # JSON is YAML
    config_file.write_text(json.dumps(config))
    with log.open("w") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "dagster", "job", "execute", "-m", "pipeline.definitions", "-j", "nightly",
             "--tags", json.dumps({"dagster/asset_partition_range_start": month_key(window[0]),
                                   "dagster/asset_partition_range_end": month_key(window[1])}),
             "--config", str(config_file)],
            cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )
    return Run(process, log, earlier)


def group_members(pgid: int) -> list[int]:
    """Live (not zombie) processes of a process group."""
    members = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            state, _, group = stat.read_text().rsplit(")", 1)[1].split()[:3]
        except OSError:
            continue  # ended while we looked
        if int(group) == pgid and state != "Z":
            members.append(int(stat.parent.name))
    return members


def signature(path: Path) -> tuple[int, int] | None:
    try:
        stat = path.stat()
    except FileNotFoundError:
        return None
    return stat.st_size, stat.st_mtime_ns


def committing(warehouse: Path) -> Callable[[], bool]:
    """True once a write commits from now on: DuckDB writes the commit to the WAL file (creating it,
    or rewriting one that an earlier kill left)."""
    wal = warehouse.with_name(warehouse.name + ".wal")
    armed = signature(wal)
    return lambda: signature(wal) not in (None, armed)


def checkpointing(warehouse: Path) -> Callable[[], bool]:
    """True once DuckDB rewrites the database file while a WAL is there: a commit is in the WAL and
    the checkpoint that folds it into the file (and then deletes the WAL) is under way."""
    wal = warehouse.with_name(warehouse.name + ".wal")
    assert signature(wal) is None, "a WAL from before: its commit could not be told from the next one"
    file_at_commit: list[tuple[int, int] | None] = []

    def reached() -> bool:
        if signature(wal) is None:
            file_at_commit.clear()  # no commit yet, or its checkpoint finished unseen: wait for the next
            return False
        if not file_at_commit:
            file_at_commit.append(signature(warehouse))
        return signature(warehouse) != file_at_commit[0]
    return reached


def materialized(logs: list[dg.EventLogEntry]) -> set[str]:
    return {e.dagster_event.asset_key.to_user_string() for e in logs
            if e.dagster_event_type == dg.DagsterEventType.ASSET_MATERIALIZATION}


def started(logs: list[dg.EventLogEntry], step: str) -> bool:
    return any(e.dagster_event_type == dg.DagsterEventType.STEP_START and e.step_key == step for e in logs)


def fetched(logs: list[dg.EventLogEntry], step: str) -> int:
    """How many symbols the step has logged as fetched ("[3/25] BTC/USDT:USDT: 30 new rows")."""
    done = [int(m.group(1)) for e in logs if e.step_key == step and not e.is_dagster_event
            for m in [re.match(r"\[(\d+)/\d+\]", e.user_message)] if m]
    return max(done, default=0)


# ------------------------------------------------------------------ what the warehouse holds


def contents(path: Path) -> dict[str, pl.DataFrame]:
    """Every table's rows in order, without the columns that say when and by which run. Opens the
    file read-write: that it still opens after a kill is part of what is tested."""
    frames = {}
    with Warehouse(path).connect() as con:
        for table in TABLES:
            exclude = "exclude (" + ", ".join(VOLATILE[table]) + ") " if table in VOLATILE else ""
            # identifiers from the TABLES allow-list and the VOLATILE constant, never input
            frames[table] = con.sql("select * " + exclude + "from " + table + " order by all").pl()
    return frames


def held_of(held: dict[str, pl.DataFrame], clean: dict[str, pl.DataFrame]) -> dict[str, str]:
    """Per table: "all" the keys a clean run writes, "none", or "partial" (what must never be)."""
    def state(table: str) -> str:
        keys = list(TABLES[table])
        if held[table].is_empty():
            return "none"
        if held[table].select(keys).equals(clean[table].select(keys)):
            return "all"
        return f"partial: {held[table].height} of {clean[table].height} rows"
    return {table: state(table) for table in TABLES}


def clean_run(market: Path, warehouse: Path, window: tuple[dt.date, dt.date]) -> None:
    """An uninterrupted nightly run as on the night after `window`'s last day, over its months, in
    this process, into `warehouse` (and its snapshot)."""
    from pipeline.definitions import defs

    result = defs.resolve_job_def("nightly").execute_in_process(
        instance=dg.DagsterInstance.ephemeral(),
        resources={"sources": MarketSources(replay_data=str(market), until=window[1].isoformat()), "warehouse": WarehouseResource(path=str(warehouse)),
                   "analytics": AnalyticsSettings(), "quality": QualitySettings()},
        tags={"dagster/asset_partition_range_start": month_key(window[0]),
              "dagster/asset_partition_range_end": month_key(window[1])},
    )
    assert result.success


# ------------------------------------------------------------------ SIGKILL mid-ingest


def test_a_run_killed_mid_ingest_leaves_no_partial_partition_and_the_next_run_completes(market, instance, tmp_path):
    warehouse = tmp_path / "rotation.duckdb"
    wal = warehouse.with_name(warehouse.name + ".wal")
    nothing = {table: "none" for table in TABLES}

    # Kill 1, between two writes: funding is slowed down, so the run is still fetching it when it
    # dies; dominance and TVL have committed (Dagster records a materialization after the write).
    run = start_run(instance, warehouse, market, WINDOW, faults=[SLOW_FUNDING])
    try:
        clean_run(market, tmp_path / "clean.duckdb", WINDOW)  # the reference, while the run starts up
        clean = contents(tmp_path / "clean.duckdb")
        assert clean["raw.ohlcv_1d"]["date"].unique().sort().to_list() == pl.date_range(*WINDOW, eager=True).to_list()
        assert all(clean[t].height for t in ("raw.funding_rates", "raw.defi_tvl", "raw.btc_dominance"))
        # dominance and TVL run beside funding: under load their materializations may be recorded
        # after funding's first perps, so wait for both (funding then has seconds of fetching left)
        written = {"raw/btc_dominance", "raw/defi_tvl"}
        logs = run.wait_for(instance, "3 perps' funding fetched, dominance and TVL written",
                            lambda logs: fetched(logs, "raw__funding_rates") >= 3 and materialized(logs) >= written)
        assert materialized(logs) == written
        run.kill()
    finally:
        run.stop()
    held = held_of(contents(warehouse), clean)
    assert held == {**nothing, "raw.btc_dominance": "all", "raw.defi_tvl": "all"}

    # Kills 2 and 3, during a write. The next run dies while the checkpoint of its funding write
    # rewrites the database file: that commit is in the WAL, so it must count. The run after dies as
    # its candle write commits: that may count or not. Either way every table holds all or none.
    for moment, step, kill_point, durable in (("mid-checkpoint", "raw__funding_rates", checkpointing, True),
                                              ("as a write commits", "raw__ohlcv_1d", committing, False)):
        before = held
        run = start_run(instance, warehouse, market, WINDOW)
        try:
            logs = run.wait_for(instance, f"step {step}", lambda logs, step=step: started(logs, step))
            done = {key.replace("/", ".") for key in materialized(logs)}  # steps that finished before it
            run.spin_until(f"kill point {moment!r}", kill_point(warehouse))
            run.kill()
        finally:
            run.stop()
        wal_left = wal.exists()
        held = held_of(contents(warehouse), clean)  # opening it replays or drops what the WAL holds
        assert set(held.values()) <= {"all", "none"}, held
        assert {t for t, s in held.items() if s == "all"} >= {t for t, s in before.items() if s == "all"}
        assert all(held[t] == "none" for t in TABLES if t.startswith("marts."))  # the marts come later
        kept = [t for t in TABLES if held[t] != before[t] and t not in done]
        print(f"\nkilled {moment}: WAL left behind: {wal_left}; written in full: {kept or 'nothing'}")
        assert len(kept) <= 1, kept  # one write was under way (besides the steps that had finished)
        if durable:
            assert kept == ["raw.funding_rates"], f"killed {moment}, the write whose commit was in the WAL: {held}"

    # The next run over the same range (on whatever WAL the last kill left) finishes, and the
    # warehouse then holds what a clean run writes.
    run = start_run(instance, warehouse, market, WINDOW)
    assert run.wait() == 0, run.output()[-3000:]
    resumed = contents(warehouse)
    assert held_of(resumed, clean) == {table: "all" if clean[table].height else "none" for table in TABLES}
    for table in TABLES:
        try:  # raw rows are the source's, exactly; mart sums may differ in the last bit (Polars sums in parallel)
            assert_frame_equal(resumed[table], clean[table], check_exact=table.startswith("raw."), rel_tol=1e-12)
        except AssertionError as exc:
            raise AssertionError(f"{table}: {exc}") from None


# ------------------------------------------------------------------ snapshot readers vs a run


READER = """
import json, sys, time, pathlib, duckdb
snapshot, stop, queries = sys.argv[1], pathlib.Path(sys.argv[2]), json.loads(sys.argv[3])
answer = lambda con: {name: str(con.execute(sql).fetchone()[0]) for name, sql in queries.items()}
held = duckdb.connect(snapshot, read_only=True)
print(json.dumps(answer(held)), flush=True)
seen, errors, asked = set(), [], 0
while not stop.exists():  # ask all the while the run writes and publishes
    try:
        seen.add(json.dumps(answer(held)))
    except duckdb.Error as exc:
        errors.append(str(exc))
    asked += 1
    time.sleep(0.01)
report = {"seen": sorted(seen), "errors": errors, "asked": asked, "held": answer(held)}
held.close()  # (DuckDB shares one instance per file and process: close it to see the new file)
report["reopened"] = answer(duckdb.connect(snapshot, read_only=True))
print(json.dumps(report), flush=True)
"""
QUERIES = {
    "newest_candle": "select max(date) from raw.ohlcv_1d",
    "candles": "select count(*) from raw.ohlcv_1d",
    "funding_rates": "select count(*) from raw.funding_rates",
    "tvl": "select count(*) from raw.defi_tvl",
    "funding_costs": "select count(*) from marts.funding_costs",
}


def answers(path: Path) -> dict[str, str]:
    with Warehouse(path).connect(read_only=True) as con:
        return {name: str(con.execute(sql).fetchone()[0]) for name, sql in QUERIES.items()}


def test_a_reader_holding_the_snapshot_and_a_run_in_another_process_never_lock_each_other(market, instance, tmp_path):
    warehouse = tmp_path / "rotation.duckdb"
    snapshot = Warehouse(warehouse).snapshot_path
    clean_run(market, warehouse, (dt.date(2025, 6, 19), dt.date(2025, 6, 24)))  # publishes the first snapshot
    before = answers(warehouse)
    assert before["newest_candle"] == "2025-06-24"
    stop = tmp_path / "stop"
    reader = subprocess.Popen([sys.executable, "-c", READER, str(snapshot), str(stop), json.dumps(QUERIES)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert json.loads(reader.stdout.readline()) == before  # the reader holds the snapshot open...
        run = start_run(instance, warehouse, market, (dt.date(2025, 6, 25), AS_OF))  # ...while a run writes
        assert run.wait() == 0, run.output()[-3000:]
        after = answers(warehouse)
        fresh = answers(snapshot)  # a new connection, while the reader still holds the old copy
        stop.touch()
        out, err = reader.communicate(timeout=60)
    finally:
        reader.kill()
    assert reader.returncode == 0, err
    assert not LOCK_ERROR.search(run.output()), run.output()[-3000:]
    assert f"published {snapshot}" in run.output()
    report = json.loads(out)
    assert report["errors"] == []
    assert report["asked"] > 20  # it kept asking while the run went on
    assert [json.loads(s) for s in report["seen"]] == [before]  # the copy it opened never changed under it
    assert report["held"] == before
    assert after["newest_candle"] == str(AS_OF) and int(after["candles"]) > int(before["candles"])
    assert fresh == after  # the next connection sees the new publish
    assert report["reopened"] == after
    assert not list(tmp_path.glob("*.publishing"))


# ------------------------------------------------------------------ two runs on one warehouse


def test_a_second_run_on_a_warehouse_being_written_is_refused_naming_the_first_which_completes(
        market, instance, tmp_path, monkeypatch):
    from tests.conftest import nightly

    warehouse = tmp_path / "rotation.duckdb"
    first = start_run(instance, warehouse, market, WINDOW, faults=[SLOW_FUNDING])
    try:
        # between two of the first run's writes: dominance written, funding still fetching
        first.wait_for(instance, "dominance written while funding is fetched",
                       lambda logs: fetched(logs, "raw__funding_rates") >= 1 and "raw/btc_dominance" in materialized(logs))
        (first_id,) = {r.run_id for r in instance.get_runs()} - first.earlier
        monkeypatch.setenv("ROTATION_WAREHOUSE_WAIT_S", "0.5")
        second = nightly(market, warehouse, *WINDOW)  # in this process, as a second `dagster job execute` would be
        first.assert_running("the second run was refused")
        assert first.wait() == 0, first.output()[-3000:]
    finally:
        first.stop()
    assert not second.success
    errors = [e.event_specific_data.error for e in second.all_events
              if e.event_type == dg.DagsterEventType.RESOURCE_INIT_FAILURE]
    refusals = {error.message for error in errors for error in (error, error.cause) if error and "WarehouseBusy" in error.message}
    assert len(refusals) == 1, errors
    assert refusals.pop().startswith(
        f"warehouse.db.WarehouseBusy: {warehouse} is being written by run {first_id} (pid {first.process.pid}, "
        "`python -m dagster job execute -m pipeline.definitions -j nightly "), errors
    assert not second.get_step_success_events()  # it wrote nothing
    assert not LOCK_ERROR.search(first.output()), first.output()[-3000:]
    assert Warehouse(warehouse).newest("raw.ohlcv_1d") == AS_OF  # the first run's night, all of it
