"""The one Dagster `Definitions` of the project: assets, resources, jobs, executor."""

import dagster as dg

from assets.ingest import ingest_assets
from pipeline.resources import MarketSources, WarehouseResource

ingest_job = dg.define_asset_job(
    "ingest", selection=dg.AssetSelection.groups("ingest"),
    description="Fetch new market data from every source into the raw tables.",
)

defs = dg.Definitions(
    assets=ingest_assets,
    jobs=[ingest_job],
    resources={"sources": MarketSources(), "warehouse": WarehouseResource()},
    # One DuckDB writer at a time, and far less start-up cost than a process per step.
    executor=dg.in_process_executor,
)
