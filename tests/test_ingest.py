"""Ingestion end to end: the raw assets, run on a replay, into a temp warehouse.

The assets are invoked directly over a range of their monthly partitions (the same code a run
executes, without Dagster's event log), and once through a real Dagster run.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import dagster as dg
import polars as pl
import pytest
from polars.testing import assert_frame_equal

from assets.ingest import btc_dominance, defi_tvl, funding_rates, ingest_assets, ohlcv_1d
from assets.partitions import month_key
from pipeline.resources import MarketSources, QualitySettings, WarehouseResource
from pipeline.sources.errors import SourceError
from pipeline.sources.replay import FaultRule, ReplayServer, load_dataset
from pipeline.sources.replay.dataset import ReplayUnreachable
from pipeline.sources.replay.synthetic import generate
from pipeline.universe import UniverseError
from warehouse import Warehouse
from warehouse.db import TABLES

REAL_FIRST, REAL_AS_OF = "2018-01-01", "2025-08-02"
SYNTH_AS_OF = dt.date(2025, 6, 30)
RAW_KEYS = {
    "raw.ohlcv_1d": "exchange, symbol, date",
    "raw.funding_rates": "exchange, symbol, funding_time",
    "raw.defi_tvl": "scope, name, date",
    "raw.btc_dominance": "date",
}


def run(
    assets, sources: MarketSources, warehouse_path: Path, start: str, end: str, quality: QualitySettings | None = None
) -> dict[str, dg.MaterializeResult]:
    """Materialise `assets` over the months of days start..end; the result (metadata, quality check) per asset name."""
    resources = {"sources": sources, "warehouse": WarehouseResource(path=str(warehouse_path)),
                 "quality": quality or QualitySettings()}
    months = dg.PartitionKeyRange(*(month_key(dt.date.fromisoformat(day)) for day in (start, end)))
    with dg.build_asset_context(partition_key_range=months, resources=resources) as ctx:
        return {asset.key.path[-1]: asset(ctx) for asset in assets}


def counts(path: Path) -> dict[str, int]:
    wh = Warehouse(path)
    return {t: wh.query("select count(*) from " + t).item() for t in RAW_KEYS}


def duplicate_keys(path: Path) -> dict[str, int]:
    wh = Warehouse(path)
    return {
        t: wh.query("select count(*) from (select " + k + " from " + t + " group by all having count(*) > 1)").item()
        for t, k in RAW_KEYS.items()
    }


@pytest.fixture(scope="module")
def synthetic_dir(tmp_path_factory) -> Path:
    return generate(tmp_path_factory.mktemp("synth") / "synthetic", SYNTH_AS_OF, seed=3, years=0.5)


# ------------------------------------------------------------------ the real recorded history


@pytest.fixture(scope="module")
def real_warehouse(real, tmp_path_factory):
    from tests.conftest import REAL_DATA

    path = tmp_path_factory.mktemp("real") / "rotation.duckdb"
    # the shipped policy: it accepts the one gap of the recording (PEPE/USDT 2024-12-02..14)
    reports = run(ingest_assets, MarketSources(replay_data=str(REAL_DATA)), path, REAL_FIRST, REAL_AS_OF, QualitySettings())
    return path, reports, REAL_DATA


def test_real_history_passes_the_gate_with_its_known_glitches_quarantined(real_warehouse):
    path, reports, _ = real_warehouse
    checks = {name: result.check_results[0] for name, result in reports.items()}
    assert all(check.check_name == "quality" for check in checks.values())
    assert {n for n, c in checks.items() if c.passed} == {"ohlcv_1d", "funding_rates", "defi_tvl"}
    dominance = checks["btc_dominance"]  # the two vendor glitches: quarantined, a warning, nothing blocked
    assert dominance.severity == dg.AssetCheckSeverity.WARN and "one_day_spike" in dominance.description
    caps = checks["market_caps"]  # CoinMarketCap's three ranks far off its own caps: a warning, rows kept
    assert caps.severity == dg.AssetCheckSeverity.WARN and "rank_follows_cap" in caps.description
    quarantined = Warehouse(path).query("select table_name, row_key, expectation, action, kept_in_table from raw.quarantine "
                                        "order by table_name, row_key")
    assert quarantined.rows() == [
        ("raw.btc_dominance", '{"date":"2018-01-16"}', "raw.btc_dominance.one_day_spike", "warn", False),
        ("raw.btc_dominance", '{"date":"2020-05-10"}', "raw.btc_dominance.one_day_spike", "warn", False),
        ("raw.market_caps", '{"source":"coinmarketcap","date":"2022-06-01","coin":"wax"}', "raw.market_caps.rank_follows_cap", "warn", True),
        ("raw.market_caps", '{"source":"coinmarketcap","date":"2022-08-01","coin":"medibloc"}', "raw.market_caps.rank_follows_cap", "warn", True),
        ("raw.market_caps", '{"source":"coinmarketcap","date":"2024-08-01","coin":"edelcoin"}', "raw.market_caps.rank_follows_cap", "warn", True),
    ]
    assert (path.parent / "quality" / "raw.btc_dominance.html").read_text().count("one_day_spike") >= 1


def test_real_history_candles_are_exactly_the_recorded_rows(real_warehouse):
    path, reports, data = real_warehouse
    # the delisted pairs' file holds the universe's renamed tokens (POL, RENDER) and SAND
    recorded = pl.concat([pl.read_parquet(data / f"{name}.parquet") for name in ("ohlcv_1d", "ohlcv_1d_delisted")])
    stored = Warehouse(path).query(
        "select exchange, symbol, date, open, high, low, close, volume, source from raw.ohlcv_1d"
    )
    covered = set(stored["symbol"])
    assert len(covered) >= 35
    assert covered <= set(recorded["symbol"])
    expected = recorded.filter(pl.col("symbol").is_in(covered)).sort("symbol", "date")
    assert_frame_equal(stored.drop("source").sort("symbol", "date"), expected)
    assert set(stored["source"]) == {"binance@replay:real"}
    assert reports["ohlcv_1d"].metadata["skipped_symbols"] == "none"
    # their candles end before the as-of day: listed, not trading (ccxt: inactive), fetched all the same
    inactive = set(reports["ohlcv_1d"].metadata["inactive_symbols"].split(", "))
    assert {"IMX/USDT", "POL/USDT", "RENDER/USDT", "SAND/USDT"} <= inactive
    ends = stored.group_by("symbol").agg(pl.col("date").max())
    assert inactive == set(ends.filter(pl.col("date") < dt.date.fromisoformat(REAL_AS_OF))["symbol"])


def test_real_history_funding_tvl_and_dominance_are_the_recorded_rows(real_warehouse):
    path, _, data = real_warehouse
    wh = Warehouse(path)
    funding = wh.query(
        "select symbol, epoch_ms(funding_time) ms, funding_rate, mark_price from raw.funding_rates order by all"
    )
    recorded = (
        pl.read_parquet(data / "funding_8h.parquet")
        .select("symbol", pl.col("ts").dt.epoch("ms").alias("ms"), "funding_rate", "mark_price")
        .sort(pl.all())
    )
    assert_frame_equal(funding, recorded)  # every recorded perp is in the universe
    tvl = wh.query("select name as chain, date, tvl_usd from raw.defi_tvl where scope = 'chain' order by all")
    recorded_tvl = pl.read_parquet(data / "chain_tvl_1d.parquet").select(
        "chain", "date", pl.col("tvl_usd").cast(pl.Float64)
    )
    assert_frame_equal(tvl, recorded_tvl.sort(pl.all()))
    dominance = wh.query("select date, btc_dominance_pct, total_market_cap_usd from raw.btc_dominance order by date")
    glitches = [dt.date(2018, 1, 16), dt.date(2020, 5, 10)]  # quarantined: see the gate test above
    recorded_dom = pl.read_parquet(data / "btc_dominance_1d.parquet").filter(~pl.col("date").is_in(glitches)).sort("date")
    assert_frame_equal(dominance, recorded_dom, abs_tol=1e-9, check_exact=False)


def test_a_second_run_fetches_nothing_and_duplicates_nothing(real_warehouse):
    path, _, data = real_warehouse
    before = counts(path)
    sources = MarketSources(replay_data=str(data))
    reports = run(ingest_assets, sources, path, REAL_FIRST, REAL_AS_OF, QualitySettings())
    assert {name: result.metadata["rows_written"] for name, result in reports.items()} == {
        "ohlcv_1d": 0, "funding_rates": 0, "defi_tvl": 0, "btc_dominance": 0, "market_caps": 0,
    }
    assert counts(path) == before
    assert set(duplicate_keys(path).values()) == {0}


# ------------------------------------------------------------------ incremental, bybit, failures


def test_a_later_run_adds_only_the_newer_days(synthetic_dir, warehouse_path):
    first_end = (SYNTH_AS_OF - dt.timedelta(days=10)).isoformat()
    # ten nights earlier (the replay serves nothing later), then today, over the same months
    run(ingest_assets, MarketSources(replay_data=str(synthetic_dir), until=first_end), warehouse_path, "2025-01-01", first_end)
    early = counts(warehouse_path)
    assert Warehouse(warehouse_path).query("select max(date) from raw.ohlcv_1d").item().isoformat() == first_end
    run(ingest_assets, MarketSources(replay_data=str(synthetic_dir)), warehouse_path, "2025-01-01", SYNTH_AS_OF.isoformat())
    late = counts(warehouse_path)
    wh = Warehouse(warehouse_path)
    assert wh.query("select max(date) from raw.ohlcv_1d").item() == SYNTH_AS_OF
    newer = wh.query("select count(*) from raw.ohlcv_1d where date > ?", [first_end]).item()
    assert late["raw.ohlcv_1d"] - early["raw.ohlcv_1d"] == newer > 0
    assert all(late[t] > early[t] for t in RAW_KEYS)
    assert set(duplicate_keys(warehouse_path).values()) == {0}


def test_bybit_serves_the_same_candles(synthetic_dir, tmp_path):
    binance, bybit = tmp_path / "binance.duckdb", tmp_path / "bybit.duckdb"
    run([ohlcv_1d], MarketSources(replay_data=str(synthetic_dir)), binance, "2025-05-01", "2025-06-30")
    run([ohlcv_1d], MarketSources(replay_data=str(synthetic_dir), exchange="bybit"), bybit, "2025-05-01", "2025-06-30")
    cols = "select symbol, date, open, high, low, close, volume from raw.ohlcv_1d order by symbol, date"
    assert_frame_equal(Warehouse(bybit).query(cols), Warehouse(binance).query(cols))
    assert Warehouse(bybit).query("select distinct exchange from raw.ohlcv_1d").item() == "bybit"


def test_a_replay_at_rotation_replay_url_serves_a_run_as_its_own_replay_does(synthetic_dir, tmp_path, monkeypatch):
    """ROTATION_REPLAY_URL: the run asks a replay running elsewhere (as the exchanges are) for its
    dataset and days instead of loading one, and stores the same rows, tagged with its label."""
    own, remote = tmp_path / "own.duckdb", tmp_path / "remote.duckdb"
    run(ingest_assets, MarketSources(replay_data=str(synthetic_dir)), own, "2025-05-01", "2025-06-30")
    with ReplayServer(load_dataset(synthetic_dir)) as server:
        monkeypatch.setenv("ROTATION_REPLAY_URL", server.base_url)
        results = run(ingest_assets, MarketSources(), remote, "2025-05-01", "2025-06-30")
        served = len(server.requests)
    assert served > 0 and results["ohlcv_1d"].metadata["dataset"] == "synthetic"
    for table in ("raw.ohlcv_1d", "raw.funding_rates", "raw.defi_tvl", "raw.btc_dominance"):
        key = ", ".join(TABLES[table])
        rows = [Warehouse(path).query(f"select * exclude (ingested_at) from {table} order by {key}") for path in (own, remote)]
        assert rows[0].height > 0
        assert_frame_equal(rows[1], rows[0])
    with pytest.raises(dg.DagsterResourceFunctionError) as err:  # .until steers a replay the run starts
        run([ohlcv_1d], MarketSources(until="2025-06-01"), remote, "2025-06-01", "2025-06-01")
    assert "unset ROTATION_REPLAY_URL" in str(err.value.__cause__)


def test_a_replay_url_nothing_answers_at_is_named(tmp_path, monkeypatch):
    monkeypatch.setenv("ROTATION_REPLAY_URL", "http://127.0.0.1:9")
    with pytest.raises(dg.DagsterResourceFunctionError) as err:
        run([ohlcv_1d], MarketSources(), tmp_path / "w.duckdb", "2025-06-01", "2025-06-01")
    assert isinstance(err.value.__cause__, ReplayUnreachable)
    assert "ROTATION_REPLAY_URL=http://127.0.0.1:9: no replay server answers there" in str(err.value.__cause__)
    assert not (tmp_path / "w.duckdb").exists()


@pytest.fixture
def served(synthetic_dir, warehouse_path):
    """A replay in its own sources resource, so a test can inject faults into it."""
    sources = MarketSources(replay_data=str(synthetic_dir), backoff_s=0.01)
    resources = {"sources": sources, "warehouse": WarehouseResource(path=str(warehouse_path)), "quality": QualitySettings()}
    with dg.build_asset_context(
        partition_key_range=dg.PartitionKeyRange("2025-06-01", "2025-06-01"), resources=resources
    ) as ctx:
        yield ctx, ctx.resources.sources._server


def test_an_unreachable_source_fails_naming_the_endpoint_and_writes_nothing(served, warehouse_path):
    ctx, server = served
    server.faults.add(FaultRule(kind="5xx", path="/protocol/uniswap", status=503))
    with pytest.raises(dg.Failure, match=r"defi_tvl: source defillama GET /protocol/uniswap failed: "
                       r".*HTTP 503 after 5 attempts") as failure:
        defi_tvl(ctx)
    assert failure.value.allow_retries  # a source that is down may be back for the asset's next attempt
    assert isinstance(failure.value.__cause__, SourceError)
    assert counts(warehouse_path)["raw.defi_tvl"] == 0


def test_a_bad_universe_entry_stops_the_run_before_anything_is_written(synthetic_dir, tmp_path, warehouse_path):
    bad = tmp_path / "universe.yaml"
    bad.write_text("sectors: [Core]\ntokens:\n  BTC: {sector: Core, bucket: core, spot: BTCUSDT, coingecko: bitcoin}\n")
    sources = MarketSources(replay_data=str(synthetic_dir), universe_path=str(bad))
    with pytest.raises(dg.DagsterResourceFunctionError) as err:
        run(ingest_assets, sources, warehouse_path, "2025-06-01", "2025-06-30")
    assert isinstance(err.value.__cause__, UniverseError)
    assert "token 'BTC': spot: " in str(err.value.__cause__) and "'BTCUSDT'" in str(err.value.__cause__)
    assert not warehouse_path.exists()


# ------------------------------------------------------------------ Dagster itself


def test_definitions_load_with_raw_assets_on_monthly_partitions_the_rest_unpartitioned_and_their_lineage():
    from pipeline.definitions import defs

    keys = {k.to_user_string() for k in defs.resolve_all_asset_keys()}
    assert keys == {
        "raw/ohlcv_1d", "raw/funding_rates", "raw/defi_tvl", "raw/btc_dominance", "raw/market_caps",
        "marts/sector_index", "marts/sector_weights", "marts/relative_strength", "marts/altseason",
        "marts/funding_costs", "marts/market_regime", "warehouse/read_snapshot", "raw/quarantine",
        "marts/rotation_recommendation", "marts/hedge_recommendation", "marts/portfolio_orders",
        "marts/backtest_daily", "marts/backtest_summary", "marts/backtest_trades", "marts/backtest_state",
        "marts/recommendation_state", "warehouse/report", "marts/universe_membership", "marts/backtest_survivorship",
    }
    checks = {(c.asset_key.to_user_string(), c.name) for c in defs.resolve_asset_graph().asset_check_keys}
    gated = keys - {"warehouse/read_snapshot", "raw/quarantine", "warehouse/report", "marts/backtest_state",
                    "marts/recommendation_state"}
    raw = {k for k in keys if k.startswith("raw/")} - {"raw/quarantine"}
    # market caps are optional and monthly: no `fresh` check (their runs warn when a vendor gives none)
    assert checks == {(k, "quality") for k in gated} | {(k, "fresh") for k in raw - {"raw/market_caps"}}
    for name in ("ingest", "nightly"):
        job = defs.resolve_job_def(name)
        assert isinstance(job.partitions_def, dg.MonthlyPartitionsDefinition)
        assert job.partitions_def.timezone == "UTC"
        assert job.partitions_def.get_last_partition_key() == month_key(dt.datetime.now(dt.UTC).date())  # this month
    assert defs.resolve_job_def("analytics").partitions_def is None
    graph = defs.resolve_asset_graph()
    upstream = {k.to_user_string() for k in graph.get(dg.AssetKey(["marts", "market_regime"])).parent_keys}
    assert upstream == {
        "marts/sector_index", "marts/relative_strength", "marts/altseason", "marts/funding_costs",
        "raw/btc_dominance", "raw/defi_tvl",
    }
    groups = {k.to_user_string(): graph.get(k).group_name for k in graph.get_all_asset_keys()}
    assert {k for k, g in groups.items() if g == "recommendations"} == {
        "marts/rotation_recommendation", "marts/hedge_recommendation", "marts/portfolio_orders", "marts/recommendation_state"}
    assert {k for k, g in groups.items() if g == "evaluation"} == {
        "marts/backtest_daily", "marts/backtest_summary", "marts/backtest_trades", "marts/backtest_state",
        "marts/backtest_survivorship"}
    # the user's orders come after the published model (a bad portfolio file cannot hold it back)
    orders_upstream = {k.to_user_string() for k in graph.get(dg.AssetKey(["marts", "portfolio_orders"])).parent_keys}
    assert "warehouse/read_snapshot" in orders_upstream
    snapshot_upstream = {k.to_user_string() for k in graph.get(dg.AssetKey(["warehouse", "read_snapshot"])).parent_keys}
    assert {"marts/rotation_recommendation", "marts/backtest_summary"} <= snapshot_upstream
    assert "marts/portfolio_orders" not in snapshot_upstream
    # the report is made from the published snapshot, and a bad portfolio file does not skip it
    assert {k.to_user_string() for k in graph.get(dg.AssetKey(["warehouse", "report"])).parent_keys} \
        == {"warehouse/read_snapshot"}
    for key in graph.get_all_asset_keys():
        node = graph.get(key)
        if key.to_user_string() in raw:
            assert node.backfill_policy == dg.BackfillPolicy.single_run()
        else:  # recomputed from the start of history each run: nothing to partition
            assert node.partitions_def is None


def test_a_dagster_run_materialises_a_range_of_months(synthetic_dir, warehouse_path):
    from pipeline.definitions import defs

    result = defs.resolve_job_def("ingest").execute_in_process(
        instance=dg.DagsterInstance.ephemeral(),
        resources={
            "sources": MarketSources(replay_data=str(synthetic_dir)),
            "warehouse": WarehouseResource(path=str(warehouse_path)),
        },
        tags={"dagster/asset_partition_range_start": "2025-05-01", "dagster/asset_partition_range_end": "2025-06-01"},
    )
    assert result.success
    materialized = {
        (event.asset_key.to_user_string(), event.partition)
        for event in (e.event_specific_data.materialization for e in result.get_asset_materialization_events())
    }
    assert materialized == {(f"raw/{name}", month) for name in ("ohlcv_1d", "funding_rates", "defi_tvl", "btc_dominance",
                                                                 "market_caps")
                            for month in ("2025-05-01", "2025-06-01")}
    wh = Warehouse(warehouse_path)
    assert wh.query("select min(date), max(date) from raw.ohlcv_1d").row(0) == (dt.date(2025, 5, 1), SYNTH_AS_OF)


# ------------------------------------------------------------------ a rejected row's hole

HOLE_DAY = dt.date(2025, 6, 10)


def small_real_dataset(folder: Path, data: Path, edit: tuple[str, pl.Expr, str, object] | None = None) -> Path:
    """May and June 2025 of the real history for BTC, ETH and SOL (candles, perps), Ethereum's TVL and
    dominance, written as a dataset folder of its own; `edit` = (file, rows, column, value) sets
    `column` to `value` on the file's `rows`, as a source that sent one bad value."""
    folder.mkdir(parents=True, exist_ok=True)
    keep = {
        "ohlcv_1d": pl.col("symbol").is_in(["BTC/USDT", "ETH/USDT", "SOL/USDT"]),
        "funding_8h": pl.col("symbol").is_in(["BTC/USDT:USDT", "ETH/USDT:USDT", "SOL/USDT:USDT"]),
        "chain_tvl_1d": pl.col("chain") == "ethereum",
        "btc_dominance_1d": pl.lit(True),
    }
    for name, rows in keep.items():
        frame = pl.read_parquet(data / f"{name}.parquet")
        when = pl.col("ts").dt.date() if name == "funding_8h" else pl.col("date")
        frame = frame.filter(rows & when.is_between(dt.date(2025, 5, 1), dt.date(2025, 6, 30)))
        if edit is not None and edit[0] == name:
            frame = frame.with_columns(pl.when(edit[1]).then(pl.lit(edit[3])).otherwise(pl.col(edit[2])).alias(edit[2]))
        frame.write_parquet(folder / f"{name}.parquet")
    return folder


# (raw asset, dataset file, the bad row, column, bad value, table, the row's key there)
BAD_ROWS = {
    "a candle with its high below its low": (
        ohlcv_1d, "ohlcv_1d", (pl.col("symbol") == "SOL/USDT") & (pl.col("date") == HOLE_DAY), "high", 1.0,
        "raw.ohlcv_1d", {"symbol": "SOL/USDT", "date": HOLE_DAY}),
    "a funding rate given in percent": (
        funding_rates, "funding_8h", (pl.col("symbol") == "BTC/USDT:USDT") & (pl.col("ts").dt.date() == HOLE_DAY)
        & (pl.col("ts").dt.hour() == 8), "funding_rate", 0.5,
        "raw.funding_rates", {"symbol": "BTC/USDT:USDT", "funding_time": dt.datetime(2025, 6, 10, 8, tzinfo=dt.UTC)}),
    "a negative TVL": (
        defi_tvl, "chain_tvl_1d", pl.col("date") == HOLE_DAY, "tvl_usd", -1.0,
        "raw.defi_tvl", {"scope": "chain", "name": "ethereum", "date": HOLE_DAY}),
    "a dominance above 100%": (
        btc_dominance, "btc_dominance_1d", pl.col("date") == HOLE_DAY, "btc_dominance_pct", 140.0,
        "raw.btc_dominance", {"date": HOLE_DAY}),
}


@pytest.mark.parametrize("defect", list(BAD_ROWS))
def test_a_row_the_gate_rejected_is_fetched_again_once_the_source_is_fixed(defect, real_data, tmp_path, warehouse_path):
    """The README's "fix the source and re-run": a rejected row mid-month leaves a hole, not the newest
    day; the next night, on the fixed source, fetches the hole again with the new day, and the check passes."""
    asset, file, bad, column, value, table, key = BAD_ROWS[defect]
    broken = small_real_dataset(tmp_path / "broken", real_data, (file, bad, column, value))
    night = run([asset], MarketSources(replay_data=str(broken), until="2025-06-20"), warehouse_path, "2025-06-01", "2025-06-20")
    assert not night[asset.key.path[-1]].check_results[0].passed
    where = " and ".join(f"{c} = ?" for c in key)
    holds = f"select count(*) from {table} where {where}"
    assert Warehouse(warehouse_path).query(holds, list(key.values())).item() == 0
    assert Warehouse(warehouse_path).query("select count(*) from raw.quarantine where table_name = ?", [table]).item() > 0

    fixed = small_real_dataset(tmp_path / "fixed", real_data)
    night = run([asset], MarketSources(replay_data=str(fixed), until="2025-06-21"), warehouse_path, "2025-06-01", "2025-06-21")
    result = night[asset.key.path[-1]]
    assert result.check_results[0].passed, result.check_results[0].description
    recorded = pl.read_parquet(fixed / f"{file}.parquet").filter(bad)[column].item()
    stored = Warehouse(warehouse_path).query(f"select {column} from {table} where {where}", list(key.values()))
    assert stored[column].to_list() == [recorded]
    new_days = {"ohlcv_1d": 3, "funding_8h": 3 * 3, "chain_tvl_1d": 1, "btc_dominance_1d": 1}[file]
    assert result.metadata["rows_written"] == 1 + new_days  # the hole and 06-21: nothing held is written again
    assert set(duplicate_keys(warehouse_path).values()) == {0}


def candles_asked_from(folder: Path, path: Path, start: str, end: str, symbol: str) -> list[dt.date]:
    """Run the candles over the months of days start..end on the night after `end`: the first day of
    each candle request for `symbol` the replay served."""
    resources = {"sources": MarketSources(replay_data=str(folder), until=end),
                 "warehouse": WarehouseResource(path=str(path)), "quality": QualitySettings()}
    months = dg.PartitionKeyRange(*(month_key(dt.date.fromisoformat(day)) for day in (start, end)))
    with dg.build_asset_context(partition_key_range=months, resources=resources) as ctx:
        ohlcv_1d(ctx)
        served = ctx.resources.sources._server.requests
    return [dt.datetime.fromtimestamp(int(r.query["startTime"]) / 1000, dt.UTC).date()
            for r in served if r.path == "/api/v3/klines" and r.query["symbol"] == symbol]


def test_a_gap_the_source_itself_has_is_asked_for_again_only_by_runs_of_its_months(real_data, tmp_path, warehouse_path):
    """A recording gap is no rejected row, but looks the same from the warehouse: a run of its months
    asks for it again (one request), a night of a later month does not reach back for it."""
    folder = small_real_dataset(tmp_path / "gap", real_data)
    candles = pl.read_parquet(folder / "ohlcv_1d.parquet")
    gap = pl.col("date").is_between(dt.date(2025, 5, 10), dt.date(2025, 5, 12))
    candles.filter(~((pl.col("symbol") == "SOL/USDT") & gap)).write_parquet(folder / "ohlcv_1d.parquet")
    assert candles_asked_from(folder, warehouse_path, "2025-05-01", "2025-06-20", "SOLUSDT") == [dt.date(2025, 5, 1)]
    assert candles_asked_from(folder, warehouse_path, "2025-05-01", "2025-06-21", "SOLUSDT") == [dt.date(2025, 5, 10)]
    assert candles_asked_from(folder, warehouse_path, "2025-06-01", "2025-06-22", "SOLUSDT") == [dt.date(2025, 6, 22)]
    held = Warehouse(warehouse_path).query("select count(*) from raw.ohlcv_1d where symbol = 'SOL/USDT'").item()
    assert held == 31 + 22 - 3
