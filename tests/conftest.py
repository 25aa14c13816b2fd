"""Shared fixtures: the real recorded history beside the project, temp warehouses, replay servers."""

from __future__ import annotations

from pathlib import Path

import pytest

REAL_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "real"


@pytest.fixture
def real_data() -> Path:
    if not (REAL_DATA / "ohlcv_1d.parquet").exists():
        pytest.skip(f"{REAL_DATA} is absent: the real recorded history lives in ../shared beside the repo")
    return REAL_DATA


@pytest.fixture
def warehouse_path(tmp_path: Path) -> Path:
    return tmp_path / "rotation.duckdb"
