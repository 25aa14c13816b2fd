"""What a validation says, in plain Python: frozen so a report can be passed to the quarantine step
or rendered in asset-check metadata without anyone mutating it on the way."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Failure:
    """One failed expectation: where, what, how many rows, which ones, and what the policy does."""

    table: str
    name: str                                 # "<table>.<expectation name>", what the policy keys on
    columns: tuple[str, ...]                  # the table's columns the expectation is about
    expectation: str                          # GX expectation type
    action: str                               # block | warn (the policy's decision)
    keeps_row: bool                           # series-level (gap, staleness): the row stays in the table
    unexpected_count: int
    examples: tuple[dict[str, Any], ...]      # failing rows: key columns + checked columns
    row_indices: tuple[int, ...]              # positions in the frame given to `validate`
    failing_keys: tuple[tuple[Any, ...], ...]  # key values of the failing rows, in row_indices order
    error: str | None = None                  # set when the expectation could not run (e.g. missing column)

    def headline(self) -> str:
        what = self.error or f"{self.unexpected_count} row(s)"
        return f"{self.table}.{'/'.join(self.columns)}: {self.expectation} ({self.name}, {self.action}): {what}"


@dataclass(frozen=True)
class QualityReport:
    table: str
    key: tuple[str, ...]
    success: bool  # every expectation passed
    row_count: int
    evaluated: int
    failures: tuple[Failure, ...]
    # where the time went: prepare (Polars), to_pandas (Arrow), gx_validate; not part of equality
    seconds: dict[str, float] = field(default_factory=dict, compare=False, hash=False)

    @property
    def blocking(self) -> tuple[Failure, ...]:
        return tuple(f for f in self.failures if f.action == "block")

    @property
    def failing_rows(self) -> tuple[int, ...]:
        """All row positions that failed any expectation, sorted."""
        return tuple(sorted({i for f in self.failures for i in f.row_indices}))

    @property
    def withheld_rows(self) -> tuple[int, ...]:
        """Rows that failed a row-level expectation: they stay out of the table (quarantined)."""
        return tuple(sorted({i for f in self.failures if not f.keeps_row for i in f.row_indices}))

    def summary(self) -> str:
        if self.success:
            return f"{self.table}: {self.evaluated} expectations passed on {self.row_count} rows"
        lines = [f"{self.table}: {len(self.failures)} of {self.evaluated} expectations failed on {self.row_count} rows"]
        lines += [f"- {f.headline()}, e.g. {list(f.examples[:2])}" for f in self.failures]
        return "\n".join(lines)
