"""Connections to the DuckDB warehouse and idempotent upserts through Arrow.

Every write goes through `Warehouse.upsert`: all frames of one call land in one transaction
(all or nothing), replacing rows with the same key, so re-running a partition never duplicates.
Table names are checked against `TABLES`; values only ever travel as parameters or Arrow.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import json
import logging
import os
import shutil
import sys
import threading
import time
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path

import duckdb
import polars as pl

SCHEMA_DIR = Path(__file__).with_name("schema")
DEFAULT_PATH = Path(__file__).with_name("rotation.duckdb")
# How long a writer waits for another process's run on the same warehouse before it refuses.
WAIT_ENV, DEFAULT_WAIT_S = "ROTATION_WAREHOUSE_WAIT_S", 60.0

log = logging.getLogger(__name__)


def _registry() -> tuple[dict[str, tuple[str, ...]], dict[str, str]]:
    """Every table the pipeline writes with its key, and the key's day or time column (how far a
    series goes: where incremental fetches resume), read from the schema files, the one place
    tables are declared (an in-memory database, a few milliseconds)."""
    con = duckdb.connect()
    try:
        apply_schema(con)
        rows = con.execute("""
            select c.schema_name || '.' || c.table_name, c.constraint_column_names,
                   list(col.column_name order by col.column_index) filter (
                       where col.data_type in ('DATE', 'TIMESTAMP', 'TIMESTAMP WITH TIME ZONE')
                       and list_contains(c.constraint_column_names, col.column_name))
            from duckdb_constraints() c join duckdb_columns() col on col.table_oid = c.table_oid
            where c.constraint_type = 'PRIMARY KEY' group by all order by min(c.table_oid)
        """).fetchall()
    finally:
        con.close()
    return {t: tuple(key) for t, key, _ in rows}, {t: times[0] for t, _, times in rows if times}




class WarehouseError(RuntimeError):
    """A write was refused (unknown table, missing columns, duplicate keys); nothing was written."""


class WarehouseBusy(WarehouseError):
    """Another process holds the warehouse's writer lock: this one did not open it, nothing was written."""


def quoted_table(table: str) -> str:
    """`table` as SQL text: only a table of the registry (TABLES), quoted."""
    if table not in TABLES:
        raise WarehouseError(f"unknown table {table!r}; known: {sorted(TABLES)}")
    return ".".join('"' + part + '"' for part in table.split("."))


def quoted_column(name: str, allowed: Iterable[str], alias: str = "") -> str:
    """A column as SQL text (optionally `alias.`-qualified): only one of `allowed`, quoted."""
    if name not in allowed:
        raise WarehouseError(f"unknown column {name!r}")
    return (alias + "." if alias else "") + '"' + name + '"'


def default_path() -> Path:
    return Path(os.environ.get("ROTATION_WAREHOUSE") or DEFAULT_PATH)


def default_wait_s() -> float:
    """ROTATION_WAREHOUSE_WAIT_S, else DEFAULT_WAIT_S: seconds a writer waits for another's run."""
    value = os.environ.get(WAIT_ENV)
    if not value:
        return DEFAULT_WAIT_S
    try:
        wait_s = float(value)
    except ValueError:
        wait_s = -1.0
    if not wait_s >= 0:  # also NaN
        raise WarehouseError(f"{WAIT_ENV}={value!r}: not a number of seconds >= 0")
    return wait_s


class Warehouse:
    def __init__(self, path: str | Path | None = None, wait_s: float | None = None):
        self.path = Path(path) if path else default_path()
        self.wait_s = wait_s

    @contextlib.contextmanager
    def connect(self, read_only: bool = False) -> Iterator[duckdb.DuckDBPyConnection]:
        """A connection; a read-write one under the writer lock (`writing`), so that a second
        writer waits or gets WarehouseBusy, never DuckDB's own lock error."""
        with contextlib.nullcontext() if read_only else self.writing():
            con = duckdb.connect(str(self.path), read_only=read_only)
            try:
                con.execute("SET TimeZone = 'UTC'")
                if not read_only:
                    apply_schema(con)
                yield con
            finally:
                con.close()

    @property
    def lock_path(self) -> Path:
        """rotation.duckdb -> rotation.duckdb.lock, beside it: who writes the warehouse."""
        return self.path.with_name(self.path.name + ".lock")

    @contextlib.contextmanager
    def writing(self, run_id: str | None = None) -> Iterator[None]:
        """Hold the warehouse's writer lock: a run holds it from its first step to its last, so
        nobody else writes between them and its snapshot is of its own writes alone.

        An exclusive `flock` on `lock_path`, which records the holder (run id, pid, command, start)
        for the refusal message of the next writer. That one waits up to `wait_s` (default
        ROTATION_WAREHOUSE_WAIT_S) and then raises WarehouseBusy. The kernel releases the lock when
        its process ends, however it ends: a killed run never blocks the next. Re-entrant within a
        process (the connections of a run, a run inside `make demo`), as DuckDB itself is: one
        database instance per file and process. Readers of the snapshot take no lock."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        key = self.lock_path.resolve()
        wait_s = default_wait_s() if self.wait_s is None else self.wait_s
        deadline, waiting = time.monotonic() + wait_s, False
        while not _take(key, run_id):
            if time.monotonic() >= deadline:
                raise WarehouseBusy(f"{self.path} is being written by {_holder(key)}: wait for it to end, or stop it; "
                                    f"a writer waits up to {wait_s:g} s ({WAIT_ENV})")
            if not waiting:
                log.warning("%s is being written by %s; waiting up to %g s", self.path, _holder(key), wait_s)
                waiting = True
            time.sleep(0.1)
        try:
            yield
        finally:
            _release(key)

    def upsert(self, frames: Mapping[str, pl.DataFrame], delete: Mapping[str, pl.DataFrame] | None = None) -> dict[str, int]:
        """Insert-or-replace every frame into its table, all in one transaction; rows per table.
        `delete` maps a table to the keys of rows that leave it, first, in the same transaction."""
        delete = {t: keys for t, keys in (delete or {}).items() if keys.height}
        for table, frame in [*frames.items(), *delete.items()]:
            _check_frame(table, frame)
        written: dict[str, int] = {}
        with self.connect() as con:
            con.execute("BEGIN TRANSACTION")
            try:
                for table, keys in delete.items():
                    con.register("leaving", keys.select(TABLES[table]).to_arrow())
                    match = " and ".join(quoted_column(k, TABLES[table], "t") + " = " + quoted_column(k, TABLES[table], "leaving")
                                         for k in TABLES[table])
                    con.execute("DELETE FROM " + quoted_table(table) + " t USING leaving WHERE " + match)
                    con.unregister("leaving")
                for table, frame in frames.items():
                    if frame.is_empty():
                        written[table] = 0
                        continue
                    con.register("incoming", frame.to_arrow())
                    con.execute("INSERT OR REPLACE INTO " + quoted_table(table) + " BY NAME SELECT * FROM incoming")
                    con.unregister("incoming")
                    written[table] = frame.height
                con.execute("COMMIT")
            except BaseException:
                con.execute("ROLLBACK")
                raise
        return written

    def changes(self, table: str, rows: pl.DataFrame, rel_tol: float = 1e-9,
                since: dt.date | None = None) -> tuple[pl.DataFrame, pl.DataFrame]:
        """What it takes to make `table` hold `rows` (a table recomputed whole, or from day `since`
        on: the days before stay as they are), a day at a time:
        the rows of every day on which the table differs from `rows` (a row new, gone, or with a
        value changed by more than `rel_tol`, since parallel float sums vary in their last bits),
        and the keys the table holds on those days. A night's recompute thus writes, and checks,
        its new day and whatever a backfill or a new configuration changed, each day complete. A
        table without a time column counts as one day."""
        _check_frame(table, rows)
        key, time_col = list(TABLES[table]), TIME_COLUMN.get(table)
        if not self.path.exists():
            return rows, pl.DataFrame(schema={k: rows.schema[k] for k in key})
        with self.connect() as con:
            columns = dict(con.execute(
                "select column_name, data_type from duckdb_columns() where schema_name || '.' || table_name = ?",
                [table]).fetchall())
            if set(rows.columns) - set(columns):
                raise WarehouseError(f"{table}: no column(s) {sorted(set(rows.columns) - set(columns))}")
            con.register("incoming", rows.to_arrow())
            windowed = since is not None and time_col is not None
            held = ("(select * from " + quoted_table(table) + " where " + quoted_column(time_col, columns) + " >= $since)"
                    if windowed else quoted_table(table))

            def col(name: str, alias: str = "") -> str:
                return quoted_column(name, columns, alias)

            def same(c: str) -> str:
                """Incoming and held values of column `c` agree (floats: within the tolerance, a parameter)."""
                equal = col(c, "i") + " is not distinct from " + col(c, "t")
                if columns[c] not in ("DOUBLE", "FLOAT"):
                    return equal
                return ("(" + equal + " or abs(" + col(c, "i") + " - " + col(c, "t") + ") <= $tol * greatest(abs("
                        + col(c, "i") + "), abs(" + col(c, "t") + ")))")

            keys = ", ".join(col(k) for k in key)
            joined = (" from incoming i full join " + held + " t on "
                      + " and ".join(col(k, "i") + " = " + col(k, "t") for k in key)
                      + " where " + col(key[0], "i") + " is null or " + col(key[0], "t") + " is null"
                      + "".join(" or not " + same(c) for c in rows.columns if c not in key))
            params = {"tol": rel_tol} | ({"since": since} if windowed else {})
            if time_col is None:
                differs = con.execute("select count(*)" + joined, params).fetchall()[0][0] > 0
                stale = con.sql("select " + keys + " from " + quoted_table(table)).pl() if differs else None
                con.unregister("incoming")
                return (rows, stale) if differs else (rows.clear(), pl.DataFrame(schema={k: rows.schema[k] for k in key}))
            day = "coalesce(" + col(time_col, "i") + ", " + col(time_col, "t") + ")"
            days = con.sql("select distinct " + day + " as day" + joined, params=params).pl()
            con.register("days", days.to_arrow())
            stale = con.sql("select " + keys + " from " + quoted_table(table) + " where " + col(time_col)
                            + " in (select day from days)").pl()
            con.unregister("incoming")
            con.unregister("days")
        return rows.filter(pl.col(time_col).is_in(days["day"].implode())), stale

    def fingerprint(self, until: dt.date, tables: Mapping[str, Mapping[str, str]]) -> str:
        """`rows:hash` per table of every row up to and including day `until` (`tables` maps a table
        to its column = value conditions): the same text while those rows are the same, whatever
        their order. What a run resuming from stored state checks its inputs with (the nightly
        rewrites a row only when a value moves by more than `changes`' tolerance)."""
        parts = []
        with self.connect() as con:
            for table, equals in tables.items():
                where, params = _up_to(table, until, None, equals)
                sql = "select count(*), coalesce(sum(hash(t)::hugeint), 0) from " + quoted_table(table) + " t" + where
                rows, total = con.execute(sql, params).fetchone()
                parts.append(f"{table} {rows}:{total}")
        return "; ".join(parts)

    def newest(self, table: str, **equals: str) -> dt.date | None:
        """The newest day `table` holds (its time column's maximum, as a UTC day), optionally where
        column = value; None when empty."""
        time_col = TIME_COLUMN.get(table)
        if time_col is None or not set(equals) <= set(TABLES[table]):
            raise WarehouseError(f"{table}: not a table with a time column, or {tuple(equals)} not among its keys; "
                                 f"known: {sorted(TIME_COLUMN)}")
        if not self.path.exists():
            return None
        # Identifiers from the registry (`quoted_table`, `quoted_column`); values are parameters.
        where = " where " + " and ".join(quoted_column(c, TABLES[table]) + " = ?" for c in equals) if equals else ""
        return self.query("select max(" + quoted_column(time_col, TABLES[table]) + ")::date from " + quoted_table(table) + where,
                          list(equals.values())).item()

    def read(self, table: str, until: dt.date, since: dt.date | None = None, read_only: bool = False,
             **equals: str) -> pl.DataFrame:
        """Every row of `table` up to and including day `until` (and from day `since`, optionally where
        column = value), ordered by key: what a point-in-time computation as of `until` may see.
        `read_only` for a reader of the snapshot (the writer's connection creates missing tables)."""
        where, params = _up_to(table, until, since, equals)
        key = TABLES[table]
        sql = "select * from " + quoted_table(table) + where + " order by " + ", ".join(quoted_column(k, key) for k in key)
        with self.connect(read_only=read_only) as con:
            return con.sql(sql, params=params).pl()

    def spans(self, tables: Iterable[str], until: dt.date) -> pl.DataFrame:
        """table, rows, first, last (UTC days): what each table holds up to and including `until`."""
        tables = list(tables)
        if not set(tables) <= set(TIME_COLUMN):
            raise WarehouseError(f"{sorted(set(tables) - set(TIME_COLUMN))}: not tables with a time column")
        # Table names travel as parameters; as identifiers they come from the registry (`quoted_table`, `quoted_column`).
        parts, params = [], {"until": until}
        for n, t in enumerate(tables):
            time_col = quoted_column(TIME_COLUMN[t], TABLES[t])
            parts.append("select $t" + str(n) + " as table_name, count(*) as rows, min(" + time_col + ")::date as first, max("
                         + time_col + ")::date as last from " + quoted_table(t) + " where " + time_col + "::date <= $until")
            params["t" + str(n)] = t
        sql = " union all ".join(parts)
        return self.query(sql, params) if tables else pl.DataFrame()

    def last_closes(self, day: dt.date, exchange: str, symbols: list[str]) -> pl.DataFrame:
        """symbol, date, close: each symbol's newest candle on or before `day` (older than `day` when
        it did not trade that day; absent when it never traded). What a portfolio is valued at."""
        return self.query(
            "select symbol, max(date) as date, arg_max(close, date) as close from raw.ohlcv_1d"
            " where exchange = ? and date <= ? and list_contains(?, symbol) group by symbol order by symbol",
            [exchange, day, symbols],
        )

    @property
    def snapshot_path(self) -> Path:
        """The read-only copy readers use: rotation.duckdb -> rotation_read.duckdb, beside it."""
        return self.path.with_name(self.path.stem + "_read" + self.path.suffix)

    @property
    def report_folder(self) -> Path:
        """Where this warehouse's report pages go: `report/` beside the default rotation.duckdb,
        `<name>_report/` beside any other (real.duckdb -> real_report/), so that two warehouses in
        one folder never show each other's pages."""
        return self._pages("report")

    @property
    def quality_folder(self) -> Path:
        """Where this warehouse's quality pages and verdicts go: `quality/`, or `<name>_quality/`."""
        return self._pages("quality")

    def _pages(self, kind: str) -> Path:
        stem = self.path.stem
        return self.path.with_name(kind if stem == DEFAULT_PATH.stem else f"{stem}_{kind}")

    def publish_snapshot(self) -> Path:
        """Copy the whole warehouse into a new file beside it and rename that over the snapshot.

        DuckDB lets one process hold a file read-write and then nobody else may open it, even
        read-only; readers open the snapshot instead. The rename is atomic: a reader that has the
        old snapshot open keeps reading it, the next connection sees the new one.

        The copy is of the file's bytes, made after a checkpoint while this connection holds the
        lock, so nobody writes meanwhile: 0.03 s for five years of history where `COPY FROM DATABASE`
        took 0.9 s (P3)."""
        target = self.snapshot_path
        staging = target.with_name(target.name + ".publishing")
        staging.unlink(missing_ok=True)
        with self.connect() as con:
            con.execute("FORCE CHECKPOINT")
            wal = self.path.with_name(self.path.name + ".wal")
            if wal.exists() and wal.stat().st_size > 0:
                raise WarehouseError(f"{wal} is not empty after a checkpoint: the snapshot would miss its writes")
            shutil.copyfile(self.path, staging)
        with open(staging, "rb") as copy:
            os.fsync(copy.fileno())  # on disk before it is renamed into place
        os.replace(staging, target)
        return target

    def query(self, sql: str, params: list | dict | None = None) -> pl.DataFrame:
        with self.connect(read_only=self.path.exists()) as con:
            return con.sql(sql, params=params or None).pl()


# lock file -> [its descriptor, depth, its record]: the writer locks this process holds (re-entrant, any thread)
_HELD: dict[Path, list] = {}
_HELD_GUARD = threading.Lock()


def _take(lock: Path, run_id: str | None) -> bool:
    """Take the writer lock `lock` (or go one deeper into this process's hold); False when another
    process holds it. A run id given by an inner hold (a run inside `make demo`) joins the record."""
    with _HELD_GUARD:
        held = _HELD.get(lock)
        if held is None:
            fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                return False
            record = {"run_id": None, "pid": os.getpid(), "command": _command(),
                      "started": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")}
            held = _HELD[lock] = [fd, 0, record]
        fd, depth, record = held
        held[1] = depth + 1
        if depth == 0 or run_id and record["run_id"] != run_id:
            record["run_id"] = run_id or record["run_id"]
            os.ftruncate(fd, 0)
            os.pwrite(fd, json.dumps(record).encode(), 0)
        return True


def _command() -> str:
    """This process's command line as typed ("python -m pipeline demo"), on one line, cut to 200 characters."""
    line = " ".join(" ".join([Path(sys.orig_argv[0]).name, *sys.orig_argv[1:]]).split())
    return line if len(line) <= 200 else line[:199] + "…"


def _release(lock: Path) -> None:
    with _HELD_GUARD:
        held = _HELD[lock]
        held[1] -= 1
        if not held[1]:
            del _HELD[lock]
            os.close(held[0])  # closing the only descriptor releases the flock


def _holder(lock: Path) -> str:
    """Who holds the writer lock, as its record says: "run <id> (pid <pid>, `<command>`, started <time>)"."""
    try:
        record = json.loads(lock.read_text())
    except (OSError, ValueError):  # written just now, or by nothing yet
        return "another process"
    who = f"run {record['run_id']}" if record.get("run_id") else "a process"
    return f"{who} (pid {record.get('pid')}, `{record.get('command')}`, started {record.get('started')})"


def _up_to(table: str, until: dt.date, since: dt.date | None, equals: Mapping[str, str]) -> tuple[str, list]:
    """(` where ...`, its parameters): the rows of `table` up to and including day `until`, from day
    `since`, where column = value. Identifiers from the registry (`quoted_column`); values are parameters."""
    time_col = TIME_COLUMN.get(table)
    if time_col is None or not set(equals) <= set(TABLES[table]):
        raise WarehouseError(f"{table}: not readable by time, or {tuple(equals)} not among its keys")
    key = TABLES[table]
    time_col = quoted_column(time_col, key)
    conditions = [time_col + " < ?"] + [time_col + " >= ?"] * (since is not None) + [quoted_column(c, key) + " = ?" for c in equals]
    params = [until + dt.timedelta(days=1), *([since] if since is not None else []), *equals.values()]
    return " where " + " and ".join(conditions), params


def apply_schema(con: duckdb.DuckDBPyConnection) -> None:
    """Create what is missing; every statement in schema/*.sql is idempotent."""
    for file in sorted(SCHEMA_DIR.glob("*.sql")):
        con.execute(file.read_text())


def _check_frame(table: str, frame: pl.DataFrame) -> None:
    if table not in TABLES:
        raise WarehouseError(f"unknown table {table!r}; writable tables: {sorted(TABLES)}")
    if frame.is_empty():
        return  # nothing new: a frame without rows may also be without columns
    key = TABLES[table]
    missing = [c for c in key if c not in frame.columns]
    if missing:
        raise WarehouseError(f"{table}: frame lacks key column(s) {missing}")
    if frame.select(key).is_duplicated().any():
        dupes = frame.filter(frame.select(key).is_duplicated()).select(key).head(3).to_dicts()
        raise WarehouseError(f"{table}: duplicate keys in one write, e.g. {dupes}")
    nulls = [c for c in key if frame[c].null_count()]
    if nulls:
        raise WarehouseError(f"{table}: null key values in {nulls}")


# table -> key columns: the allow-list of tables the pipeline writes; table -> its time column.
TABLES, TIME_COLUMN = _registry()
