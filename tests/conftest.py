"""Shared fixtures: the real recorded history beside the project, temp warehouses, replay servers."""

from __future__ import annotations

import datetime as dt
import os
import shutil
from pathlib import Path

import pytest

# Read when pipeline.definitions is imported: a test whose source fails re-runs the asset after
# a fraction of a second instead of the production minute (the retry tests in test_nightly.py rely on it).
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


def pytest_collection_modifyitems(items) -> None:
    """Every test that uses the real history (the `real` fixture, directly or not) is marked
    `real_data`: `-m "not real_data"` runs the rest."""
    for item in items:
        if "real" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.real_data)


@pytest.fixture
def real_data(real) -> Path:
    """The real recorded history's folder (the test is skipped when it is absent)."""
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
    ohlcv = dataset.ohlcv if dataset.ohlcv_delisted is None else pl.concat([dataset.ohlcv, dataset.ohlcv_delisted])
    return RawFrames(
        ohlcv=upto(ohlcv.sort("symbol", "date")),
        funding=upto(funding, "funding_time"),
        defi_tvl=upto(tvl),
        btc_dominance=upto(dataset.dominance),
    )


def ranked_universe(dataset, until=None, config=None):
    """The point-in-time universe (`ranking.PointInTime`) of a replay dataset, from its market caps as
    the ingest writes them (CoinMarketCap's snapshots keyed by slug), optionally only days <= until."""
    import polars as pl

    from pipeline.sources.replay.server import _slug
    from pipeline.taxonomy import load_taxonomy
    from pipeline.transforms.config import AnalyticsConfig
    from pipeline.transforms.ranking import point_in_time
    from pipeline.universe import load_universe

    caps = pl.DataFrame(schema={"source": pl.String, "date": pl.Date, "coin": pl.String, "symbol": pl.String,
                                "name": pl.String, "rank": pl.Int32, "market_cap_usd": pl.Float64})
    if dataset.market_caps is not None:
        caps = dataset.market_caps.select(
            source=pl.lit("coinmarketcap"), date=pl.col("snapshot_date").cast(pl.Date),
            coin=pl.col("name").map_elements(_slug, return_dtype=pl.String), symbol=pl.col("symbol").str.to_uppercase(),
            name="name", rank=pl.col("rank").cast(pl.Int32), market_cap_usd="market_cap_usd",
        )
        if until is not None:
            caps = caps.filter(pl.col("date") <= until)
    categories = pl.DataFrame(schema={"source": pl.String, "coin": pl.String, "category": pl.String})
    return point_in_time(caps, categories, load_universe().frame(ids=True), load_taxonomy(), config or AnalyticsConfig())


# ------------------------------------------------------------------ the real history in a warehouse


@pytest.fixture(scope="session")
def real():
    """The real recorded history, as the replay server serves it: the one place that skips when it
    is absent (every test needing it uses this fixture, directly or through another)."""
    from pipeline.sources.replay.dataset import load_dataset

    if not (REAL_DATA / "ohlcv_1d.parquet").exists():
        pytest.skip(f"{REAL_DATA} is absent: the real recorded history lives in ../shared beside the repo")
    return load_dataset(REAL_DATA)


def nightly(folder: Path, path: Path, first: dt.date, last: dt.date, faults: list[str] | None = None,
             portfolio: Path | None = None, quality=None, replay_until_last: bool = True):
    """The nightly job as on the night after `last` (the replay serves nothing later, unless not
    `replay_until_last`), over the raw months from `first`'s to `last`'s: what the schedule asks for
    after missing nights since `first`."""
    import dagster as dg

    from assets.partitions import month_key
    from pipeline.definitions import defs
    from pipeline.resources import MarketSources, StrategySettings, WarehouseResource

    resources = {"sources": MarketSources(replay_data=str(folder), backoff_s=0.01, faults=faults or [],
                                          until=last.isoformat() if replay_until_last else None),
                 "warehouse": WarehouseResource(path=str(path))}
    if portfolio is not None:
        resources["strategy"] = StrategySettings(portfolio_path=str(portfolio))
    if quality is not None:
        resources["quality"] = quality
    return defs.resolve_job_def("nightly").execute_in_process(
        instance=dg.DagsterInstance.ephemeral(),
        resources=resources,
        tags={"dagster/asset_partition_range_start": month_key(first),
              "dagster/asset_partition_range_end": month_key(last)},
        raise_on_error=False,
    )


def materialise_directly(folder: Path, path: Path, first: dt.date, last: dt.date, model: bool = False,
                         quality=None) -> None:
    """History before the nights under test, the assets called without a Dagster run (no event log):
    the raw months from `first`'s to `last`'s as on the night after `last`, and the marts; with
    `model`, the recommendations and their backtest on them instead."""
    import dagster as dg

    from assets.analytics import analytics_assets
    from assets.evaluation import evaluation_assets
    from assets.ingest import ingest_assets
    from assets.partitions import month_key
    from assets.recommendations import recommendation_assets
    from pipeline.resources import AnalyticsSettings, MarketSources, QualitySettings, StrategySettings, WarehouseResource

    resources = {"sources": MarketSources(replay_data=str(folder), until=last.isoformat()),
                 "warehouse": WarehouseResource(path=str(path)),
                 "analytics": AnalyticsSettings(), "quality": quality or QualitySettings(), "strategy": StrategySettings()}
    months = dg.PartitionKeyRange(month_key(first), month_key(last))
    steps = [(None, [recommendation_assets, *evaluation_assets])] if model else [(months, ingest_assets), (None, analytics_assets)]
    for keys, assets in steps:
        # only the ingest needs the replay: the other steps do without a second server
        needed = resources if keys is not None else {k: v for k, v in resources.items() if k != "sources"}
        with dg.build_asset_context(partition_key_range=keys, resources=needed) as ctx:
            for asset in assets:
                output = asset(ctx)
                results = [output] if isinstance(output, dg.MaterializeResult) else list(output)
                checks = [c for r in results for c in (r.check_results if isinstance(r, dg.MaterializeResult) else [r])
                          if isinstance(c, dg.AssetCheckResult)]
                blocking = [c for c in checks if not c.passed and c.severity == dg.AssetCheckSeverity.ERROR]
                assert not blocking, blocking  # warnings pass: the real history's delisted symbols, dominance glitches


@pytest.fixture(scope="session")
def reference_market(tmp_path_factory) -> Path:
    """The embedded synthetic market the README's figures on it are of (seed 7, REFERENCE_AS_OF)."""
    from pipeline.sources.replay.synthetic import REFERENCE_AS_OF, generate

    return generate(tmp_path_factory.mktemp("reference") / "synthetic", REFERENCE_AS_OF, seed=7)


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
