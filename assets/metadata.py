"""Metadata helpers: frames as Markdown tables a person can read in the Dagster UI."""

import polars as pl


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
