"""Publishing: after the marts, the model's recommendations and their backtest of a run are written
(and passed their checks), the warehouse is copied to the read-only snapshot that SQL users and the `sql`/`summary`
commands read, so nobody needs the writer's lock. A run stopped by a blocking check never gets here:
readers keep the last good copy. The user's orders come after (a bad portfolio file must not hold
back the model) and publish again once written."""

import dagster as dg

from assets.analytics import analytics_assets
from assets.evaluation import evaluation_assets
from assets.partitions import DAILY_ASSET
from assets.recommendations import recommendation_assets
from pipeline.resources import WarehouseResource


@dg.asset(
    **DAILY_ASSET,
    key=["warehouse", "read_snapshot"],
    group_name="publish",
    owners=["team:data"],
    kinds={"duckdb"},
    deps=[*analytics_assets, recommendation_assets, *evaluation_assets],
    description="Read-only copy of the whole warehouse (warehouse/rotation_read.duckdb), renamed into "
    "place atomically after every run whose marts passed their checks.",
)
def read_snapshot(context: dg.AssetExecutionContext, warehouse: WarehouseResource) -> dg.MaterializeResult:
    wh = warehouse.get()
    path = wh.publish_snapshot()
    size_mib = path.stat().st_size / 2**20
    context.log.info(f"published {path} ({size_mib:.1f} MiB)")
    return dg.MaterializeResult(metadata={"path": dg.MetadataValue.path(str(path)), "size_mib": round(size_mib, 1)})


publish_assets = [read_snapshot]
