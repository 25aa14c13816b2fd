"""`make demo`: replay a dataset (the synthetic market by default) through the nightly job, in one
run over the dataset's whole date range (every raw month, then the whole graph), then print what the
warehouse holds."""

from __future__ import annotations

import datetime as dt
import logging

import dagster as dg

from assets.partitions import month_key, monthly
from pipeline.settings import Settings, SettingsError
from pipeline.sources.replay.dataset import REQUIRED, DatasetError, ReplayInfo, ReplayUnreachable
from pipeline.sources.replay.synthetic import SYNTHETIC_LABEL, ensure_synthetic
from warehouse import Warehouse, WarehouseBusy
from warehouse.db import TABLES, TIME_COLUMN, quoted_column, quoted_table

log = logging.getLogger(__name__)

# What the summary counts as a table's series (the SQL of a count, and its word); the tables, their
# time columns and their keys come from warehouse.db (TABLES, TIME_COLUMN).
SERIES = {
    "raw.ohlcv_1d": ("distinct symbol", "symbols"), "raw.funding_rates": ("distinct symbol", "perps"),
    "raw.defi_tvl": ("distinct scope || ':' || name", "series"), "raw.btc_dominance": ("distinct source", "sources"),
    "raw.market_caps": ("distinct date", "snapshots"), "marts.universe_membership": ("distinct coin", "coins"),
    "marts.sector_index": ("distinct sector", "sectors"), "marts.sector_weights": ("distinct symbol", "constituents"),
    "marts.relative_strength": ("distinct sector", "sectors"), "marts.altseason": ("altseason_index", "days with an index"),
    "marts.funding_costs": ("distinct symbol", "perps"), "marts.market_regime": ("distinct phase", "phases seen"),
    "marts.rotation_recommendation": ("distinct sector", "sectors"),
    "marts.hedge_recommendation": ("distinct instrument", "perps"),
    "marts.portfolio_orders": ("distinct instrument", "instruments"),
    "marts.backtest_daily": ("distinct strategy", "strategies"), "marts.backtest_trades": ("distinct instrument", "instruments"),
}

def _summary_sql(table: str, count: str) -> str:
    """Rows, first and last day, and the count of SERIES' expression (a constant above) of `table`."""
    day = quoted_column(TIME_COLUMN[table], TABLES[table])
    return ("select count(*), min(" + day + ")::date, max(" + day + ")::date, count(" + count + ") from "
            + quoted_table(table))


SUMMARY_SQL = {t: _summary_sql(t, count) for t, (count, _) in SERIES.items()}
TODAY_SQL = """
    select date, phase, risk_mode, days_in_phase, funding_regime, leading_sector, btc_trend_pct,
           btc_dominance_pct, altseason_index, alts_vs_btc_pct, tvl_growth_30d, btc_funding_apr_pct, missing_inputs
    from marts.market_regime where phase is not null order by date desc limit 1
"""
QUADRANTS_SQL = """
    select sector, quadrant, rs_ratio, rs_momentum, rs_mom_30d_pct
    from marts.relative_strength where date = ? order by rs_ratio desc
"""


# `source` is `<endpoint>@replay:<dataset>` on a replayed row, the bare endpoint on a live one
# (raw.market_caps' `source` is the vendor, part of its key: the candles beside it tell the dataset).
RAW_TABLES = tuple(t for t in SERIES if t.startswith("raw.") and t != "raw.market_caps")
DATASETS_SQL = " union ".join(
    "select distinct coalesce(nullif(regexp_extract(source, '@replay:(.*)$', 1), ''), 'live') from " + quoted_table(t)
    for t in RAW_TABLES
)


def other_datasets(warehouse: Warehouse, label: str) -> list[str]:
    """Datasets other than `label` (or live data) the warehouse's raw tables already hold."""
    if not warehouse.path.exists():
        return []
    with warehouse.connect() as con:  # read-write: creates the tables an older warehouse lacks
        return sorted(row[0] for row in con.execute(DATASETS_SQL).fetchall() if row[0] != label)


def table_counts(warehouse: Warehouse, read_only: bool = False) -> dict[str, tuple]:
    if not warehouse.path.exists():
        return {t: (0, None, None, 0) for t in SUMMARY_SQL}
    # the writer connects read-write (which creates the tables an older warehouse lacks); readers, read-only
    with warehouse.connect(read_only=read_only) as con:
        return {t: con.execute(sql).fetchone() for t, sql in SUMMARY_SQL.items()}


def published_run(instance: dg.DagsterInstance, tags: dict[str, str], as_of: dt.date, warehouse: Warehouse) -> str | None:
    """The id of a successful demo run with these tags (dataset, warehouse, code and configuration)
    that published the warehouse as of `as_of`, if the warehouse still reaches that day."""
    from pipeline.schedules import latest_publication

    runs = instance.get_runs(dg.RunsFilter(job_name="nightly", statuses=[dg.DagsterRunStatus.SUCCESS], tags=tags), limit=1)
    if not runs or not warehouse.snapshot_path.exists() or warehouse.newest("raw.ohlcv_1d") != as_of:
        return None
    return runs[0].run_id if latest_publication(instance) == (runs[0].run_id, as_of) else None


def run_demo(rerun: bool = False) -> int:
    """The demo under the warehouse's writer lock, from its first look at the warehouse to its
    summary: a second demo or run on the same file waits, then stops with who holds it."""
    try:
        with Warehouse(Settings.from_env().warehouse_path).writing():
            return _replay(rerun)
    except WarehouseBusy as exc:
        raise SystemExit(str(exc)) from None


def _replay(rerun: bool) -> int:
    from assets.recommendations import portfolio_orders_asset
    from pipeline.definitions import defs
    from pipeline.fingerprint import fingerprint
    from pipeline.report import report_path

    settings = Settings.from_env()
    if settings.sources != "replay":
        raise SystemExit("make demo replays a dataset offline; unset ROTATION_SOURCES=live to run it")
    settings.check_files()  # a mistake in the user's files is one line now, not a failed run later
    if settings.replay_url:
        try:
            replay, where = ReplayInfo.ask(settings.replay_url), settings.replay_url
        except ReplayUnreachable as exc:
            raise SettingsError(str(exc)) from None
    else:
        where = settings.replay_data or ensure_synthetic(settings.replay_cache)
        try:
            replay = ReplayInfo.read(where)  # without its rows: the run's replay loads them
        except DatasetError as exc:
            if settings.replay_data is None:  # the embedded market's own cache: not the user's setting
                raise
            raise SettingsError(
                f"ROTATION_REPLAY_DATA={where}: {exc}. A dataset folder holds "
                f"{', '.join(name + '.parquet' for name in REQUIRED)}, as the recorded history ../shared/data/real "
                "does (pipeline/sources/replay/dataset.py); unset ROTATION_REPLAY_DATA to replay the embedded "
                "synthetic market") from None
    label, first_date, as_of = replay.label, replay.first_date, replay.as_of
    start = max(first_date, settings.start_date)
    warehouse = Warehouse(settings.warehouse_path)
    held = other_datasets(warehouse, label)
    if held:
        # Both would share keys (exchange, symbol, date): one market's rows would overwrite the
        # other's where their dates meet and stay beside them elsewhere.
        raise SystemExit(
            f"{warehouse.path} already holds the {', '.join(map(repr, held))} data; replaying the "
            f"{label!r} dataset into it would mix two markets in one table. Give it its own "
            f"warehouse (ROTATION_WAREHOUSE=warehouse/{label}.duckdb) or delete this one."
        )
    before = table_counts(warehouse)
    months = dg.PartitionKeyRange(month_key(start), month_key(as_of))
    synthetic = label == SYNTHETIC_LABEL
    print(f"Replaying the {label!r} dataset ({where}) as of {as_of}"
          + (": a SYNTHETIC market, not real prices." if synthetic else "."))
    instance = dg.DagsterInstance.get()
    # the same data into the same warehouse with the same code and configuration gives the same results
    inputs = {"rotation/dataset": label, "rotation/warehouse": str(warehouse.path.resolve()),
              "rotation/fingerprint": fingerprint(settings)}
    done = None if rerun else published_run(instance, inputs, as_of, warehouse)
    if done:
        print(f"Nothing new: run {done} already published it as of {as_of} with this code and configuration "
              "(`python -m pipeline demo --rerun` runs it again).")
        print_summary(warehouse, before, run_id=done)
        page = report_path(warehouse.path)
        print(f"\nReport (one page, opens offline): {page}" if page.exists() else "\nNo report page.")
        print_recommendation(settings)
        print_scorecard(settings, synthetic)
        return 0
    print(f"Materialising raw/* for {start} .. {as_of} ({len(monthly.get_partition_keys_in_range(months))} "
          "monthly partitions), then marts/*, in one run...")
    result = defs.resolve_job_def("nightly").execute_in_process(
        instance=instance,
        run_config={"loggers": {"console": {"config": {"log_level": "INFO"}}}},
        tags={
            "dagster/asset_partition_range_start": months.start,
            "dagster/asset_partition_range_end": months.end,
            **inputs,
        },
        raise_on_error=False,
    )
    print_checks(result.get_asset_check_evaluations(), warehouse)
    failures = [e for e in result.all_events if e.is_step_failure or e.is_resource_init_failure]
    # the user's orders alone failing leaves the night's model written and published
    if not result.success and [e.step_key for e in failures] != [portfolio_orders_asset.op.name]:
        print(f"\nThe run failed: {failure_message(failures[0]) if failures else 'see the run log'}")
        return 1
    print_summary(warehouse, before, run_id=result.run_id)
    print_report(result)
    if failures:  # the model was written and published; only the user's orders failed
        print(f"\nYour portfolio's orders failed (the model's recommendations are published): "
              f"{failure_message(failures[0])}")
        return 1
    print_recommendation(settings)
    print_scorecard(settings, synthetic)
    return 0


def print_report(result: dg.ExecuteInProcessResult) -> None:
    """Where the run's report page is (the `report` asset's path), or why there is none."""
    from assets.publish import report

    metadata = next((m.metadata for m in result.asset_materializations_for_node(report.op.name)), {})
    if "path" in metadata:
        print(f"\nReport (one page, opens offline): {metadata['path'].value}")
    else:
        print(f"\nNo report: {metadata['why'].value if 'why' in metadata else 'the report asset did not run'}")


def failure_message(event: dg.DagsterEvent) -> str:
    """What the failed step (or resource) raised, from inside Dagster's wrapping error."""
    error = (event.step_failure_data if event.is_step_failure else event.engine_event_data).error
    while error.cause is not None:
        error = error.cause
    return error.message.strip()


def print_recommendation(settings: Settings) -> None:
    """Today's recommendation for the example portfolio (ROTATION_PORTFOLIO), as `recommend` prints it:
    a holding the dataset has no market for is one WARNING line there, not a failure."""
    from pipeline.brief import BriefError, brief

    print(f"\n{'=' * 100}\n`python -m pipeline recommend` for {settings.portfolio_path}:\n")
    try:
        print(brief(settings=settings))
    except BriefError as exc:
        print(f"no recommendation: {exc}")


def print_scorecard(settings: Settings, synthetic: bool) -> None:
    """Would following the recommendations have paid? The backtest's strategy table, as
    `python -m pipeline backtest` prints it."""
    from pipeline.scorecard import ScorecardError, scorecard

    print(f"\n{'=' * 100}\n`python -m pipeline backtest`" + (" (a SYNTHETIC market: not evidence about real "
          "markets)" if synthetic else "") + ":\n")
    try:
        print(scorecard(settings=settings))
    except ScorecardError as exc:
        print(f"no backtest: {exc}")


def print_checks(evaluations, warehouse: Warehouse) -> None:
    """The quality gate's verdict per table: pass, warn (quarantined, run went on) or FAILED (blocked)."""
    print("\nQuality checks (Great Expectations suites, blocking):")
    for check in sorted(evaluations, key=lambda c: c.asset_key.to_user_string()):
        verdict = "pass" if check.passed else "warn" if check.severity == dg.AssetCheckSeverity.WARN else "FAILED"
        rows = check.metadata.get("rows_validated")
        print(f"  {verdict:<7}{check.asset_key.to_user_string():<32}{rows.value if rows else 0:>9,} rows"
              f"  {(check.description or '').splitlines()[0]}")
    print(f"  report: {warehouse.quality_folder / 'index.html'}")


def print_summary(warehouse: Warehouse, before: dict[str, tuple] | None = None, run_id: str | None = None,
                  read_only: bool = False) -> None:
    after = table_counts(warehouse, read_only)
    print(f"\nWarehouse: {warehouse.path}" + (f"  (run {run_id})" if run_id else ""))
    print(f"{'table':<30}{'rows':>10}{'new':>9}  {'first':<12}{'last':<12}series")
    for table, (rows, first, last, series) in after.items():
        new = rows - (before or {}).get(table, (0,))[0]
        print(f"{table:<30}{rows:>10,}{new:>9,}  {str(first):<12}{str(last):<12}{series} {SERIES[table][1]}")
    print_today(warehouse)
    print("\nNext:")
    print("  .venv/bin/python -m pipeline summary       # this summary again")
    print("  make ui                                   # Dagster UI at http://127.0.0.1:3000 (lineage, runs)")
    print('  .venv/bin/python -m pipeline sql "select date, phase, risk_mode from marts.market_regime order by date desc limit 10"')
    print("  .venv/bin/python -m pipeline recommend --portfolio my_portfolio.yaml   # your orders (copy pipeline/portfolio.yaml)")


def print_today(warehouse: Warehouse) -> None:
    """The latest market phase with its evidence, and where each sector sits on the rotation graph."""
    if not warehouse.path.exists():
        return
    with warehouse.connect(read_only=True) as con:
        today = con.sql(TODAY_SQL).pl()
        if today.is_empty():
            print("\nNo market phase yet: the marts need about 200 days of BTC history (its trend average).")
            return
        row = today.row(0, named=True)
        quadrants = con.sql(QUADRANTS_SQL, params=[row["date"]]).pl()

    def num(value: float | None, fmt: str) -> str:
        return "n/a" if value is None else format(value, fmt)

    print(f"\nMarket phase on {row['date']}: {row['phase']} ({row['risk_mode']}, {row['days_in_phase']} days)")
    print(f"  BTC vs 200-day average {num(row['btc_trend_pct'], '+.1f')}%, dominance "
          f"{num(row['btc_dominance_pct'], '.1f')}%, altseason index {num(row['altseason_index'], '.0f')}, "
          f"alts vs BTC (30d) {num(row['alts_vs_btc_pct'], '+.1f')}%")
    print(f"  DeFi TVL (30d) {num(None if row['tvl_growth_30d'] is None else 100 * row['tvl_growth_30d'], '+.1f')}%, "
          f"BTC funding {num(row['btc_funding_apr_pct'], '.1f')}% APR ({row['funding_regime'] or 'no perp data'}), "
          f"leading sector: {row['leading_sector'] or 'n/a'}")
    if row["missing_inputs"]:
        print(f"  no data for: {row['missing_inputs']}")
    print("\nSector rotation vs BTC (relative-rotation graph, 100 = BTC-relative norm):")
    print(f"  {'sector':<16}{'quadrant':<11}{'rs_ratio':>9}{'rs_momentum':>13}{'30d vs BTC':>12}")
    for q in quadrants.iter_rows(named=True):
        print(f"  {q['sector']:<16}{q['quadrant'] or 'warming up':<11}{num(q['rs_ratio'], '.1f'):>9}"
              f"{num(q['rs_momentum'], '.1f'):>13}{num(q['rs_mom_30d_pct'], '+.1f'):>11}%")
