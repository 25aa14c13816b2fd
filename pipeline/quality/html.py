"""The quality gate's human-readable report: one static HTML page per table (its latest validation)
and an index, written beside the warehouse (in its own `Warehouse.quality_folder`) so anyone can
open them without Dagster or GX."""

from __future__ import annotations

import datetime as dt
import json
from html import escape
from pathlib import Path

from pipeline.quality.report import QualityReport

STYLE = """body{font:14px system-ui,sans-serif;margin:2em;max-width:70em}table{border-collapse:collapse;margin:.5em 0}
td,th{border:1px solid #ccc;padding:.25em .6em;text-align:left;vertical-align:top}.pass{color:#1a7f37}
.warn{color:#9a6700}.block{color:#cf222e}code{font-size:12px}"""


def status(report: QualityReport) -> str:
    """pass | warn | block: what the run did with this table's rows."""
    return "block" if report.blocking else "warn" if report.failures else "pass"


def table_page(report: QualityReport, run_id: str, when: dt.datetime, window: str, quarantined: int) -> str:
    rows = "".join(
        f"<tr><td class={f.action}>{f.action}</td><td><code>{escape(f.name)}</code></td><td>{escape('/'.join(f.columns))}</td>"
        f"<td><code>{escape(f.expectation)}</code></td><td>{f.unexpected_count:,}</td>"
        f"<td><code>{escape(f.error or '; '.join(str(e) for e in f.examples))}</code></td></tr>"
        for f in report.failures
    )
    failures = (
        "<table><tr><th>action</th><th>expectation</th><th>columns</th><th>GX type</th><th>rows</th><th>examples</th></tr>"
        f"{rows}</table>" if rows else "<p>Every expectation passed.</p>"
    )
    s = status(report)
    return _page(
        f"{report.table}: {s}",
        f"<h1>{escape(report.table)}: <span class={s}>{s}</span></h1>"
        f"<p>{report.evaluated} expectations on {report.row_count:,} rows of {escape(window)}; run <code>{escape(run_id)}</code>"
        f" at {when:%Y-%m-%d %H:%M} UTC; {quarantined:,} row(s) quarantined (see <code>raw.quarantine</code>).</p>"
        f"{failures}<p><a href=index.html>all tables</a></p>",
    )


STATUS_FILE = "status.json"


def read_statuses(folder: Path) -> dict[str, tuple[str, str]]:
    """table -> (status, when) of every table's latest validation, as the index lists them."""
    path = folder / STATUS_FILE
    return {t: tuple(v) for t, v in json.loads(path.read_text()).items()} if path.exists() else {}


def index_page(statuses: dict[str, tuple[str, str]]) -> str:
    """`statuses`: table -> (status, when)."""
    rows = "".join(
        f"<tr><td><a href='{escape(t)}.html'>{escape(t)}</a></td><td class={s}>{s}</td><td>{escape(w)}</td></tr>"
        for t, (s, w) in sorted(statuses.items())
    )
    return _page("data quality", f"<h1>Data quality</h1><table><tr><th>table</th><th>last result</th><th>at</th></tr>{rows}</table>")


def _page(title: str, body: str) -> str:
    return f"<!doctype html><html><head><meta charset=utf-8><title>{escape(title)}</title><style>{STYLE}</style></head><body>{body}</body></html>\n"
