"""What each table and column means, read from the comments of `schema/*.sql`.

The schema files are the one place a column is documented; this turns them into data so the
Dagster catalogue (column schema metadata) shows the same words a SQL reader sees in the file.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache

from warehouse.db import SCHEMA_DIR

_CREATE = re.compile(r"CREATE TABLE IF NOT EXISTS (\w+\.\w+) \(")
_COLUMN = re.compile(r"\s*(\w+)\s+([A-Z]+)\b([^-]*)(?:--\s*(.*))?$")


@dataclass(frozen=True)
class Column:
    name: str
    type: str
    nullable: bool
    description: str


@dataclass(frozen=True)
class TableDoc:
    table: str
    description: str  # the comment block above the CREATE TABLE
    columns: tuple[Column, ...]


@cache
def table_docs() -> dict[str, TableDoc]:
    """Every table of the schema files, keyed `schema.table`."""
    docs: dict[str, TableDoc] = {}
    for file in sorted(SCHEMA_DIR.glob("*.sql")):
        comment: list[str] = []
        table, columns = None, []
        for line in file.read_text().splitlines():
            stripped = line.strip()
            if table is None:
                if match := _CREATE.match(stripped):
                    table, columns = match.group(1), []
                elif stripped.startswith("--"):
                    comment.append(stripped.removeprefix("--").strip())
                else:
                    comment = []
                continue
            if stripped.startswith(")"):
                docs[table] = TableDoc(table, " ".join(comment), tuple(columns))
                table, comment = None, []
            elif (match := _COLUMN.match(line)) and match.group(1) != "PRIMARY":
                name, type_, constraints, note = match.groups()
                columns.append(Column(name, type_, "NOT NULL" not in constraints, (note or "").strip()))
    return docs
