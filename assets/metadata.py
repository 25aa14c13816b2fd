"""Metadata helpers: frames as Markdown tables a person can read in the Dagster UI, charts as
Markdown images, and the catalogue entry (table name, column schema) of the table an asset writes."""

from collections.abc import Callable
from types import ModuleType

import dagster as dg
import polars as pl

from pipeline.settings import Settings
from warehouse.catalog import table_docs


def table_metadata(table: str) -> dict[str, object]:
    """Definition metadata of the asset writing `table`: the UI's catalogue shows its columns,
    types and the schema file's comment on each."""
    doc = table_docs()[table]
    columns = [
        dg.TableColumn(c.name, c.type, description=c.description or None,
                       constraints=dg.TableColumnConstraints(nullable=c.nullable))
        for c in doc.columns
    ]
    return {"dagster/table_name": table, "dagster/column_schema": dg.TableSchema(columns=columns)}


def md_table(frame: pl.DataFrame, max_rows: int = 10) -> str:
    """A GitHub-style Markdown table of the first `max_rows` rows."""
    head = frame.head(max_rows)
    cells = [[_fmt(v) for v in row] for row in head.iter_rows()]
    lines = ["| " + " | ".join(head.columns) + " |", "|" + "---|" * len(head.columns)]
    lines += ["| " + " | ".join(row) + " |" for row in cells]
    return "\n".join(lines)


def _fmt(value: object) -> str:
    if isinstance(value, float):
        return f"{value:,.6g}"
    return str(value)


def chart_metadata(draw: Callable[[ModuleType], object], numbers: dict[str, float | None] | None = None) -> dict[str, object]:
    """The asset's chart as a Markdown image (PNG embedded, under 200 kB) and the day's key numbers,
    which Dagster plots across runs. `draw(charts)` gets the `pipeline.charts` module, imported only
    when a chart is wanted (Altair and vl-convert take a second or two to load, and each chart about a
    second to render); ROTATION_CHARTS=0 turns the charts off."""
    metadata: dict[str, object] = {k: dg.MetadataValue.float(float(v)) for k, v in (numbers or {}).items() if v is not None}
    if Settings.from_env().charts:
        from pipeline import charts

        metadata["chart"] = dg.MetadataValue.md(charts.md_image(draw(charts)))
    return metadata
