"""The one Dagster `Definitions` of the project: assets, resources, jobs, executor."""

import dagster as dg

from assets.analytics import analytics_assets
from assets.ingest import ingest_assets
from assets.publish import publish_assets
from pipeline.resources import AnalyticsSettings, MarketSources, QualitySettings, WarehouseResource

ingest_job = dg.define_asset_job(
    "ingest", selection=dg.AssetSelection.groups("ingest"),
    description="Fetch new market data from every source into the raw tables.",
)
analytics_job = dg.define_asset_job(
    "analytics", selection=dg.AssetSelection.groups("analytics"),
    description="Recompute the marts (sector indices, relative strength, altseason, funding, phase) from the raw tables.",
)
nightly_job = dg.define_asset_job(
    "nightly", selection=dg.AssetSelection.groups("ingest", "analytics", "publish"),
    description="Ingest, recompute every mart, publish the read-only snapshot: what the nightly schedule "
    "and `make demo` run.",
)

defs = dg.Definitions(
    assets=[*ingest_assets, *analytics_assets, *publish_assets],
    jobs=[ingest_job, analytics_job, nightly_job],
    resources={
        "sources": MarketSources(), "warehouse": WarehouseResource(), "analytics": AnalyticsSettings(),
        "quality": QualitySettings(),
    },
    # One DuckDB writer at a time, and far less start-up cost than a process per step.
    executor=dg.in_process_executor,
)
