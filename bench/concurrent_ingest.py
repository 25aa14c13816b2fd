"""P4 concurrent ingest: a cold ingest of 100 symbols' candles and funding (`ohlcv_1d`, `funding_rates`)
from a replay that adds 100 ms to every answer, fetched concurrently (ccxt's asyncio client, its rate
limiter on) vs the same calls one after another (ccxt's sync client, one symbol after another: the
ingest before issue 21), in the same process. Also the rate-limit bound: every request the run made
x the spacing ccxt's limiter keeps after it (the exchange's `rateLimit` x the endpoint's cost), which
no client with the limiter on can beat. Both runs must store the same rows (the script fails if not).
Goals: >= 8x faster than one after another, and <= 1.3x the rate-limit bound.

The universe has fewer than 100 tokens, so the bench writes one (the universe's tokens, each with a
perp, and made-up ones up to 100) and a synthetic market for it into a temp dir. `--quick`: 8
symbols, 0.3 years, 10 ms latency, the same comparison of the stored rows."""

from __future__ import annotations

import argparse
import datetime as dt
import logging
import tempfile
import time
from pathlib import Path
from urllib.parse import urlsplit

import dagster as dg
import yaml

import assets  # noqa: F401  (silences Dagster's beta warning)
from assets.ingest import funding_rates, ohlcv_1d
from pipeline.resources import MarketSources, QualitySettings, WarehouseResource
from pipeline.settings import PROJECT_ROOT
from pipeline.sources.concurrent import SYMBOLS_IN_FLIGHT
from pipeline.sources.exchange import make_exchange
from pipeline.sources.replay import load_dataset
from pipeline.sources.replay.synthetic import generate
from pipeline.universe import load_universe
from warehouse import Warehouse

SPEEDUP_GOAL = 8.0
BOUND_GOAL = 1.3
FULL, QUICK = (100, 2.0, 100.0), (8, 0.3, 10.0)  # symbols, years of history, replay latency in ms
AS_OF = dt.date(2025, 6, 30)
ROWS = {  # what each asset stores, to compare the two runs
    "raw.ohlcv_1d": "select exchange, symbol, date, open, high, low, close, volume from raw.ohlcv_1d order by all",
    "raw.funding_rates": "select exchange, symbol, funding_time, funding_rate, mark_price, interval_hours "
                         "from raw.funding_rates order by all",
}


def bench_universe(path: Path, size: int) -> Path:
    """The project's universe, every token with a perp, plus made-up tokens (X048/USDT, ...) up to `size`
    (at least four, speculative: the synthetic market delists two speculative tokens listed from its start)."""
    raw = yaml.safe_load((PROJECT_ROOT / "pipeline" / "universe.yaml").read_text())
    tokens = {}
    # BTC, a chain and a protocol first: the synthetic market needs them (dominance, TVL) even when small
    ordered = sorted(raw["tokens"].items(), key=lambda token: token[0] not in ("BTC", "ETH", "UNI"))
    for name, entry in ordered[:size - 4]:
        base = entry["spot"].split("/")[0]
        tokens[name] = {**entry, "perp": entry.get("perp") or f"{base}/USDT:USDT"}
    sectors = raw["sectors"]
    for i in range(len(tokens), size):
        name = f"X{i:03d}"
        tokens[name] = {"sector": sectors[i % len(sectors)], "bucket": "speculative", "spot": f"{name}/USDT",
                        "perp": f"{name}/USDT:USDT", "coingecko": f"x{i:03d}"}
    path.write_text(yaml.safe_dump({"sectors": sectors, "tokens": tokens}, sort_keys=False))
    return path


def spacing_ms(exchange, path: str, query: dict[str, str]) -> float:
    """The pause ccxt's limiter keeps after this request: `rateLimit` x the endpoint's cost, computed
    the way ccxt computes it (`calculate_rate_limiter_cost`)."""
    for api, url in exchange.urls["api"].items():
        prefix = f"{urlsplit(url).path}/" if isinstance(url, str) else None
        if not prefix or not path.startswith(prefix):
            continue
        endpoint = path.removeprefix(prefix)
        config = exchange.api.get(api, {}).get("get", {}).get(endpoint)
        if config is not None:
            params = {k: int(v) if v.isdigit() else v for k, v in query.items()}
            return exchange.rateLimit * exchange.calculate_rate_limiter_cost(api, "GET", endpoint, params, config)
    raise LookupError(f"{exchange.id}: no ccxt endpoint for {path}")


def cold_ingest(folder: Path, universe: Path, db: Path, in_flight: int, latency_ms: float
                ) -> dict[str, tuple[float, float, int]]:
    """Each asset over the dataset's whole range into an empty warehouse: (seconds, bound seconds, requests)."""
    sources = MarketSources(replay_data=str(folder), universe_path=str(universe), symbols_in_flight=in_flight,
                            faults=[f"latency={latency_ms / 1000}"])
    resources = {"sources": sources, "warehouse": WarehouseResource(path=str(db)), "quality": QualitySettings()}
    dataset = load_dataset(folder)
    keys = dg.PartitionKeyRange(dataset.first_date.isoformat(), dataset.as_of.isoformat())
    settings = sources.settings()
    timings = {}
    with dg.build_asset_context(partition_key_range=keys, resources=resources) as ctx:
        server = ctx.resources.sources._server
        for asset, exchange_id, market_type in ((ohlcv_1d, settings.exchange, "spot"),
                                                (funding_rates, settings.perp_exchange, "linear")):
            exchange = make_exchange(exchange_id, market_type, server.base_url)  # for its rate-limit numbers
            server.requests.clear()
            start = time.perf_counter()
            asset(ctx)
            seconds = time.perf_counter() - start
            bound_ms = sum(spacing_ms(exchange, r.path, r.query) for r in server.requests)
            timings[asset.key.path[-1]] = (seconds, bound_ms / 1000, len(server.requests))
    return timings


def main(quick: bool = False) -> int:
    logging.disable(logging.INFO)  # not 2 x 200 progress lines (retries, if any, still show)
    if quick:
        print("quick mode: a small ingest, to check that the bench runs and both paths store the same rows;"
              " its timings mean nothing")
    try:
        return report(*(QUICK if quick else FULL))
    finally:
        logging.disable(logging.NOTSET)


def report(symbols: int, years: float, latency_ms: float) -> int:
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        universe = bench_universe(tmp / "universe.yaml", symbols)
        folder = generate(tmp / "market", AS_OF, seed=21, years=years, universe=load_universe(universe))
        sequential = cold_ingest(folder, universe, tmp / "sequential.duckdb", in_flight=1, latency_ms=latency_ms)
        concurrent = cold_ingest(folder, universe, tmp / "concurrent.duckdb", in_flight=SYMBOLS_IN_FLIGHT,
                                 latency_ms=latency_ms)
        stored = {name: [Warehouse(tmp / f"{run}.duckdb").query(q) for run in ("sequential", "concurrent")]
                  for name, q in ROWS.items()}
    same = all(a.equals(b) and a.height > 0 for a, b in stored.values())

    print(f"P4 concurrent ingest: cold ingest of {symbols} symbols' candles and perp funding, "
          f"{years:g} years of synthetic history, {latency_ms:.0f} ms replay latency per answer")
    total = {"sequential": 0.0, "concurrent": 0.0, "bound": 0.0}
    for name in sequential:
        seq_s, _, seq_requests = sequential[name]
        con_s, bound_s, requests = concurrent[name]
        total["sequential"] += seq_s
        total["concurrent"] += con_s
        total["bound"] += bound_s
        print(f"  {name:14s} one after another {seq_s:6.2f} s ({seq_requests} requests) | concurrent "
              f"{con_s:6.2f} s: {seq_s / con_s:4.1f}x | rate-limit bound {bound_s:6.2f} s ({requests} requests): "
              f"{con_s / bound_s:4.2f}x it; at best {seq_s / bound_s:4.1f}x faster than one after another")
    rows = ", ".join(f"{a.height:,} {name}" for name, (a, _) in stored.items())
    print(f"  stored rows: {rows}; the same in both runs -> {'correct' if same else 'WRONG'}")
    speedup = total["sequential"] / total["concurrent"]
    to_bound = total["concurrent"] / total["bound"]
    ceiling = total["sequential"] / total["bound"]
    print(f"  both assets: {total['sequential']:.2f} s one after another, {total['concurrent']:.2f} s concurrent, "
          f"bound {total['bound']:.2f} s")
    print(f"  speedup {speedup:.1f}x (goal >= {SPEEDUP_GOAL:.0f}x): {'PASS' if speedup >= SPEEDUP_GOAL else 'MISS'}")
    print(f"  concurrent / rate-limit bound {to_bound:.2f}x (goal <= {BOUND_GOAL}x): "
          f"{'PASS' if to_bound <= BOUND_GOAL else 'MISS'}")
    if ceiling < SPEEDUP_GOAL:
        spacings = ", ".join(f"{name} {1000 * bound / requests:.0f} ms" for name, (_, bound, requests) in concurrent.items())
        print(f"  why: with ccxt's limiter on, {SPEEDUP_GOAL:.0f}x cannot be had here: at best {ceiling:.1f}x. One after "
              f"another, a request costs about the {latency_ms:.0f} ms latency; concurrently, requests start no closer "
              f"than ccxt's rateLimit x the endpoint's cost (on average {spacings}): {SPEEDUP_GOAL:.0f}x would need "
              f"a latency of {SPEEDUP_GOAL:.0f}x those spacings")
    return 0 if same else 1


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="small sizes, seconds: errors and wrong results still fail")
    raise SystemExit(main(quick=parser.parse_args().quick))
