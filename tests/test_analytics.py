"""The analytics chain on whole markets: the real recorded history, the embedded synthetic market,
and the Dagster assets writing the marts into a temp warehouse."""

from __future__ import annotations

import base64
import datetime as dt
import logging
import shutil
from pathlib import Path

import dagster as dg
import polars as pl
import pytest
from polars.testing import assert_frame_equal

from pipeline.resources import AnalyticsSettings, MarketSources, WarehouseResource
from pipeline.sources.replay.dataset import load_dataset
from pipeline.sources.replay.synthetic import generate
from pipeline.transforms.chain import CHAIN_MARTS, RawFrames, compute_marts
from pipeline.transforms.config import AnalyticsConfig, without_market_caps
from pipeline.transforms.market_regime import PHASES
from pipeline.transforms.membership import membership
from pipeline.transforms.sector_index import sector_assignments
from pipeline.transforms.sector_weights import sector_weights
from pipeline.universe import load_universe
from pipeline.ranked_universe import universe_as_of
from tests.conftest import raw_frames
from warehouse import Warehouse
from warehouse.db import TABLES

CONFIG = without_market_caps(AnalyticsConfig())  # the fixed list: the recordings these tests replay
TOKENS = load_universe().frame()
RECOMMENDATIONS = ("marts.rotation_recommendation", "marts.hedge_recommendation", "marts.portfolio_orders",
                   "marts.recommendation_state")
EVALUATION = ("marts.backtest_daily", "marts.backtest_summary", "marts.backtest_trades", "marts.backtest_state",
              "marts.backtest_survivorship")
MARTS = [t for t in TABLES if t.startswith("marts.") and t not in RECOMMENDATIONS + EVALUATION]  # the analytics' marts
assert set(CHAIN_MARTS) == set(MARTS) - {"marts.sector_weights"}  # what compute_marts returns


def _sorted(frame: pl.DataFrame, table: str) -> pl.DataFrame:
    return frame.sort(list(TABLES[table]))


# ------------------------------------------------------------------ no look-ahead, real history


@pytest.fixture(scope="module")
def real_marts(real):
    return compute_marts(raw_frames(real), TOKENS, CONFIG)


def test_constituent_weights_sum_to_one_and_make_the_index_return(real, real_marts):
    """On the real history: each (sector, day, weighting)'s weights sum to 1, none is above the cap
    on a month's first day (the rebalance sets the targets; they drift after) where the cap can
    hold, and sum(weight * member return) is the index's ret_1d."""
    raw = raw_frames(real)
    members = membership(raw.ohlcv, TOKENS["symbol"], CONFIG.membership).collect()
    weights = sector_weights(members.lazy(), sector_assignments(TOKENS, CONFIG.sector_index), CONFIG.sector_index).collect()
    group = ["sector", "date", "weighting"]
    sums = weights.group_by(group).agg(pl.col("weight").sum(), n=pl.len(), top=pl.col("weight").max())
    assert sums.height > 10_000 and (sums["weight"] - 1).abs().max() < 1e-12
    capped = sums.filter((pl.col("weighting") == "capped") & (pl.col("n") >= 4))
    rebalanced = capped.filter(pl.col("date").dt.day() == 1)
    assert rebalanced["top"].max() <= CONFIG.sector_index.max_weight + 1e-12
    assert rebalanced.filter(pl.col("top") > CONFIG.sector_index.max_weight - 1e-9).height > 10  # the cap binds
    assert capped["top"].max() > CONFIG.sector_index.max_weight  # and a winner drifts past it mid-month
    rebuilt = (
        weights.join(members.select(pl.col("symbol").cast(pl.String), "date", "ret_1d"), on=["symbol", "date"])
        .group_by(group).agg(ret=(pl.col("weight") * pl.col("ret_1d")).sum())
        .join(real_marts["marts.sector_index"], on=group)
    )
    assert rebuilt.height == sums.height and (rebuilt["ret"] - rebuilt["ret_1d"]).abs().max() < 1e-12


@pytest.mark.parametrize("cutoff", [dt.date(2022, 6, 30), dt.date(2024, 12, 1)])
def test_no_look_ahead_marts_up_to_a_day_do_not_change_when_later_data_arrives(real, real_marts, cutoff):
    """Computed from data up to `cutoff`, and again from all of it: the rows up to `cutoff` are identical.

    2024-12-01 is where 24 recorded symbols stop (they look delisted), so it also checks that a
    token's later absence does not rewrite the days it traded.
    """
    early = compute_marts(raw_frames(real, until=cutoff), TOKENS, CONFIG)
    for table in CHAIN_MARTS:
        later = real_marts[table].filter(pl.col("date") <= cutoff)
        assert later.height > 0, table
        assert_frame_equal(_sorted(early[table], table), _sorted(later, table), check_exact=False, rel_tol=1e-12,
                           abs_tol=1e-12)


def test_real_history_has_signals_for_every_sector_and_a_phase_every_day_after_warm_up(real_marts):
    regime = real_marts["marts.market_regime"]
    assert regime["date"].max() == dt.date(2025, 8, 2)
    after_warm_up = regime.filter(pl.col("date") >= dt.date(2021, 1, 1))
    assert after_warm_up["phase"].null_count() == 0
    assert set(after_warm_up["phase"]) <= set(PHASES)
    # The 2022 bear market (BTC from ~47k in March to ~16k in November) reads as bear most of the year.
    h2_2022 = regime.filter(pl.col("date").is_between(dt.date(2022, 5, 1), dt.date(2022, 12, 31)))
    assert (h2_2022["phase"] == "bear").mean() > 0.5
    rs = real_marts["marts.relative_strength"].filter(pl.col("date") == dt.date(2025, 8, 2))
    assert {"Layer-1", "DeFi", "AI", "ETH", "Alts"} <= set(rs["sector"])
    assert rs["quadrant"].null_count() == 0
    # Funding on the recorded BTC perp: positive on average (longs pay), annualised like 0.01%/8h = 10.95%.
    btc = real_marts["marts.funding_costs"].filter(pl.col("symbol") == "BTC/USDT:USDT")
    assert btc["settlements"].max() == 3
    assert 0 < btc["funding_apr_pct"].mean() < 30


# ------------------------------------------------------------------ the synthetic market's true regimes


def test_the_detected_phase_agrees_with_the_synthetic_markets_true_regime(reference_market, capsys):
    """The embedded market (seed 7, 3.5 years) records its true regime per day; the phase the
    pipeline reads from prices, dominance, TVL and funding must agree on a clear majority of days,
    and the README states the agreement and the confusion matrix this computes."""
    folder = reference_market
    dataset = load_dataset(folder)
    regime = compute_marts(raw_frames(dataset), TOKENS, CONFIG)["marts.market_regime"]
    truth = pl.read_parquet(folder / "regimes_1d.parquet").rename({"phase": "true_phase"})
    judged = regime.join(truth, on="date").filter(pl.col("phase").is_not_null())
    agreement = (judged["phase"] == judged["true_phase"]).mean()
    matrix = (
        judged.pivot(on="phase", index="true_phase", values="date", aggregate_function="len")
        .fill_null(0)
        .select("true_phase", *[p for p in PHASES if p in judged["phase"]])
        .sort(pl.col("true_phase").replace_strict({p: i for i, p in enumerate(PHASES)}))
    )
    with capsys.disabled():
        print(f"\nSynthetic market, {judged.height} days after warm-up: detected phase = true regime on "
              f"{agreement:.1%} of days.\nConfusion matrix (rows: true regime, columns: detected phase):")
        with pl.Config(tbl_rows=10, tbl_cols=10, tbl_width_chars=200, tbl_hide_dataframe_shape=True):
            print(matrix)
    assert judged.height > 900
    assert agreement > 0.55
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    assert f"seed 7, {judged.height:,} days after the 200-day warm-up" in readme
    assert f"the detected phase agrees on **{agreement:.1%}** of days" in readme
    table = ["| true \\ detected | " + " | ".join(matrix.columns[1:]) + " |", "|---" * len(matrix.columns) + "|"]
    table += ["| " + row[0] + " | " + " | ".join(f"**{n}**" if col == row[0] else str(n)
                                                for col, n in zip(matrix.columns[1:], row[1:], strict=True)) + " |"
              for row in matrix.iter_rows()]
    assert "\n".join(table) in readme, "\n".join(table)
    assert set(judged["phase"]) == set(PHASES)  # every phase is detected somewhere


# ------------------------------------------------------------------ the assets, on a temp warehouse

AS_OF = dt.date(2025, 6, 30)


@pytest.fixture(scope="module")
def synthetic_year(tmp_path_factory):
    return generate(tmp_path_factory.mktemp("synth") / "synthetic", AS_OF, seed=5, years=1.2)


def _run(job: str, folder, warehouse_path, start: dt.date, end: dt.date,
         instance: dg.DagsterInstance | None = None) -> dg.ExecuteInProcessResult:
    """`job` as on the night after `end`: the raw months from `start`'s to `end`'s, then the marts."""
    from assets.partitions import month_key
    from pipeline.definitions import defs

    definition = defs.resolve_job_def(job)
    return definition.execute_in_process(
        instance=instance or dg.DagsterInstance.ephemeral(),
        resources={
            "sources": MarketSources(replay_data=str(folder), until=end.isoformat()),
            "warehouse": WarehouseResource(path=str(warehouse_path)),
            "analytics": AnalyticsSettings(),
        },
        tags={"dagster/asset_partition_range_start": month_key(start),
              "dagster/asset_partition_range_end": month_key(end)} if definition.partitions_def else {},
    )


def test_the_nightly_job_writes_the_marts_the_chain_computes_and_reruns_change_nothing(synthetic_year, tmp_path):
    """Given a year of synthetic market, when the nightly job materialises it, the marts in the
    warehouse are what the pure chain computes from the same raw tables; a second run and a later
    single-day run leave every earlier row as it was."""
    dataset = load_dataset(synthetic_year)
    path = tmp_path / "rotation.duckdb"
    start = dataset.first_date
    result = _run("nightly", synthetic_year, path, start, AS_OF - dt.timedelta(days=1))
    assert result.success
    checks = {c.asset_key.to_user_string(): c.passed for c in result.get_asset_check_evaluations()}
    # the gate's record; states (assets/resume.py); categories, written beside raw.market_caps by its gated asset
    unchecked = {"raw.quarantine", "marts.backtest_state", "marts.recommendation_state", "raw.coin_categories"}
    assert checks == {f"{t.replace('.', '/')}": True for t in TABLES if t not in unchecked}
    wh = Warehouse(path)
    universe = universe_as_of(wh, AS_OF - dt.timedelta(days=1))  # ranked by the market caps the run ingested
    assert universe.fallback is None
    expected = compute_marts(
        RawFrames(
            ohlcv=wh.query("select * from raw.ohlcv_1d order by symbol, date"),
            funding=wh.query("select * from raw.funding_rates"),
            defi_tvl=wh.query("select * from raw.defi_tvl"),
            btc_dominance=wh.query("select * from raw.btc_dominance"),
        ),
        universe.tokens, universe.config, universe.symbol_ranks, universe.ranks,
    )
    stored = {t: wh.query("select * from " + t) for t in CHAIN_MARTS}
    for table in CHAIN_MARTS:
        assert stored[table].height > 0, table
        want = expected[table].select(stored[table].columns)
        assert_frame_equal(_sorted(stored[table], table), _sorted(want, table), check_dtypes=False, rel_tol=1e-12)

    # The altcoin season of a day is one SQL query over the warehouse (the README shows it).
    sql = (Path(__file__).resolve().parents[1] / "warehouse" / "queries" / "altseason_of_a_day.sql").read_text()
    body = sql[sql.index("with closes as"):].strip()
    assert body in (Path(__file__).resolve().parents[1] / "README.md").read_text().replace("\n  ", "\n")
    season = stored["marts.altseason"].drop_nulls("altseason_index")
    for day in season["date"].gather_every(60):
        index, eligible = wh.query(sql, {"day": day}).row(0)
        mart = season.filter(pl.col("date") == day).row(0, named=True)
        assert eligible == mart["n_eligible"] and abs(index - mart["altseason_index"]) < 1e-6, day
    # What survivorship was worth: each strategy on both universes over the same days; the
    # point-in-time side is the backtest's own figures.
    survivorship = wh.query("select * from marts.backtest_survivorship")
    summary = wh.query("select * from marts.backtest_summary")
    assert survivorship.height == 2 * summary.height
    pit = survivorship.filter(pl.col("universe") == "point_in_time").join(summary, on="strategy", suffix="_all")
    assert (pit["first_date"] >= pit["first_date_all"]).all()
    same_days = pit.filter(pl.col("days") == pl.col("days_all"))
    assert same_days.height and ((same_days["cagr"] - same_days["cagr_all"]).abs() < 1e-12).all()

    # The nightly schedule's shape: one more day. Earlier rows stay, one new day per mart appears.
    assert _run("nightly", synthetic_year, path, AS_OF, AS_OF).success
    for table in CHAIN_MARTS:
        now = wh.query("select * from " + table)
        assert_frame_equal(_sorted(now.filter(pl.col("date") < AS_OF), table), _sorted(stored[table], table))
        assert now.filter(pl.col("date") == AS_OF).height > 0, table
    regime = wh.query("select phase, risk_mode, missing_inputs from marts.market_regime where date = ?", [AS_OF])
    assert regime["phase"][0] in PHASES and regime["risk_mode"][0] in ("risk_on", "risk_off")
    dupes = wh.query("select count(*) - count(distinct (sector, date, weighting)) from marts.sector_index").item()
    assert dupes == 0


def test_without_market_caps_the_night_runs_on_the_fixed_list_and_says_so(synthetic_year, tmp_path):
    """An older recording without market caps: the night succeeds on the fixed list, with a WARNING,
    the run's tag and no market-cap index; there is no survivorship to measure."""
    folder = tmp_path / "no_caps"
    shutil.copytree(synthetic_year, folder)
    (folder / "market_caps_monthly.parquet").unlink()
    path = tmp_path / "rotation.duckdb"
    end = AS_OF - dt.timedelta(days=1)
    instance = dg.DagsterInstance.ephemeral()
    result = _run("nightly", folder, path, end - dt.timedelta(days=400), end, instance)
    assert result.success
    assert instance.get_run_by_id(result.run_id).tags["rotation/universe"] == "fixed-list"
    warnings = [e.user_message for e in instance.all_logs(result.run_id)
                if e.level == logging.WARNING and "no market caps" in e.user_message]
    assert any(w.startswith("marts.universe_membership: no market caps") for w in warnings)
    wh = Warehouse(path)
    assert wh.query("select count(*) from raw.market_caps").item() == 0
    assert wh.query("select distinct weighting from marts.sector_index order by 1")["weighting"].to_list() == ["capped", "equal"]
    assert wh.query("select count(*) from marts.universe_membership where rank is not null").item() == 0
    assert wh.query("select count(*) from marts.backtest_survivorship").item() == 0
    assert wh.query("select count(*) from marts.rotation_recommendation").item() > 0


def test_asset_metadata_shows_the_latest_values_as_markdown(synthetic_year, tmp_path, monkeypatch):
    """The latest values as tables, the day's chart as an embedded PNG under 200 kB (the suite turns
    charts off elsewhere: ROTATION_CHARTS=0 in conftest), and the key numbers as floats."""
    monkeypatch.setenv("ROTATION_CHARTS", "1")
    path = tmp_path / "rotation.duckdb"
    assert _run("ingest", synthetic_year, path, AS_OF - dt.timedelta(days=120), AS_OF).success
    result = _run("analytics", synthetic_year, path, AS_OF - dt.timedelta(days=2), AS_OF)
    assert result.success
    metadata = {
        e.asset_key.to_user_string(): e.metadata
        for e in (ev.event_specific_data.materialization for ev in result.get_asset_materialization_events())
    }
    assert set(metadata) == {f"marts/{t.split('.')[1]}" for t in MARTS}
    rs_table = metadata["marts/relative_strength"]["latest"].value
    assert rs_table.startswith("| sector | quadrant | rs_ratio |") and "| Alts |" in rs_table
    regime_table = metadata["marts/market_regime"]["latest"].value
    assert "| phase |" in regime_table and "| btc_trend_pct |" in regime_table
    days = Warehouse(path).query("select count(distinct date) from marts.sector_index").item()
    assert metadata["marts/sector_index"]["rows_written"].value == days * 3 * 11 > 0  # days x weightings x sectors
    for asset in ("marts/relative_strength", "marts/altseason", "marts/market_regime"):
        chart = metadata[asset]["chart"].value
        assert chart.startswith("![") and f"as of {AS_OF}" in chart.split("](")[0] and len(chart.encode()) <= 200_000, asset
        assert base64.b64decode(chart.split("base64,")[1].rstrip(")"))[:8] == b"\x89PNG\r\n\x1a\n", asset
    assert "chart" not in metadata["marts/sector_weights"]
    stored = Warehouse(path).query("select altseason_index, btc_dominance_pct from marts.market_regime where date = ?", [AS_OF])
    assert metadata["marts/market_regime"]["btc_dominance_pct"].value == stored["btc_dominance_pct"].item()
    assert metadata["marts/altseason"]["altseason_index"].value == pytest.approx(stored["altseason_index"].item())


def test_marts_on_an_empty_warehouse_fail_saying_what_to_run_first_and_write_nothing(tmp_path):
    """Analytics before any ingest have no day to be computed as of: the first asset fails naming
    the raw table and what to run; nothing downstream runs, nothing is written."""
    from pipeline.definitions import defs

    path = tmp_path / "rotation.duckdb"
    result = defs.resolve_job_def("analytics").execute_in_process(
        instance=dg.DagsterInstance.ephemeral(), raise_on_error=False,
        resources={"warehouse": WarehouseResource(path=str(path)), "analytics": AnalyticsSettings()},
    )
    assert not result.success
    failures = [e.step_failure_data.error.message for e in result.all_events if e.is_step_failure]
    assert failures and all("raw.ohlcv_1d holds no candles of 'binance'" in m and "materialise the raw assets first" in m
                            for m in failures), failures
    assert not result.get_asset_materialization_events()
    assert all(Warehouse(path).query("select count(*) from " + t).item() == 0 for t in MARTS)
