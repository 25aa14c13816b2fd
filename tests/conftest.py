"""Shared fixtures: the real recorded history beside the project, temp warehouses, replay servers."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

# Read when pipeline.definitions is imported: a test whose source fails re-runs the asset after
# a fraction of a second instead of the production minute (test_retries.py relies on it).
os.environ.setdefault("ROTATION_RETRY_DELAY_S", "0.1")
# Each asset's chart costs about a second to render, in every run of every test; the tests that are
# about charts (test_charts.py, the asset metadata and UI tests) turn them back on.
os.environ.setdefault("ROTATION_CHARTS", "0")

REAL_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "real"


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
    import datetime as dt

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
