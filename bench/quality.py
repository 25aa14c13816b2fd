"""Quality benchmark: `validate` on 1,000,000 synthetic clean candle rows (1,000 symbols x 1,000 days),
split into prepare (Polars derived columns), to_pandas (Arrow) and GX validate. The first call pays
for GX's context and suite setup once per process; it is reported separately. No goal on the times;
exits non-zero if the clean rows fail or the rows broken on purpose are not exactly the failing ones.
`--quick`: 50 symbols x 200 days, one run."""

from __future__ import annotations

import argparse
import datetime as dt
import time

import numpy as np
import polars as pl

from pipeline.quality import validate

FULL, QUICK = (1_000, 1_000, 3), (50, 200, 1)  # symbols, days, timed runs
BROKEN_EVERY = 100  # rows given a negative close for the failure path


def synthetic_candles(symbols: int, days: int, seed: int = 7) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    n = symbols * days
    close = np.exp(rng.normal(0, 0.03, n).reshape(symbols, days).cumsum(axis=1)).ravel() * 10
    open_ = close * np.exp(rng.normal(0, 0.01, n))
    wick = np.abs(rng.normal(0, 0.01, n))
    return pl.DataFrame({
        "exchange": "binance",
        "symbol": np.repeat([f"T{i:04d}/USDT" for i in range(symbols)], days),
        "date": np.tile(np.arange(np.datetime64("2022-01-01"), np.datetime64("2022-01-01") + days), symbols),
        "open": open_, "high": np.maximum(open_, close) * (1 + wick), "low": np.minimum(open_, close) * (1 - wick),
        "close": close, "volume": rng.uniform(0, 1e6, n), "source": "@replay:synthetic",
    }).with_columns(pl.col("date").cast(pl.Date), ingested_at=pl.lit(dt.datetime(2025, 1, 1, tzinfo=dt.UTC)))


def main(quick: bool = False) -> int:
    symbols, days, runs = QUICK if quick else FULL
    if quick:
        print("quick mode: a small frame, to check that the bench runs and the suite judges right; its timings mean nothing")
    candles = synthetic_candles(symbols, days)
    t = time.perf_counter()
    validate("raw.ohlcv_1d", candles.head(10))
    print(f"first call (GX context + suite, 10 rows): {time.perf_counter() - t:.3f} s")
    clean = True
    for run in range(runs):
        t = time.perf_counter()
        report = validate("raw.ohlcv_1d", candles)
        clean = clean and report.success
        total = time.perf_counter() - t
        parts = "  ".join(f"{k} {v:.3f} s" for k, v in report.seconds.items())
        print(f"run {run + 1}: {candles.height:,} rows, success={report.success}: total {total:.3f} s  ({parts})")
    # the failure path: 1% of rows with a negative close re-validates that expectation as COMPLETE
    broken = candles.with_columns(close=pl.when(pl.int_range(pl.len()) % BROKEN_EVERY == 0).then(-1.0).otherwise("close"))
    t = time.perf_counter()
    report = validate("raw.ohlcv_1d", broken)
    parts = "  ".join(f"{k} {v:.3f} s" for k, v in report.seconds.items())
    print(f"1% bad closes: {len(report.failing_rows):,} failing rows in {len(report.failures)} expectations: "
          f"total {time.perf_counter() - t:.3f} s  ({parts})")
    caught = report.failing_rows == tuple(range(0, candles.height, BROKEN_EVERY))
    print(f"clean rows pass: {'yes' if clean else 'NO'}; the failing rows are exactly the broken ones: "
          f"{'yes' if caught else 'NO'} -> {'correct' if clean and caught else 'WRONG'}")
    return 0 if clean and caught else 1


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="small sizes, seconds: errors and wrong results still fail")
    raise SystemExit(main(quick=parser.parse_args().quick))
