"""The quality gate in Dagster: a blocking check (ERROR severity) on every raw and mart asset.

The asset validates what it is about to write (raw: with the rows its table holds around the
window; marts: the window's rows) and reports the result as its `quality` check, so a failure stops
everything downstream in the run. Raw rows are written, withheld and quarantined in one transaction.
Each result is also written as a static HTML page in the warehouse's `quality_folder`.
"""

from __future__ import annotations

import datetime as dt
import json
import os
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import polars as pl

from assets.metadata import md_table, table_metadata
from assets.run_context import current_run_id
from pipeline.quality import html
from pipeline.quality.config import QualityConfig
from pipeline.quality.gate import QUARANTINE, GateResult, gate
from pipeline.quality.report import QualityReport
from pipeline.quality.validate import validate
from warehouse import Warehouse

CHECK = "quality"


def check_spec(table: str) -> dg.AssetCheckSpec:
    """The `quality` check of the asset writing `table` ("raw.ohlcv_1d" -> asset raw/ohlcv_1d)."""
    return dg.AssetCheckSpec(
        CHECK, asset=dg.AssetKey(table.split(".")), blocking=True,
        description=f"Great Expectations suite of {table} on the rows this run wrote; blocks downstream on failure.",
    )


def table_key(table: str) -> dg.AssetKey:
    """The asset key of the asset writing `table` ("marts.backtest_daily" -> marts/backtest_daily)."""
    return dg.AssetKey(table.split("."))


def gated_tables(tables: tuple[str, ...], descriptions: dict[str, str], deps: list, group_name: str) -> dict[str, object]:
    """`@dg.multi_asset` arguments of an asset writing several tables, each through the gate: one
    spec per table (its catalogue entry, the team's kinds) and its blocking check."""
    specs = [
        dg.AssetSpec(table_key(t), deps=deps, description=descriptions[t], group_name=group_name, owners=["team:quant"],
                     kinds={"polars", "duckdb"}, metadata=table_metadata(t))
        for t in tables
    ]
    return dict(specs=specs, check_specs=[check_spec(t) for t in tables])


def gated_table(table: str) -> dict[str, object]:
    """`@dg.asset` arguments of the asset that writes `table` through the gate: its blocking check
    and its catalogue entry (table name, columns)."""
    return dict(check_specs=[check_spec(table)], metadata=table_metadata(table))


def held_rows(wh: Warehouse, table: str, window: tuple[dt.date, dt.date], config: QualityConfig) -> pl.DataFrame:
    """The table's rows of `window` and of the gate's lookback before it: what new rows are validated
    with (a gap at the window's first day shows against the rows before it)."""
    return wh.read(table, window[1], since=window[0] - dt.timedelta(days=config.freshness_lookback_days))


def gated_write(
    context: dg.AssetExecutionContext, wh: Warehouse, table: str, new: pl.DataFrame,
    window: tuple[dt.date, dt.date], config: QualityConfig, held: pl.DataFrame | None = None,
    also: dict[str, pl.DataFrame] | None = None,
) -> tuple[GateResult, dg.AssetCheckResult]:
    """Validate `new` with the held rows around `window` (`held_rows`, read here unless the caller
    already has them); write what passes, withhold and quarantine what fails, all in one transaction,
    with the frames `also` (upserted as they are: a side table of the same fetch)."""
    held = held_rows(wh, table, window, config) if held is None else held
    result = gate(table, new, held, window, config, current_run_id(context))
    wh.upsert({table: result.write, QUARANTINE: result.quarantine, **(also or {})}, delete={table: result.withhold})
    return result, check_result(context, wh, result.report, window, result.quarantine.height)


def gated_mart(
    context: dg.AssetExecutionContext, wh: Warehouse, table: str, rows: pl.DataFrame,
    window: tuple[dt.date, dt.date], config: QualityConfig,
) -> tuple[bool, dg.AssetCheckResult]:
    """Validate a mart's window rows; (whether they may be written, the check result). A blocking
    failure writes nothing: the rows from the last good run stay."""
    report = validate(table, rows, config, as_of=window[1])
    return not report.blocking, check_result(context, wh, report, window, 0)


Changes = dict[str, tuple[pl.DataFrame, pl.DataFrame]]


def gated_recompute(
    context: dg.AssetExecutionContext, wh: Warehouse, frames: dict[str, pl.DataFrame],
    window: tuple[dt.date, dt.date], config: QualityConfig, since: dt.date | None = None,
) -> tuple[Changes, dict[str, tuple[bool, dg.AssetCheckResult]]]:
    """Tables recomputed whole (or from day `since` on): per table, what makes it hold its frame
    (rows new or changed, keys that leave: `Warehouse.changes`), and the check of the rows it would write."""
    changes = {t: wh.changes(t, rows, since=since) for t, rows in frames.items()}
    return changes, {t: gated_mart(context, wh, t, changes[t][0], window, config) for t in frames}


def write_changes(wh: Warehouse, changes: Changes, also: dict[str, pl.DataFrame] | None = None) -> None:
    """Write what `gated_recompute` found, and the frames `also` (upserted as they are), all tables
    in one transaction."""
    wh.upsert({t: changed for t, (changed, _) in changes.items()} | (also or {}),
              delete={t: gone for t, (_, gone) in changes.items()})


def write_gated(
    context: dg.AssetExecutionContext, wh: Warehouse, name: str, frames: dict[str, pl.DataFrame],
    window: tuple[dt.date, dt.date], config: QualityConfig, since: dt.date | None = None,
    also: dict[str, pl.DataFrame] | None = None,
) -> Iterator[dg.AssetCheckResult | dg.MaterializeResult]:
    """A multi-asset's tables recomputed whole (or from day `since` on), through the gate together:
    yields each table's check, and returns what was written, with the frames `also` in the same
    transaction; if any check blocks, nothing is (None), and each table gets a result of 0 rows
    written."""
    changes, checks = gated_recompute(context, wh, frames, window, config, since)
    for _, check in checks.values():
        yield check
    if not all(ok for ok, _ in checks.values()):
        context.log.error(f"{name}: a blocking check failed; nothing written, the previous rows stay")
        for table in frames:
            yield dg.MaterializeResult(asset_key=table_key(table), metadata={"table": table, "rows_written": 0})
        return None
    write_changes(wh, changes, also)
    return changes


def check_result(
    context: dg.AssetExecutionContext, wh: Warehouse, report: QualityReport, window: tuple[dt.date, dt.date], quarantined: int
) -> dg.AssetCheckResult:
    span = f"{window[0]} .. {window[1]}"
    page = _publish(wh, report, current_run_id(context), span, quarantined)
    for f in report.failures:
        log = context.log.error if f.action == "block" else context.log.warning
        log(f"quality: {f.headline()}, e.g. {list(f.examples[:2])}")
    context.log.info(f"quality: {report.table}: {html.status(report)} ({report.evaluated} expectations, "
                     f"{report.row_count} rows, {report.seconds.get('gx_validate', 0):.2f} s in GX)")
    metadata: dict[str, object] = {
        "status": html.status(report),
        "rows_validated": report.row_count,
        "expectations": report.evaluated,
        "failed_expectations": len(report.failures),
        "quarantined_rows": quarantined,
        "validation_seconds": round(sum(report.seconds.values()), 3),
        "report": dg.MetadataValue.path(str(page)),
    }
    if report.failures:
        metadata["failures"] = dg.MetadataValue.md(md_table(_failure_table(report), max_rows=50))
    return dg.AssetCheckResult(
        check_name=CHECK,
        asset_key=dg.AssetKey(report.table.split(".")),
        passed=report.success,
        # ERROR blocks downstream; a failure the policy only warns about is reported as WARN
        severity=dg.AssetCheckSeverity.WARN if report.failures and not report.blocking else dg.AssetCheckSeverity.ERROR,
        description=report.summary(),
        metadata=metadata,
    )


def _failure_table(report: QualityReport) -> pl.DataFrame:
    return pl.DataFrame(
        [
            {"action": f.action, "expectation": f.name, "columns": "/".join(f.columns), "gx": f.expectation,
             "rows": f.unexpected_count, "examples": f.error or "; ".join(str(e) for e in f.examples[:3])}
            for f in report.failures
        ]
    )


def _publish(wh: Warehouse, report: QualityReport, run_id: str, span: str, quarantined: int) -> Path:
    """Write the table's page and refresh the index (each replaced atomically)."""
    folder = wh.quality_folder
    folder.mkdir(parents=True, exist_ok=True)
    now = dt.datetime.now(dt.UTC)
    page = folder / f"{report.table}.html"
    _replace(page, html.table_page(report, run_id, now, span, quarantined))
    statuses = html.read_statuses(folder)
    statuses[report.table] = (html.status(report), f"{now:%Y-%m-%d %H:%M} UTC")
    _replace(folder / html.STATUS_FILE, json.dumps(statuses, indent=1))
    _replace(folder / "index.html", html.index_page(statuses))
    return page


def _replace(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)
