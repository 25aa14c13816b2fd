"""Sector indices (`marts.sector_index`): one level series per sector and weighting, rebased to 100.

On day D a sector's return is the weighted return of the tokens that were members at D-1's close
(see `membership.py`). The index is rebalanced monthly: at each month's rebalance (the close before
its first day) every member is set to its target weight, and from there its weight drifts with its
price, as a portfolio bought at the targets and held would (a member's target times its `growth`
since then, normalised). A token that joins mid-month comes in at its target against the others'
rebalance-day weights; one that leaves frees its weight to the rest pro rata. A member's target
is set when its holding starts and kept to its end (see `held_targets`). Targets: `equal` weights
members alike; `mcap_capped` by market cap (the newest snapshot's) and `capped` by 30-day average
dollar volume, each fixed monthly on data known at the rebalance, with no constituent above `max_weight` (excess
redistributed pro rata; the cap holds on the day the targets are set, drift and leavers may carry
a member past it until the next rebalance). Besides the universe's sectors: BTC, ETH and an alts-ex-BTC/ETH
composite, to compare against.
"""

from __future__ import annotations

import math

import polars as pl

from pipeline.transforms import ENGINE
from pipeline.transforms.config import SectorIndex

GROUP = ["sector", "date"]
# The capped weightings and the size each weights its members by (fixed at the monthly rebalance).
SIZES = {"capped": "score_usd", "mcap_capped": "score_mcap"}
RETURNING = pl.col("in_return") & pl.col("ret_1d").is_not_null()  # member rows whose ret_1d counts


def sector_assignments(tokens: pl.DataFrame, cfg: SectorIndex) -> pl.DataFrame:
    """(symbol, sector) pairs: each token's own sector, plus the BTC, ETH and alts composites."""
    own = tokens.select("symbol", "sector")
    btc_eth = tokens.filter(pl.col("token").is_in([cfg.btc, cfg.eth])).select(
        "symbol", sector=pl.col("token")
    )
    alts = tokens.filter(~pl.col("token").is_in([cfg.btc, cfg.eth, *cfg.excluded_tokens])).select(
        "symbol", sector=pl.lit(cfg.alts)
    )
    return pl.concat([own, btc_eth, alts]).unique(maintain_order=True)


def _size(score: str) -> pl.Expr:
    return pl.col(score).fill_null(0.0).clip(lower_bound=1e-12)  # a zero-volume member keeps a sliver


def _cap(max_weight: float, n: pl.Expr) -> pl.Expr:
    return pl.max_horizontal(pl.lit(max_weight), 1.0 / n)


def _binds(largest: pl.Expr, total: pl.Expr, cap: pl.Expr) -> pl.Expr:
    """Whether the cap binds: the largest constituent's proportional weight is over it."""
    return largest / total > cap * (1 + 1e-9)


def capped_weights(frame: pl.LazyFrame, score: str, group: list[str], max_weight: float) -> pl.LazyFrame:
    """Adds `weight`: proportional to `score` within `group`, none above max_weight, excess spread pro rata.

    Water-filling: a constituent over the cap is pinned at it and the rest re-scaled; at most
    floor(1 / max_weight) can be pinned, so that many passes (+1) always converge. Where the cap
    cannot hold (fewer than 1 / max_weight constituents) it relaxes to 1/n, i.e. equal weights.
    Only the groups whose largest constituent is over the cap go through the passes (in the rest
    the first weights are final). A larger score is never pinned later than a smaller one, so a
    group's outcome is three numbers: the smallest pinned size, how many are pinned, the free sum.
    """
    size = _size(score)
    cap = _cap(max_weight, pl.len().over(group))
    total = size.sum().over(group)
    frame = frame.with_columns(
        _size=size,
        _cap=cap,
        weight=size / total,
        _capping=_binds(size.max().over(group), total, cap),
    ).cache()  # read twice below
    capping = frame.filter(pl.col("_capping")).select(*group, "_size", "_cap", "weight", _pinned=pl.lit(False))
    free = pl.when(~pl.col("_pinned")).then(pl.col("_size")).otherwise(0.0)
    for _ in range(math.floor(1 / max_weight) + 1):
        capping = capping.with_columns(
            _pinned=pl.col("_pinned") | (pl.col("weight") > pl.col("_cap") * (1 + 1e-9))
        ).with_columns(
            weight=pl.when(pl.col("_pinned"))
            .then(pl.col("_cap"))
            .otherwise(free * (1 - pl.col("_cap") * pl.col("_pinned").sum().over(group)) / free.sum().over(group))
        )
    outcome = capping.group_by(group).agg(
        _pinned_from=pl.col("_size").filter("_pinned").min(), _n_pinned=pl.col("_pinned").sum(), _free=free.sum()
    )
    return (
        frame.join(outcome, on=group, how="left", nulls_equal=True, maintain_order="left")
        .with_columns(
            weight=pl.when(pl.col("_free").is_null())
            .then(pl.col("weight"))
            .when(pl.col("_size") >= pl.col("_pinned_from"))
            .then(pl.col("_cap"))
            .otherwise(pl.col("_size") * (1 - pl.col("_cap") * pl.col("_n_pinned")) / pl.col("_free"))
        )
        .drop("_size", "_cap", "_capping", "_pinned_from", "_n_pinned", "_free")
    )


def _sector_enum(assignments: pl.DataFrame) -> pl.Enum:
    """Sectors as an enum while rows are grouped: grouping on its codes is cheaper than hashing
    strings, and sorting its codes sorts the names (the categories are sorted)."""
    return pl.Enum(assignments["sector"].drop_nulls().unique().sort())


def _sector_sets(assignments: pl.DataFrame) -> tuple[pl.DataFrame, pl.LazyFrame]:
    """(_set, symbol) and (_set, sector): the symbols grouped by the exact set of sectors they count in.

    A sector's own tokens also make the alts composite, so ~10 sets cover every (symbol, sector)
    pair: member rows are summed once per (set, date), not once per pair, and sets sum to sectors.
    """
    # numbered and listed in key order: the sums per sector below add the sets up in `_set` order
    sets = (
        assignments.group_by("symbol")
        .agg(pl.col("sector").unique().sort())
        .sort("symbol")
        .group_by("sector")  # a group keeps its rows' (symbol) order; the groups are sorted next
        .agg("symbol")
        .sort("sector")
        .with_row_index("_set")
    )
    symbols = sets.select("_set", "symbol").explode("symbol")
    sectors = sets.lazy().select("_set", "sector").explode("sector")
    return symbols, sectors.with_columns(pl.col("sector").cast(_sector_enum(assignments)))


def sector_days(members: pl.LazyFrame, assignments: pl.DataFrame) -> pl.LazyFrame:
    """sector, date, n_constituents and what either weighting needs for each (sector, date) with
    member rows: the one pass over the member rows. _n, and per capped weighting w _total_w and
    _largest_w (the returning members' count, sizes' sum and largest size) tell whether the cap binds;
    _equal and _weighted_w are the day's return where it does not, equal and size-weighted, each
    with the weights drifted by growth.

    `members` is `membership()`'s output.
    """
    symbols, set_sectors = _sector_sets(assignments)
    members = members.lazy()
    # A lookup by the symbol's Enum code, not a join: no member column is moved.
    codes = pl.DataFrame({"symbol": members.collect_schema()["symbol"].categories})
    set_of_code = codes.join(symbols, on="symbol", how="left", maintain_order="left")["_set"]
    sized = list(SIZES)  # every size is summed: a weighting not asked for costs a few sums
    rows = members.select(
        "date",
        "eligible",
        _set=pl.lit(set_of_code).gather(pl.col("symbol").to_physical()),
        _ret=pl.when(RETURNING).then("ret_1d"),
        _growth=pl.when(RETURNING).then("growth"),
        **{f"_size_{w}": pl.when(RETURNING).then(_size(SIZES[w])) for w in sized},
    )
    # Per (set, date), then per (sector, date) from the sets': sums and a max add up; a weighted
    # mean is then one sum over another.
    sums = {"_g": pl.col("_growth"), "_g_ret": pl.col("_growth") * pl.col("_ret")}
    for w in sized:
        size = pl.col(f"_size_{w}")
        sums |= {
            f"_total_{w}": size,
            f"_sg_{w}": size * pl.col("_growth"),
            f"_sg_ret_{w}": size * pl.col("_growth") * pl.col("_ret"),
        }
    largest = [f"_largest_{w}" for w in sized]
    by_set = rows.group_by("_set", "date").agg(
        n_constituents=pl.col("eligible").sum(),
        _n=pl.col("_ret").count(),
        **{f"_largest_{w}": pl.col(f"_size_{w}").max() for w in sized},
        **{name: sum_.sum() for name, sum_ in sums.items()},
    )
    return (
        by_set.join(set_sectors, on="_set")
        .sort(*GROUP, "_set")  # a sector's sets summed in one order, whatever order the join gave
        .group_by(GROUP, maintain_order=True)
        .agg(
            pl.col("n_constituents").sum().cast(pl.Int32),
            pl.col("_n", *sums).sum(),
            pl.col(largest).max(),
        )
        .with_columns(
            _equal=pl.when(pl.col("_n") > 0).then(pl.col("_g_ret") / pl.col("_g")),
            **{f"_weighted_{w}": pl.col(f"_sg_ret_{w}") / pl.col(f"_sg_{w}") for w in sized},
        )
        .drop("_g", "_g_ret", *(f"_sg_{w}" for w in sized), *(f"_sg_ret_{w}" for w in sized))
    )


def sector_index(
    members: pl.LazyFrame, assignments: pl.DataFrame, cfg: SectorIndex, days: pl.DataFrame | None = None
) -> pl.LazyFrame:
    """sector, date, weighting, level, ret_1d, n_constituents, one row per calendar day from each
    sector's first day (the first close with a member) to its last.

    `members` is `membership()`'s output, best collected (it is read twice). n_constituents counts
    the members at D's close (the set that D+1's return will use); ret_1d is null on the first day
    and on any day no member traded (the level then stays where it was). `days`: `sector_days()` of the same inputs, collected, if
    the caller has it (the chain collects it alongside altseason); else it is collected here, once.
    """
    if days is None:
        days = sector_days(members, assignments).collect(engine=ENGINE)
    with_returns = {
        "equal": lambda: days.lazy().with_columns(ret_1d=pl.col("_equal")),
        **{w: (lambda w=w: _with_capped_returns(members, assignments, days, cfg.max_weight, w)) for w in SIZES},
    }
    parts = [_levels(with_returns[w]()).with_columns(weighting=pl.lit(w)) for w in cfg.weightings]
    return pl.concat(parts).select(
        pl.col("sector").cast(pl.String), "date", "weighting", "level", "ret_1d", "n_constituents"
    )


def held_targets(rows: pl.LazyFrame, max_weight: float, score: str = "score_usd") -> pl.LazyFrame:
    """Adds `_target` to member rows: the capped target the member was given on the first day of its
    holding (`held_since`: the month's rebalance, or its joining), kept until the holding ends, so
    that members joining or leaving later do not re-target it. On the scale of the sizes: its capped
    weight that day times the day's total size, i.e. its own size where the cap did not bind.

    `rows`: sector, symbol, date, `score` (the size), held_since of every returning member row of the
    sectors concerned (a holding's first day is among them)."""
    rows = rows.cache()  # read twice
    set_on_day = capped_weights(rows, score, GROUP, max_weight).select(
        "sector", "symbol", held_since="date", _target=pl.col("weight") * _size(score).sum().over(GROUP)
    )
    return rows.join(set_on_day, on=["sector", "symbol", "held_since"], how="left", maintain_order="left")


def _with_capped_returns(
    members: pl.LazyFrame, assignments: pl.DataFrame, days: pl.DataFrame, max_weight: float, weighting: str
) -> pl.LazyFrame:
    """`days` with ret_1d, capped weighting: sum(size * growth * ret) / sum(size * growth) in sectors
    where the cap never binds (no weight per row needed); the sectors where it binds on some day go
    through `held_targets`. Null where no member's return counts."""
    binding = days.filter(
        _binds(pl.col(f"_largest_{weighting}"), pl.col(f"_total_{weighting}"), _cap(max_weight, pl.col("_n")))
    )
    symbol = members.lazy().collect_schema()["symbol"]
    binding_pairs = assignments.select(
        pl.col("symbol").cast(symbol), pl.col("sector").cast(days["sector"].dtype)
    ).join(binding.select("sector").unique(), on="sector", how="semi")
    # Only those sectors' member rows are read, picked out of all member rows before the rest of the
    # index query runs: usually a small sector's few symbols (most alts if the Alts composite binds).
    returning = (
        members.lazy()
        .filter(pl.col("symbol").is_in(binding_pairs["symbol"].unique().implode()) & RETURNING)
        .collect(engine=ENGINE)
    )
    drifted = pl.col("_target") * pl.col("growth")
    capped = (
        held_targets(returning.lazy().join(binding_pairs.lazy(), on="symbol").sort(*GROUP, "symbol"), max_weight,
                     SIZES[weighting])
        .group_by(GROUP)
        .agg(_capped=(drifted * pl.col("ret_1d")).sum() / drifted.sum())
    )
    return days.lazy().join(capped, on=GROUP, how="left").with_columns(
        ret_1d=pl.when(pl.col("_n") > 0).then(pl.coalesce("_capped", f"_weighted_{weighting}"))
    )


def _levels(daily: pl.LazyFrame) -> pl.LazyFrame:
    """Daily calendar per sector from its first member to its last row; level = 100 * cum. growth.

    `daily`: sector, date, n_constituents, ret_1d for each (sector, date) with member rows."""
    spans = (
        daily.group_by("sector")
        .agg(
            first=pl.col("date").filter(pl.col("n_constituents") > 0).min(),
            last=pl.col("date").max(),
        )
        .filter(pl.col("first").is_not_null())
    )
    calendar = spans.select("sector", date=pl.date_ranges("first", "last", "1d")).explode("date")
    return (
        calendar.join(daily.select(*GROUP, "n_constituents", "ret_1d"), on=GROUP, how="left")
        .with_columns(pl.col("n_constituents").fill_null(0))
        .sort(GROUP)
        .with_columns(
            level=100.0 * (1.0 + pl.col("ret_1d").fill_null(0.0)).cum_prod().over("sector"),
        )
    )
