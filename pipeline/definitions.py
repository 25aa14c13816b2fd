"""The one Dagster `Definitions` of the project: assets, checks, resources, jobs, schedules, executor."""

import dagster as dg

from assets.analytics import analytics_assets
from assets.evaluation import evaluation_assets
from assets.freshness import freshness_checks
from assets.ingest import ingest_assets
from assets.publish import publish_assets
from assets.quarantine import quarantine_assets
from assets.recommendations import portfolio_orders_asset, recommendation_assets
from pipeline.resources import AnalyticsSettings, MarketSources, QualitySettings, StrategySettings, WarehouseResource
from pipeline.schedules import freshness_schedule, nightly_schedule
from pipeline.settings import Settings

ingest_job = dg.define_asset_job(
    "ingest", selection=dg.AssetSelection.groups("ingest"),
    description="Fetch new market data from every source into the raw tables.",
)
analytics_job = dg.define_asset_job(
    "analytics", selection=dg.AssetSelection.groups("analytics"),
    description="Recompute the marts (sector indices, relative strength, altseason, funding, phase) from the raw tables.",
)
nightly_job = dg.define_asset_job(
    "nightly", selection=dg.AssetSelection.groups("ingest", "quality", "analytics", "recommendations", "evaluation", "publish"),
    description="Ingest, gate, recompute every mart, the recommendations and their backtest, publish the "
    "read-only snapshot, then your orders: what the nightly schedule and `make demo` run.",
)
freshness_job = dg.define_asset_job(
    "freshness", selection=dg.AssetSelection.checks(*freshness_checks),
    description="The raw tables' `fresh` checks alone (no fetching).",
)

defs = dg.Definitions(
    assets=[*ingest_assets, *quarantine_assets, *analytics_assets, recommendation_assets, *evaluation_assets,
            *publish_assets, portfolio_orders_asset],
    asset_checks=freshness_checks,
    jobs=[ingest_job, analytics_job, nightly_job, freshness_job],
    schedules=[nightly_schedule(nightly_job, Settings.from_env()), freshness_schedule(freshness_job)],
    resources={
        "sources": MarketSources(), "warehouse": WarehouseResource(), "analytics": AnalyticsSettings(),
        "quality": QualitySettings(), "strategy": StrategySettings(),
    },
    # One DuckDB writer at a time, and far less start-up cost than a process per step.
    executor=dg.in_process_executor,
)
