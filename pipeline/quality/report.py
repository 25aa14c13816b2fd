"""What a validation says, in plain Python: frozen so a report can be passed to a quarantine step
or rendered in asset-check metadata without anyone mutating it on the way."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Failure:
    """One failed expectation: where, what, how many rows, and which ones."""

    table: str
    columns: tuple[str, ...]
    expectation: str
    unexpected_count: int
    examples: tuple[dict[str, Any], ...]      # failing rows: key columns + checked columns
    row_indices: tuple[int, ...]              # positions in the frame given to `validate`
    failing_keys: tuple[tuple[Any, ...], ...]  # key values of the failing rows, in row_indices order
    error: str | None = None                  # set when the expectation could not run (e.g. missing column)


@dataclass(frozen=True)
class QualityReport:
    table: str
    key: tuple[str, ...]
    success: bool
    row_count: int
    evaluated: int
    failures: tuple[Failure, ...]
    # where the time went: prepare (Polars), to_pandas (Arrow), gx_validate; not part of equality
    seconds: dict[str, float] = field(default_factory=dict, compare=False, hash=False)

    @property
    def failing_rows(self) -> tuple[int, ...]:
        """All row positions that failed any expectation, sorted: what a quarantine would hold back."""
        return tuple(sorted({i for f in self.failures for i in f.row_indices}))

    def summary(self) -> str:
        if self.success:
            return f"{self.table}: {self.evaluated} expectations passed on {self.row_count} rows"
        lines = [f"{self.table}: {len(self.failures)} of {self.evaluated} expectations failed on {self.row_count} rows"]
        for f in self.failures:
            what = f.error or f"{f.unexpected_count} rows, e.g. {list(f.examples[:2])}"
            lines.append(f"- {self.table}.{'/'.join(f.columns)}: {f.expectation}: {what}")
        return "\n".join(lines)
