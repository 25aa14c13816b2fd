"""The `quality` group: the quarantine table as an asset, summarising what the gate held back.

The raw assets write `raw.quarantine` in the same transaction as their rows; this asset runs after
them and reports the run's quarantined rows (a night whose warnings let the run go on still shows
them here) and the table's totals, with a link to the HTML report. A blocking failure stops the run
before it: that night's check result carries the detail instead.
"""

import dagster as dg

from assets.ingest import ingest_assets
from assets.metadata import md_table, table_metadata
from assets.run_context import current_run_id
from pipeline.resources import WarehouseResource

@dg.asset(
    key=["raw", "quarantine"],
    group_name="quality",
    owners=["team:data"],
    kinds={"duckdb"},
    deps=ingest_assets,
    metadata=table_metadata("raw.quarantine"),
    description="Rows the quality gate held back or flagged, one record per row and failed expectation; "
    "materialised with a summary of what this run quarantined.",
)
def quarantine(context: dg.AssetExecutionContext, warehouse: WarehouseResource) -> dg.MaterializeResult:
    wh = warehouse.get()
    this_run = wh.query(
        "select table_name, expectation, action, bool_or(kept_in_table) as kept_in_table, count(*) as rows "
        "from raw.quarantine where run_id = ? group by all order by table_name, expectation",
        [current_run_id(context)],
    )
    totals = wh.query(
        "select table_name, count(*) as rows, max(quarantined_at)::date as latest from raw.quarantine group by all order by 1"
    )
    rows = int(this_run["rows"].sum()) if this_run.height else 0
    context.log.info(f"{rows} row(s) quarantined by this run; {int(totals['rows'].sum()) if totals.height else 0} in all")
    report = wh.quality_folder / "index.html"
    return dg.MaterializeResult(metadata={
        "rows_this_run": rows,
        "this_run": dg.MetadataValue.md(md_table(this_run, max_rows=50) if this_run.height else "nothing quarantined"),
        "all_runs": dg.MetadataValue.md(md_table(totals) if totals.height else "the quarantine is empty"),
        "report": dg.MetadataValue.path(str(report)),
    })


quarantine_assets = [quarantine]
