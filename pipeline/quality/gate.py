"""The quality gate of a raw table: validate what a run fetched together with what the table holds
around it, and decide what gets written, what leaves the table, and what goes to the quarantine.

Rows that fail a row-level expectation never reach the table (or leave it, if held): they are kept
in `raw.quarantine` with their payload for a person to look at. Series-level findings (a gap, a
stale symbol) are quarantined as a record while the row stays. The policy only decides whether a
failure blocks the run or warns; either way the rows are handled the same.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import polars as pl

from pipeline.quality.config import QualityConfig
from pipeline.quality.report import QualityReport
from pipeline.quality.spec import day
from pipeline.quality.validate import TABLES, validate

QUARANTINE = "raw.quarantine"
QUARANTINE_SCHEMA = {
    "table_name": pl.String,
    "row_key": pl.String,  # JSON of the key columns
    "expectation": pl.String,  # "<table>.<name>", as the policy names it
    "gx_expectation": pl.String,
    "columns": pl.String,
    "action": pl.String,  # block | warn
    "kept_in_table": pl.Boolean,
    "payload": pl.String,  # JSON of the row as fetched (ingested_at aside); floats as text so NaN and inf survive
    "run_id": pl.String,
    "quarantined_at": pl.Datetime("us", "UTC"),
}
QUARANTINE_KEY = ("table_name", "row_key", "expectation", "payload")
NEW = "_new"


@dataclass(frozen=True)
class GateResult:
    report: QualityReport
    write: pl.DataFrame  # the fetched rows that may enter the table
    withhold: pl.DataFrame  # keys of held rows that now fail and leave the table
    quarantine: pl.DataFrame  # rows for raw.quarantine (QUARANTINE_SCHEMA)


def gate(
    table: str,
    new: pl.DataFrame,
    held: pl.DataFrame,
    window: tuple[dt.date, dt.date],
    config: QualityConfig,
    run_id: str,
    now: dt.datetime | None = None,
) -> GateResult:
    """`new`: rows fetched this run; `held`: the table's rows from the lookback before `window` to its
    end (a fetched row replaces a held one with the same key). Validates the window's rows and every
    fetched row: a fetch that resumes at a hole in the lookback (a day held back on a month's last
    night) brings rows from before the window, which must pass before they are written."""
    key = list(TABLES[table].key)
    if new.width == 0:  # nothing fetched: still validate the window (freshness)
        new = held.clear()
    new = new.cast({c: t for c, t in held.schema.items() if c in new.columns})  # as the table stores them
    parts = [held.join(new.select(key).unique(), on=key, how="anti").with_columns(pl.lit(False).alias(NEW))] if held.height else []
    if new.height:
        parts.append(new.with_columns(pl.lit(True).alias(NEW)))
    merged = pl.concat(parts, how="diagonal_relaxed") if parts else new.with_columns(pl.lit(True).alias(NEW))
    first_fetched = new.select(day(TABLES[table].time, new.schema).min()).item() if new.height else None
    checked = (min(window[0], first_fetched), window[1]) if first_fetched else window
    report = validate(table, merged.drop(NEW), config, as_of=window[1], window=checked)

    withheld = pl.Series(report.withheld_rows, dtype=pl.UInt32)
    indexed = merged.with_row_index("_row")
    leaving = indexed.filter(pl.col("_row").is_in(withheld.implode()))
    write = indexed.filter(pl.col(NEW) & ~pl.col("_row").is_in(withheld.implode())).drop("_row", NEW)
    withhold = leaving.filter(~pl.col(NEW)).select(key)
    return GateResult(report, write, withhold, _quarantine(indexed, report, key, run_id, now or dt.datetime.now(dt.UTC)))


def _quarantine(indexed: pl.DataFrame, report: QualityReport, key: list[str], run_id: str, now: dt.datetime) -> pl.DataFrame:
    rows = []
    floats = [c for c, t in indexed.schema.items() if t.is_float()]
    payload_columns = [c for c in indexed.columns if c not in ("_row", NEW, "ingested_at")]
    for f in report.failures:
        if not f.row_indices:
            continue
        failing = indexed.filter(pl.col("_row").is_in(pl.Series(f.row_indices, dtype=pl.UInt32).implode()))
        rows.append(
            failing.select(
                row_key=pl.struct(key).struct.json_encode(),
                payload=pl.struct(
                    *(pl.col(c).cast(pl.String) if c in floats else pl.col(c) for c in payload_columns)
                ).struct.json_encode(),
            ).with_columns(
                table_name=pl.lit(report.table),
                expectation=pl.lit(f.name),
                gx_expectation=pl.lit(f.expectation),
                columns=pl.lit("/".join(f.columns)),
                action=pl.lit(f.action),
                kept_in_table=pl.lit(f.keeps_row),
                run_id=pl.lit(run_id),
                quarantined_at=pl.lit(now).cast(pl.Datetime("us", "UTC")),
            )
        )
    if not rows:
        return pl.DataFrame(schema=QUARANTINE_SCHEMA)
    # one record per row and expectation; duplicate copies of a key differ in their payload
    return pl.concat(rows).select(list(QUARANTINE_SCHEMA)).unique(list(QUARANTINE_KEY), keep="last", maintain_order=True)
