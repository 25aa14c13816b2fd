"""Metadata helpers: frames as Markdown tables a person can read in the Dagster UI, and the
catalogue entry (table name, column schema) of the table an asset writes."""

import dagster as dg
import polars as pl

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
