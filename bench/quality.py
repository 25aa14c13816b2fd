"""Quality benchmark: `validate` on 1,000,000 synthetic clean candle rows (1,000 symbols x 1,000 days),
split into prepare (Polars derived columns), to_pandas (Arrow) and GX validate. Prints, never asserts.
The first call pays for GX's context and suite setup once per process; it is reported separately."""

from __future__ import annotations

import datetime as dt
import time

import numpy as np
import polars as pl

from pipeline.quality import validate

SYMBOLS, DAYS = 1_000, 1_000


def synthetic_candles(seed: int = 7) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    n = SYMBOLS * DAYS
    close = np.exp(rng.normal(0, 0.03, n).reshape(SYMBOLS, DAYS).cumsum(axis=1)).ravel() * 10
    open_ = close * np.exp(rng.normal(0, 0.01, n))
    wick = np.abs(rng.normal(0, 0.01, n))
    return pl.DataFrame({
        "exchange": "binance",
        "symbol": np.repeat([f"T{i:04d}/USDT" for i in range(SYMBOLS)], DAYS),
        "date": np.tile(np.arange(np.datetime64("2022-01-01"), np.datetime64("2022-01-01") + DAYS), SYMBOLS),
        "open": open_, "high": np.maximum(open_, close) * (1 + wick), "low": np.minimum(open_, close) * (1 - wick),
        "close": close, "volume": rng.uniform(0, 1e6, n), "source": "@replay:synthetic",
    }).with_columns(pl.col("date").cast(pl.Date), ingested_at=pl.lit(dt.datetime(2025, 1, 1, tzinfo=dt.UTC)))


def main() -> None:
    candles = synthetic_candles()
    t = time.perf_counter()
    validate("raw.ohlcv_1d", candles.head(10))
    print(f"first call (GX context + suite, 10 rows): {time.perf_counter() - t:.3f} s")
    for run in range(3):
        t = time.perf_counter()
        report = validate("raw.ohlcv_1d", candles)
        total = time.perf_counter() - t
        parts = "  ".join(f"{k} {v:.3f} s" for k, v in report.seconds.items())
        print(f"run {run + 1}: {candles.height:,} rows, success={report.success}: total {total:.3f} s  ({parts})")
    # the failure path: 1% of rows with a negative close re-validates that expectation as COMPLETE
    broken = candles.with_columns(close=pl.when(pl.int_range(pl.len()) % 100 == 0).then(-1.0).otherwise("close"))
    t = time.perf_counter()
    report = validate("raw.ohlcv_1d", broken)
    parts = "  ".join(f"{k} {v:.3f} s" for k, v in report.seconds.items())
    print(f"1% bad closes: {len(report.failing_rows):,} failing rows in {len(report.failures)} expectations: "
          f"total {time.perf_counter() - t:.3f} s  ({parts})")


if __name__ == "__main__":
    main()
