"""Freshness: a `fresh` check on every raw asset but market caps, failing when its table's newest data is older than
the quality config's `stale_after_days` (counted from the sources' today: yesterday in UTC live,
the dataset's last day when replayed).

Apart from the blocking `quality` gate, which judges the rows a run writes, this judges the table
as it stands, so it also catches the night that never ran: the nightly job evaluates it after each
ingest, and the `freshness` schedule every few hours in between.
"""

from __future__ import annotations

import datetime as dt

import dagster as dg

from assets.ingest import ingest_assets, market_caps
from pipeline.resources import MarketSources, QualitySettings, WarehouseResource
from warehouse.db import TIME_COLUMN

CHECK = "fresh"


def data_age_days(newest: dt.date | None, as_of: dt.date) -> int | None:
    """Whole days from the newest data to `as_of` (None: the table is empty)."""
    return None if newest is None else (as_of - newest).days


def _fresh_check(asset: dg.AssetsDefinition) -> dg.AssetChecksDefinition:
    table = ".".join(asset.key.path)
    time_col = TIME_COLUMN[table]

    @dg.asset_check(
        asset=asset, name=CHECK, blocking=False,
        description=f"Newest {time_col} in {table} is at most `stale_after_days` (pipeline/quality.yaml) "
        "before the sources' last day.",
    )
    def fresh(
        warehouse: WarehouseResource, sources: MarketSources, quality: QualitySettings
    ) -> dg.AssetCheckResult:
        as_of = sources.as_of()
        newest = warehouse.get().newest(table)
        limit = quality.config.stale_after_days
        age = data_age_days(newest, as_of)
        return dg.AssetCheckResult(
            passed=age is not None and age <= limit,
            severity=dg.AssetCheckSeverity.ERROR,
            description=(
                f"{table} is empty" if age is None
                else f"newest {time_col} {newest} is {age} day(s) before {as_of} (limit {limit})"
            ),
            metadata={"newest": str(newest), "as_of": str(as_of), "age_days": age, "max_age_days": limit},
        )

    return fresh


# Not market caps: an optional input (the analytics fall back to the fixed list without it) whose
# CoinMarketCap rows are monthly; its own runs warn when a vendor gives none.
freshness_checks = [_fresh_check(asset) for asset in ingest_assets if asset is not market_caps]
