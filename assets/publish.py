"""Publishing: after the marts, the model's recommendations and their backtest of a run are written
(and passed their checks), the warehouse is copied to the read-only snapshot that SQL users and the `sql`/`summary`
commands read, so nobody needs the writer's lock. A run stopped by a blocking check never gets here:
readers keep the last good copy. The user's orders come after (a bad portfolio file must not hold
back the model) and publish again once written. The report page is made from the snapshot."""

from pathlib import Path

import dagster as dg

from assets.analytics import analytics_assets
from assets.evaluation import evaluation_assets
from assets.partitions import as_of_day
from assets.recommendations import recommendation_assets
from pipeline.resources import AnalyticsSettings, StrategySettings, WarehouseResource
from pipeline.settings import Settings

LAST_DAY = "last_day"  # read_snapshot's metadata: the newest night published


@dg.asset(
    key=["warehouse", "read_snapshot"],
    group_name="publish",
    owners=["team:data"],
    kinds={"duckdb"},
    deps=[*analytics_assets, recommendation_assets, *evaluation_assets],
    description="Read-only copy of the whole warehouse (warehouse/rotation_read.duckdb), renamed into "
    "place atomically after every run whose marts passed their checks.",
)
def read_snapshot(
    context: dg.AssetExecutionContext, warehouse: WarehouseResource, analytics: AnalyticsSettings
) -> dg.MaterializeResult:
    """`last_day` in its metadata is the newest night published: the nightly schedule starts after it."""
    wh = warehouse.get()
    day = as_of_day(wh, analytics.spot_exchange_id)
    path = wh.publish_snapshot()
    size_mib = path.stat().st_size / 2**20
    context.log.info(f"published {path} ({size_mib:.1f} MiB) as of {day}")
    return dg.MaterializeResult(metadata={
        "path": dg.MetadataValue.path(str(path)), "size_mib": round(size_mib, 1), LAST_DAY: day.isoformat()})


@dg.asset(
    key=["warehouse", "report"],
    group_name="publish",
    owners=["team:quant"],
    kinds={"html"},
    deps=[read_snapshot],
    description="The static report warehouse/report/index.html (another warehouse's: <name>_report/index.html "
    "beside it): the newest day's phase, recommendation "
    "and evidence, the orders for your portfolio, every chart, the backtest table, the quality verdicts and "
    "the inputs' date ranges. One self-contained page that opens offline.",
)
def report(
    context: dg.AssetExecutionContext, warehouse: WarehouseResource, analytics: AnalyticsSettings,
    strategy: StrategySettings,
) -> dg.MaterializeResult:
    """The page of the newest day, from the published snapshot. A bad portfolio file shows on
    the page as an error (it must not cost the user the rest of it); a day with no recommendation
    yet (the marts' warm-up) writes no page, and says so."""
    from pipeline.brief import BriefError
    from pipeline.report import report_path, write_report

    env = Settings.from_env()
    settings = env.model_copy(update={
        "warehouse_path": warehouse.get().path, "portfolio_path": strategy.portfolio_file,
        "playbook_path": Path(strategy.playbook_path or env.playbook_path),
        "analytics_path": Path(analytics.config_path or env.analytics_path),
        "universe_path": Path(analytics.universe_path or env.universe_path),
        "exchange": analytics.spot_exchange_id, "perp_exchange": analytics.perp_exchange_id,
    })
    day = as_of_day(warehouse.get(), analytics.spot_exchange_id)
    try:
        path = write_report(settings, as_of=day, out=report_path(settings.warehouse_path))
    except BriefError as exc:
        context.log.warning(f"report: none for {day}: {exc}")
        return dg.MaterializeResult(metadata={"written": False, "why": str(exc)})
    size_mb = path.stat().st_size / 1e6
    context.log.info(f"report for {day}: {path} ({size_mb:.1f} MB)")
    return dg.MaterializeResult(
        metadata={"written": True, "path": dg.MetadataValue.path(str(path)), "size_mb": round(size_mb, 2)})


publish_assets = [read_snapshot, report]
