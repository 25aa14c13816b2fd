"""Operating the pipeline night after night: the schedule's ticks (with catch-up), the ingest
assets' retry policy, the raw tables' freshness checks and the catalogue entries the UI shows."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import dagster as dg
import duckdb
import pytest

from assets.freshness import data_age_days
from assets.ingest import ingest_assets
from assets.publish import LAST_DAY
from pipeline.resources import MarketSources, QualitySettings, WarehouseResource
from pipeline.schedules import DONE_MARKER, RANGE_END, RANGE_START, nightly_schedule, nights_to_run
from pipeline.settings import Settings, SettingsError
from pipeline.sources.replay.synthetic import generate
from warehouse import TABLES, Warehouse
from warehouse.catalog import table_docs
from warehouse.db import apply_schema

SYNTH_AS_OF = dt.date(2025, 6, 30)


@pytest.fixture(scope="module")
def synthetic_dir(tmp_path_factory) -> Path:
    return generate(tmp_path_factory.mktemp("synth") / "synthetic", SYNTH_AS_OF, seed=5, years=0.3)


def resources(synthetic_dir: Path, warehouse_path: Path, faults: list[str] | None = None) -> dict:
    return {
        "sources": MarketSources(replay_data=str(synthetic_dir), backoff_s=0.01, faults=faults or []),
        "warehouse": WarehouseResource(path=str(warehouse_path)),
        "quality": QualitySettings(),
    }


# ------------------------------------------------------------------ the nightly schedule


def test_nights_to_run_starts_after_the_newest_done_night():
    start, yesterday = dt.date(2024, 1, 1), dt.date(2024, 3, 10)
    assert nights_to_run(None, start, yesterday) == (start, yesterday)  # first night: all history
    assert nights_to_run(dt.date(2024, 3, 9), start, yesterday) == (yesterday, yesterday)
    assert nights_to_run(dt.date(2024, 3, 6), start, yesterday) == (dt.date(2024, 3, 7), yesterday)
    assert nights_to_run(dt.date(2024, 3, 10), start, yesterday) is None


def tick(schedule: dg.ScheduleDefinition, instance: dg.DagsterInstance, at: dt.datetime):
    with dg.build_schedule_context(instance=instance, scheduled_execution_time=at) as context:
        return schedule.evaluate_tick(context)


def publish(instance: dg.DagsterInstance, *days: str) -> None:
    """What a successful night records: the snapshot's materialisation, as of its day."""
    for day in days:
        instance.report_runless_asset_event(dg.AssetMaterialization(asset_key=DONE_MARKER, metadata={LAST_DAY: day}))


def test_the_tick_requests_yesterdays_month_and_catches_up_missed_nights():
    from pipeline.definitions import defs

    schedule = defs.resolve_schedule_def("nightly_schedule")
    assert schedule.job_name == "nightly"
    assert schedule.default_status == dg.DefaultScheduleStatus.RUNNING
    at = dt.datetime(2026, 11, 22, 1, 15, tzinfo=dt.UTC)
    with dg.instance_for_test() as instance:
        publish(instance, "2026-11-19", "2026-11-20")
        (request,) = tick(schedule, instance, at).run_requests
        assert (request.tags[RANGE_START], request.tags[RANGE_END]) == ("2026-11-01", "2026-11-01")
        assert request.partition_key_range == dg.PartitionKeyRange("2026-11-01", "2026-11-01")
        assert request.run_key == "nightly:2026-11-21..2026-11-21"

        # Ten nights later, with nothing published in between: one run covers the missed days, in
        # both months they fall in.
        (request,) = tick(schedule, instance, at + dt.timedelta(days=10)).run_requests
        assert (request.tags[RANGE_START], request.tags[RANGE_END]) == ("2026-11-01", "2026-12-01")
        assert request.run_key == "nightly:2026-11-21..2026-12-01"

        publish(instance, "2026-12-01")
        result = tick(schedule, instance, at + dt.timedelta(days=10))
        assert not result.run_requests and "2026-12-01 is already published" in result.skip_message


def test_the_tick_waits_while_a_nightly_run_is_in_flight():
    from pipeline.definitions import defs

    schedule = defs.resolve_schedule_def("nightly_schedule")
    with dg.instance_for_test() as instance:
        run = instance.create_run_for_job(defs.resolve_job_def("nightly"), status=dg.DagsterRunStatus.STARTED)
        result = tick(schedule, instance, dt.datetime(2026, 11, 22, 1, 15, tzinfo=dt.UTC))
        assert not result.run_requests and run.run_id in result.skip_message


def test_cron_and_timezone_come_from_the_environment_and_bad_values_are_named():
    from pipeline.definitions import nightly_job

    settings = Settings.from_env({"ROTATION_SCHEDULE_CRON": "30 6 * * *", "ROTATION_SCHEDULE_TIMEZONE": "Asia/Tokyo"})
    schedule = nightly_schedule(nightly_job, settings)
    assert (schedule.cron_schedule, schedule.execution_timezone) == ("30 6 * * *", "Asia/Tokyo")
    # 06:30 in Tokyo is 21:30 UTC the day before: the newest closed UTC day is two days back.
    at = dt.datetime(2026, 11, 22, 6, 30, tzinfo=dt.timezone(dt.timedelta(hours=9)))
    with dg.instance_for_test() as instance:
        publish(instance, "2026-11-19")
        (request,) = tick(schedule, instance, at).run_requests
        assert (request.tags[RANGE_START], request.tags[RANGE_END]) == ("2026-11-01", "2026-11-01")
        assert request.run_key == "nightly:2026-11-20..2026-11-20"
    with pytest.raises(SettingsError, match=r"ROTATION_SCHEDULE_CRON='every night'.*not a cron expression"):
        Settings.from_env({"ROTATION_SCHEDULE_CRON": "every night"})
    with pytest.raises(SettingsError, match=r"ROTATION_SCHEDULE_TIMEZONE='Moon/Base'.*unknown timezone"):
        Settings.from_env({"ROTATION_SCHEDULE_TIMEZONE": "Moon/Base"})


# ------------------------------------------------------------------ retries


def ingest(synthetic_dir, warehouse_path, faults, asset="raw/defi_tvl"):
    """One raw asset (as defined, with its retry policy and checks): the as-of day's month."""
    (definition,) = [a for a in ingest_assets if a.key == dg.AssetKey.from_user_string(asset)]
    return dg.materialize(
        [definition],
        instance=dg.DagsterInstance.ephemeral(),
        resources=resources(synthetic_dir, warehouse_path, faults),
        tags={RANGE_START: "2025-06-01", RANGE_END: "2025-06-01"},
        raise_on_error=False,
    )


def test_an_outage_longer_than_the_request_retries_is_survived_by_the_asset_retry(synthetic_dir, warehouse_path):
    # 5 failures exhaust one request's 5 attempts: the asset fails once, and its re-run succeeds.
    result = ingest(synthetic_dir, warehouse_path, ["5xx=503:/protocol/uniswap:x5"])
    assert result.success
    types = [e.event_type_value for e in result.all_events]
    assert types.count("STEP_UP_FOR_RETRY") == 1 and types.count("STEP_RESTARTED") == 1
    retry = next(e for e in result.all_events if e.event_type_value == "STEP_UP_FOR_RETRY")
    assert "defillama GET /protocol/uniswap" in str(retry.event_specific_data.error)
    wh = Warehouse(warehouse_path)
    assert wh.query("select count(*) from raw.defi_tvl where name = 'uniswap'").item() == 30  # June, the month of the as-of day


def test_a_source_that_stays_down_fails_the_run_naming_the_source_and_endpoint(synthetic_dir, warehouse_path):
    from pipeline.definitions import defs

    retries = defs.resolve_assets_def(dg.AssetKey(["raw", "defi_tvl"])).op.retry_policy.max_retries
    result = ingest(synthetic_dir, warehouse_path, ["5xx=502:/protocol/uniswap"])
    assert not result.success
    types = [e.event_type_value for e in result.all_events]
    assert types.count("STEP_RESTARTED") == retries  # every re-run tried, then the failure stands
    (failure,) = [e for e in result.all_events if e.event_type_value == "STEP_FAILURE"]
    message = str(failure.event_specific_data.error)
    assert "defi_tvl: source defillama GET /protocol/uniswap failed" in message and "HTTP 502" in message
    assert Warehouse(warehouse_path).query("select count(*) from raw.defi_tvl").item() == 0  # nothing half-written


def test_a_malformed_payload_is_not_retried(synthetic_dir, warehouse_path):
    # Candles without their open time: ccxt cannot place them, and a re-run gets the same page.
    result = ingest(synthetic_dir, warehouse_path, ["missing_field=openTime:/api/v3/klines"], asset="raw/ohlcv_1d")
    assert not result.success
    types = [e.event_type_value for e in result.all_events]
    assert "STEP_RESTARTED" not in types  # the same bytes would come back: fail at once
    (failure,) = [e for e in result.all_events if e.event_type_value == "STEP_FAILURE"]
    assert "ohlcv_1d: source binance" in str(failure.event_specific_data.error)


def test_the_retry_policy_backs_off_with_jitter_from_the_settings():
    from pipeline.definitions import defs

    policy = defs.resolve_assets_def(dg.AssetKey(["raw", "ohlcv_1d"])).op.retry_policy
    assert (policy.backoff, policy.jitter) == (dg.Backoff.EXPONENTIAL, dg.Jitter.PLUS_MINUS)
    assert policy.max_retries == Settings.from_env().retries == 3
    assert Settings.from_env({}).retry_delay_s == 60.0  # production default; tests run with 0.1 s


# ------------------------------------------------------------------ freshness


def test_data_age_counts_whole_days():
    assert data_age_days(dt.date(2025, 6, 28), dt.date(2025, 6, 30)) == 2
    assert data_age_days(None, dt.date(2025, 6, 30)) is None


def test_the_fresh_check_fails_on_a_stale_table_and_passes_once_it_is_caught_up(synthetic_dir, warehouse_path):
    from pipeline.definitions import defs

    def fresh_checks() -> dict[str, dg.AssetCheckEvaluation]:
        result = defs.resolve_job_def("freshness").execute_in_process(
            instance=dg.DagsterInstance.ephemeral(), resources=resources(synthetic_dir, warehouse_path),
        )
        assert result.success  # a failed check is a finding, not a failed run
        return {e.asset_key.to_user_string(): e for e in result.get_asset_check_evaluations()}

    # Ingest up to 06-25 only: as of the dataset's 06-30, that is 5 days old (limit 2).
    stale = ingest(synthetic_dir, warehouse_path, [], asset="raw/btc_dominance")
    assert stale.success
    with Warehouse(warehouse_path).connect() as con:
        con.execute("delete from raw.btc_dominance where date > '2025-06-25'")
    checks = fresh_checks()
    assert set(checks) == {"raw/ohlcv_1d", "raw/funding_rates", "raw/defi_tvl", "raw/btc_dominance"}
    dominance = checks["raw/btc_dominance"]
    assert not dominance.passed and dominance.severity == dg.AssetCheckSeverity.ERROR
    assert dominance.metadata["age_days"].value == 5 and dominance.metadata["newest"].value == "2025-06-25"
    assert not checks["raw/ohlcv_1d"].passed and checks["raw/ohlcv_1d"].description == "raw.ohlcv_1d is empty"

    assert ingest(synthetic_dir, warehouse_path, [], asset="raw/btc_dominance").success
    assert fresh_checks()["raw/btc_dominance"].passed


# ------------------------------------------------------------------ the catalogue


def test_every_table_asset_documents_its_columns_from_the_schema_files():
    from pipeline.definitions import defs

    docs = table_docs()
    assert set(docs) == set(TABLES)
    graph = defs.resolve_asset_graph()
    documented = {}
    for key in graph.get_all_asset_keys():
        node = graph.get(key)
        assert node.description and node.owners and node.kinds, key
        if "dagster/column_schema" in node.metadata:
            documented[node.metadata["dagster/table_name"]] = node.metadata["dagster/column_schema"]
    # raw.coin_categories is written by raw/market_caps's asset, in the same transaction as the caps
    # it was fetched with, and named in its description: the one table without an asset of its own
    assert set(documented) == set(TABLES) - {"raw.coin_categories"}
    ohlcv = {c.name: c for c in documented["raw.ohlcv_1d"].columns}
    assert list(ohlcv)[:3] == ["exchange", "symbol", "date"]
    assert ohlcv["volume"].description == "base units" and ohlcv["close"].type == "DOUBLE"
    assert ohlcv["date"].constraints.nullable is False and ohlcv["close"].constraints.nullable is True
    with duckdb.connect() as con:  # the schema files applied to an empty database
        apply_schema(con)
        for table, schema in documented.items():
            actual = [r[0] for r in con.execute(
                "select column_name from information_schema.columns where table_schema || '.' || table_name = ? "
                "order by ordinal_position", [table]).fetchall()]
            assert [c.name for c in schema.columns] == actual, table
    groups = {graph.get(k).group_name for k in graph.get_all_asset_keys()}
    assert {"ingest", "quality", "analytics", "publish"} <= groups
