"""Where an incremental fetch of a series resumes inside a run's window: at its first hole.

Resuming after the newest row held is not enough: a row the quality gate rejected leaves a hole that
such a fetch never asks for again (and the candles' `no_gap` check then blocks every later night). A
series resumes after the last row it holds before its first hole instead, a hole being two held rows
further apart than 1.5 steps (a day; a perp's funding interval). Only holes that reach into the
window count, so a gap the source itself has costs a refetch of the run's months at most (one
request per series a month), never of years; a series holding nothing in the window resumes after
its newest row of the lookback before it, which is where the gate's `no_gap` looks.
"""

from __future__ import annotations

import datetime as dt

import polars as pl

DAY = pl.duration(days=1)


def resume_after(
    held: pl.DataFrame, series: list[str], time_col: str, window_start: dt.date, step: pl.Expr = DAY
) -> dict[tuple, object]:
    """(series values) -> the held time its fetch resumes after: the row before the series' first hole
    reaching into the window, else its newest row, which may lie in the lookback before the window: a
    row the gate held back on a month's last day is asked for again by the next month's first night.
    A series the lookback does not hold is absent (its fetch starts at the window's first day).

    `held`: the table's rows of the window and of a lookback before it (a hole at the window's first
    day shows against the rows before it); `step`: the spacing of a series' rows, per row.
    """
    if held.is_empty():
        return {}
    keys = series or ["_series"]
    start = pl.lit(window_start).cast(held.schema[time_col])
    previous = pl.col(time_col).shift(1).over(keys, order_by=time_col)
    rows = held.with_columns(pl.lit(0).alias("_series")).select(
        *keys, time_col, previous.alias("_previous"), (pl.col(time_col) - previous > step * 1.5).alias("_hole"),
    )
    after = (
        rows.group_by(keys)
        .agg(
            pl.col("_previous").filter(pl.col("_hole") & (pl.col(time_col) >= start)).min().alias("_before_hole"),
            pl.col(time_col).max().alias("_newest"),
        )
        .select(*keys, pl.coalesce("_before_hole", "_newest").alias("_after"))
    )
    return {row[:-1] if series else (): row[-1] for row in after.iter_rows()}
