"""Constituent weights (`marts.sector_weights`): the weight of each member in its sector's return on
day D, for each weighting. The index's ret_1d is sum(weight * ret_1d) of these rows, so the table
shows what an index is made of, and the quality gate can check that each day's weights sum to 1."""

from __future__ import annotations

import polars as pl

from pipeline.transforms.config import SectorIndex
from pipeline.transforms.sector_index import GROUP, capped_weights


def sector_weights(members: pl.LazyFrame, assignments: pl.DataFrame, cfg: SectorIndex) -> pl.LazyFrame:
    """sector, date, weighting, symbol, weight: one row per member whose return counts on `date`.

    `members` is `membership()`'s output; equal = 1/n, capped = by 30-day dollar volume with the cap
    (the same `capped_weights` the index uses where the cap binds)."""
    returning = (
        members.lazy()
        .filter(pl.col("in_return") & pl.col("ret_1d").is_not_null())
        .select(pl.col("symbol").cast(pl.String), "date", "score_usd")  # membership's symbol is an Enum
        .join(assignments.lazy(), on="symbol")
    )
    weights = {
        "equal": lambda: returning.with_columns(weight=1.0 / pl.len().over(GROUP)),
        "capped": lambda: capped_weights(returning, "score_usd", GROUP, cfg.max_weight),
    }
    return pl.concat(
        [weights[w]().with_columns(weighting=pl.lit(w)) for w in cfg.weightings]
    ).select("sector", "date", "weighting", "symbol", "weight")
