"""Shared fixtures: the real recorded history beside the project, temp warehouses, replay servers."""

from __future__ import annotations

import datetime as dt
import os
import shutil
from pathlib import Path

import pytest

# Read when pipeline.definitions is imported: a test whose source fails re-runs the asset after
# a fraction of a second instead of the production minute (test_retries.py relies on it).
os.environ.setdefault("ROTATION_RETRY_DELAY_S", "0.1")
# Each asset's chart costs about a second to render, in every run of every test; the tests that are
# about charts (test_charts.py, the asset metadata and UI tests) turn them back on.
os.environ.setdefault("ROTATION_CHARTS", "0")

REAL_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "real"
# Debian's Chromium, for the tests that open a page (.ci/run installs it; they skip without it).
CHROMIUM = next((p for p in ("/usr/bin/chromium", shutil.which("chromium")) if p and Path(p).exists()), None)
# Without the background-networking flags Chromium dials out at start, and this closed network refuses it.
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]


@pytest.fixture
def real_data() -> Path:
    if not (REAL_DATA / "ohlcv_1d.parquet").exists():
        pytest.skip(f"{REAL_DATA} is absent: the real recorded history lives in ../shared beside the repo")
    return REAL_DATA


@pytest.fixture
def warehouse_path(tmp_path: Path) -> Path:
    return tmp_path / "rotation.duckdb"


def raw_frames(dataset, until=None):
    """A replay dataset as the raw tables hold it (optionally only days <= until), for the analytics chain."""
    import polars as pl

    from pipeline.transforms.chain import RawFrames

    def upto(frame: pl.DataFrame, column: str = "date") -> pl.DataFrame:
        if until is None:
            return frame
        end = dt.datetime.combine(until + dt.timedelta(days=1), dt.time(), dt.UTC)
        return frame.filter(pl.col(column) < (end if column == "funding_time" else until + dt.timedelta(days=1)))

    funding = dataset.funding.rename({"ts": "funding_time"}).with_columns(
        interval_hours=pl.col("symbol").replace_strict(dataset.funding_interval_hours, default=8, return_dtype=pl.Int32)
    )
    tvl = dataset.chain_tvl.select(scope=pl.lit("chain"), name="chain", date="date", tvl_usd=pl.col("tvl_usd").cast(pl.Float64))
    if dataset.total_tvl is not None:
        total = dataset.total_tvl.select(scope=pl.lit("total"), name=pl.lit("all"), date="date",
                                         tvl_usd=pl.col("tvl_usd").cast(pl.Float64))
        tvl = pl.concat([tvl, total])
    return RawFrames(
        ohlcv=upto(dataset.ohlcv),
        funding=upto(funding, "funding_time"),
        defi_tvl=upto(tvl),
        btc_dominance=upto(dataset.dominance),
    )


# ------------------------------------------------------------------ the real history in a warehouse


@pytest.fixture(scope="session")
def real():
    """The real recorded history, as the replay server serves it."""
    from pipeline.sources.replay.dataset import load_dataset

    if not (REAL_DATA / "ohlcv_1d.parquet").exists():
        pytest.skip(f"{REAL_DATA} is absent: the real recorded history lives in ../shared beside the repo")
    return load_dataset(REAL_DATA)


def nightly(folder: Path, path: Path, first: dt.date, last: dt.date, faults: list[str] | None = None,
             portfolio: Path | None = None):
    import dagster as dg

    from pipeline.definitions import defs
    from pipeline.resources import MarketSources, StrategySettings, WarehouseResource

    resources = {"sources": MarketSources(replay_data=str(folder), backoff_s=0.01, faults=faults or []),
                 "warehouse": WarehouseResource(path=str(path))}
    if portfolio is not None:
        resources["strategy"] = StrategySettings(portfolio_path=str(portfolio))
    return defs.resolve_job_def("nightly").execute_in_process(
        instance=dg.DagsterInstance.ephemeral(),
        resources=resources,
        tags={"dagster/asset_partition_range_start": first.isoformat(),
              "dagster/asset_partition_range_end": last.isoformat()},
        raise_on_error=False,
    )


def materialise_directly(folder: Path, path: Path, first: dt.date, last: dt.date, model: bool = False) -> None:
    """History before the nights under test, without Dagster's per-partition event log (seconds, not
    minutes): ingest and analytics; with `model`, the recommendations and their backtest on them instead."""
    import dagster as dg

    from assets.analytics import analytics_assets
    from assets.evaluation import evaluation_assets
    from assets.ingest import ingest_assets
    from assets.recommendations import recommendation_assets
    from pipeline.resources import AnalyticsSettings, MarketSources, QualitySettings, StrategySettings, WarehouseResource

    resources = {"sources": MarketSources(replay_data=str(folder)), "warehouse": WarehouseResource(path=str(path)),
                 "analytics": AnalyticsSettings(), "quality": QualitySettings(), "strategy": StrategySettings()}
    assets = [recommendation_assets, *evaluation_assets] if model else [*ingest_assets, *analytics_assets]
    with dg.build_asset_context(partition_key_range=dg.PartitionKeyRange(first.isoformat(), last.isoformat()),
                                resources=resources) as ctx:
        for asset in assets:
            output = asset(ctx)
            results = [output] if isinstance(output, dg.MaterializeResult) else list(output)
            checks = [c for r in results for c in (r.check_results if isinstance(r, dg.MaterializeResult) else [r])
                      if isinstance(c, dg.AssetCheckResult)]
            blocking = [c for c in checks if not c.passed and c.severity == dg.AssetCheckSeverity.ERROR]
            assert not blocking, blocking  # warnings pass: the real history's delisted symbols, dominance glitches


@pytest.fixture(scope="session")
def history(real, tmp_path_factory) -> Path:
    """A warehouse holding the real history up to 2025-07-29 (ingest and analytics); each test works on
    its own copy (`copy_of`)."""
    path = tmp_path_factory.mktemp("history") / "rotation.duckdb"
    materialise_directly(REAL_DATA, path, real.first_date, real.as_of - dt.timedelta(days=4))
    return path


def copy_of(history: Path, tmp_path: Path) -> Path:
    path = tmp_path / "rotation.duckdb"
    shutil.copyfile(history, path)
    return path
