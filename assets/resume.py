"""Where a night resumes instead of recomputing from the first day: a path-dependent computation (the
model's holds, the backtest's books) stores its state at the newest day with a fingerprint of
everything it was computed from up to that day; the next night resumes from it only when the same
inputs give the same fingerprint (a backfill, a restated row, a new playbook, universe or code
replay every day instead). The states are tables of their own, written in the transaction of the
tables they belong to; they have no quality check (a state that does not match its inputs is not
used). The fingerprint of the newest day is taken before the computation reads its inputs: a row
restated meanwhile makes the next night's check fail, and it replays."""

import datetime as dt
import hashlib
from collections.abc import Callable
from pathlib import Path

import dagster as dg
import polars as pl

from assets.metadata import table_metadata
from assets.quality import table_key
from warehouse.db import Warehouse, quoted_table

ROOT = Path(__file__).parents[1]
# What every state's fingerprint covers besides its own code: this module and how rows are read.
SHARED_CODE = (__file__, str(ROOT / "warehouse" / "db.py"))


def fingerprint(wh: Warehouse, day: dt.date, tables: dict[str, dict[str, str]], texts: list[str],
                code: tuple[str, ...]) -> str:
    """SHA-256 of the rows of `tables` up to `day` (`Warehouse.fingerprint`), `texts` (settings) and the
    source of `code` (folders, relative to the project's root, or files) and SHARED_CODE: what
    computes the state, so that a new version of it replays from the first day."""
    files = [f for path in (*code, *SHARED_CODE) for f in
             (sorted((ROOT / path).glob("*.py")) if (ROOT / path).is_dir() else [Path(path)])]
    return hashlib.sha256("\n".join([wh.fingerprint(day, tables), *texts, *(f.read_text() for f in files)]).encode()).hexdigest()


def stored_state(wh: Warehouse, table: str, of: str, last: dt.date, inputs: Callable[[dt.date], str]) -> pl.DataFrame | None:
    """The rows of the state `table` when they may be resumed from: all of one day, up to `last`, the
    newest day of the table `of` they belong to, and written from the inputs that `inputs(day)`
    fingerprints now; else None (replay from the first day)."""
    held = wh.query("select * from " + quoted_table(table))
    if held.is_empty() or held["date"].n_unique() != 1:
        return None
    day = held["date"][0]
    if day > last or wh.newest(of) != day or set(held["inputs"]) != {inputs(day)}:
        return None
    return held


def state_spec(table: str, deps: list, group_name: str, description: str) -> dg.AssetSpec:
    """The state table's catalogue entry, beside the gated tables of its asset."""
    return dg.AssetSpec(table_key(table), deps=deps, description=description, group_name=group_name,
                        owners=["team:quant"], kinds={"duckdb"}, metadata=table_metadata(table))
