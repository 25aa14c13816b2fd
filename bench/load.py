"""P2 load: 1,000,000 candle rows upserted into a warehouse that already holds 10% of them, through
the project's write path (`Warehouse.upsert`: one transaction, Arrow in, INSERT OR REPLACE), vs a
row-wise `executemany` upsert of the same statement shape, the baseline, timed in the same process
on a 5,000-row sample (it runs at a few hundred rows a second: a million would take an hour) and
compared as rows per second. Then checks what an upsert must do: no duplicate key, and the
overlapping rows carry the new values. Goal: >= 50x.

`--quick`: 20,000 rows, a 300-row sample, the same checks."""

from __future__ import annotations

import argparse
import datetime as dt
import tempfile
import time
from pathlib import Path

import numpy as np
import polars as pl

from warehouse import Warehouse

GOAL = 50.0
FULL, QUICK = (1_000_000, 5_000), (20_000, 300)  # rows upserted, rows of the baseline's sample
DAYS = 1_000
HELD_SHARE = 0.10
COLUMNS = ["exchange", "symbol", "date", "open", "high", "low", "close", "volume", "source", "ingested_at"]


def candles(rows: int, seed: int, ingested_at: dt.datetime) -> pl.DataFrame:
    """`rows` daily candles: rows / DAYS symbols x DAYS days, prices a random walk per symbol."""
    rng = np.random.default_rng(seed)
    symbols = max(1, rows // DAYS)
    close = np.exp(rng.normal(0, 0.03, symbols * DAYS).reshape(symbols, DAYS).cumsum(axis=1)).ravel() * 10
    frame = pl.DataFrame({
        "exchange": "binance",
        "symbol": np.repeat([f"T{i:05d}/USDT" for i in range(symbols)], DAYS),
        "date": np.tile(np.arange(np.datetime64("2022-01-01"), np.datetime64("2022-01-01") + DAYS), symbols),
        "open": close, "high": close * 1.01, "low": close * 0.99, "close": close,
        "volume": rng.uniform(1e3, 1e6, symbols * DAYS),
        "source": "bench",
    }).with_columns(pl.col("date").cast(pl.Date), ingested_at=pl.lit(ingested_at))
    return frame.head(rows).select(COLUMNS)


def executemany_upsert(wh: Warehouse, frame: pl.DataFrame) -> None:
    """The baseline: one parameterised INSERT OR REPLACE per row."""
    placeholders = ", ".join("?" for _ in COLUMNS)
    with wh.connect() as con:
        con.execute("BEGIN TRANSACTION")
        # COLUMNS is this module's constant; the values are parameters.
        con.executemany("INSERT OR REPLACE INTO raw.ohlcv_1d (" + ", ".join(COLUMNS) + ") VALUES (" + placeholders + ")",
                        frame.rows())
        con.execute("COMMIT")


def main(quick: bool = False) -> int:
    rows, sample = QUICK if quick else FULL
    if quick:
        print("quick mode: a small load, to check that the bench runs and the upsert is right; its timings mean nothing")
    old = dt.datetime(2025, 1, 1, tzinfo=dt.UTC)
    new = dt.datetime(2025, 2, 1, tzinfo=dt.UTC)
    incoming = candles(rows, seed=1, ingested_at=new)
    held = candles(rows, seed=2, ingested_at=old).sample(fraction=HELD_SHARE, seed=3)
    with tempfile.TemporaryDirectory() as tmp:
        wh = Warehouse(Path(tmp) / "bench.duckdb")
        wh.upsert({"raw.ohlcv_1d": held})
        t = time.perf_counter()
        wh.upsert({"raw.ohlcv_1d": incoming})
        project_s = time.perf_counter() - t
        stored = wh.query("select count(*) as n, count(distinct (exchange, symbol, date)) as keys, "
                          "count(*) filter (where ingested_at = ?) as new from raw.ohlcv_1d", [new]).row(0, named=True)
        # the overlapping rows carry the new values
        with wh.connect(read_only=True) as con:
            con.register("held", held.select("exchange", "symbol", "date").to_arrow())
            con.register("incoming", incoming.select("exchange", "symbol", "date", "close").to_arrow())
            mismatched = con.sql(
                "select count(*) from raw.ohlcv_1d w join held using (exchange, symbol, date) "
                "join incoming i using (exchange, symbol, date) where w.close <> i.close or w.ingested_at <> $new",
                params={"new": new}).fetchall()[0][0]

        base = Warehouse(Path(tmp) / "baseline.duckdb")
        sample_held = held.join(incoming.head(sample).select("exchange", "symbol", "date"), on=["exchange", "symbol", "date"])
        base.upsert({"raw.ohlcv_1d": sample_held})
        t = time.perf_counter()
        executemany_upsert(base, incoming.head(sample))
        baseline_s = time.perf_counter() - t
        base_rows = base.query("select count(*) as n from raw.ohlcv_1d")["n"][0]

    project_rate, baseline_rate = rows / project_s, sample / baseline_s
    ratio = project_rate / baseline_rate
    ok = stored["n"] == stored["keys"] == rows and stored["new"] == rows and mismatched == 0 and base_rows == sample
    print(f"P2 load: {rows:,} candle rows into a warehouse holding {held.height:,} of them")
    print(f"  Warehouse.upsert (Arrow, one INSERT OR REPLACE): {project_s:.2f} s = {project_rate:,.0f} rows/s")
    print(f"  baseline row-wise executemany, {sample:,}-row sample: {baseline_s:.2f} s = {baseline_rate:,.0f} rows/s")
    print(f"  after: {stored['n']:,} rows, {stored['keys']:,} keys, {stored['new']:,} with the new values, "
          f"{mismatched} overlapping rows not replaced -> {'correct' if ok else 'WRONG'}")
    verdict = "PASS" if ratio >= GOAL and ok else "MISS"
    print(f"  ratio {ratio:,.0f}x (goal >= {GOAL:.0f}x): {verdict}")
    return 0 if ok else 1


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="small sizes, seconds: errors and wrong results still fail")
    raise SystemExit(main(quick=parser.parse_args().quick))
