"""Constituent weights (`marts.sector_weights`): the weight of each member in its sector's return on
day D (its weight at D-1's close), for each weighting. The index's ret_1d is sum(weight * ret_1d) of
these rows, so the table shows what an index is made of, and the quality gate can check that each
day's weights sum to 1."""

from __future__ import annotations

import polars as pl

from pipeline.transforms.config import SectorIndex
from pipeline.transforms.sector_index import GROUP, RETURNING, SIZES, held_targets


def sector_weights(members: pl.LazyFrame, assignments: pl.DataFrame, cfg: SectorIndex) -> pl.LazyFrame:
    """sector, date, weighting, symbol, weight: one row per member whose return counts on `date`.

    `members` is `membership()`'s output. Targets: equal alike, capped by 30-day dollar volume
    (mcap_capped: by market cap) with
    the cap as set when the member's holding started (`held_targets`, as the index uses where the cap
    binds); each drifted by the member's growth since then, as in `sector_index`."""
    returning = (
        members.lazy()
        .filter(RETURNING)
        .select(pl.col("symbol").cast(pl.String), "date", *SIZES.values(), "growth", "held_since")  # symbol is an Enum
        .join(assignments.lazy(), on="symbol")
        .sort(*GROUP, "symbol")  # a day's weights are summed in symbol order, whatever order the join gave
    )
    targets = {
        "equal": lambda: returning.with_columns(_target=pl.lit(1.0)),
        **{w: (lambda w=w: held_targets(returning, cfg.max_weight, SIZES[w])) for w in SIZES},
    }
    drifted = pl.col("_target") * pl.col("growth")
    return pl.concat(
        [targets[w]().with_columns(weight=drifted / drifted.sum().over(GROUP), weighting=pl.lit(w)) for w in cfg.weightings]
    ).select("sector", "date", "weighting", "symbol", "weight")
