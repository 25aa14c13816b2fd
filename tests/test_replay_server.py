"""The replay server against the real clients: ccxt and requests, no mocks.

A tiny dataset built here covers the clock, errors and every fault kind; the recorded real history
(`../shared/data/real`, skipped when absent) proves ccxt pages through it and gets the Parquet rows
back unchanged.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import subprocess
import sys
import time
from pathlib import Path

import ccxt
import polars as pl
import pytest
import requests

from pipeline.sources.exchange import make_exchange
from pipeline.sources.replay import FaultRule, ReplayServer, load_dataset
from tests.conftest import REAL_DATA

REPO = Path(__file__).resolve().parents[1]
DAY_MS = 86_400_000
FAR_FUTURE_MS = 4_000_000_000_000  # 2096

AS_OF = dt.date(2024, 3, 10)
AS_OF_END_MS = int(dt.datetime(2024, 3, 11, tzinfo=dt.UTC).timestamp() * 1000) - 1
DAY0_MS = AS_OF_END_MS + 1 - DAY_MS


def _ms(day: dt.date) -> int:
    return int(dt.datetime.combine(day, dt.time(), dt.UTC).timestamp() * 1000)


# ---------------------------------------------------------------- tiny dataset


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """75 days of made-up data, 5 of them after the as-of day (which must never be served)."""
    path = tmp_path_factory.mktemp("tiny")
    days = [dt.date(2024, 1, 1) + dt.timedelta(days=i) for i in range(75)]
    ohlcv = []
    for symbol, scale, last in (("BTC/USDT", 40_000.0, days[-1]), ("PEPE/USDT", 0.0000012, days[-1]),
                                ("OLD/USDT", 2.5, dt.date(2024, 2, 1))):
        for i, day in enumerate(d for d in days if d <= last):
            close = scale * (1 + 0.01 * i + 0.0013)
            ohlcv.append(("binance", symbol, day, close * 0.99, close * 1.02, close * 0.97, close, 1000.5 + i))
    pl.DataFrame(ohlcv, schema=["exchange", "symbol", "date", "open", "high", "low", "close", "volume"],
                 orient="row").write_parquet(path / "ohlcv_1d.parquet")
    funding = []
    for symbol, hours in (("BTC/USDT:USDT", 8), ("1000PEPE/USDT:USDT", 4)):
        ts = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
        i = 0
        while ts.date() <= days[-1]:
            funding.append(("binanceusdm", symbol, ts, 0.0001 + 0.000001 * (i % 7) - 0.000004, 40_000.0 + i))
            ts += dt.timedelta(hours=hours)
            i += 1
    pl.DataFrame(funding, schema=["exchange", "symbol", "ts", "funding_rate", "mark_price"],
                 orient="row").write_parquet(path / "funding_8h.parquet")
    pl.DataFrame([(d, chain, 1_000_000 * (i + 1) + k) for i, d in enumerate(days)
                  for k, chain in enumerate(("ethereum", "arbitrum"))],
                 schema=["date", "chain", "tvl_usd"], orient="row").write_parquet(path / "chain_tvl_1d.parquet")
    pl.DataFrame([(d, 50.0 + 0.1 * i, 2.0e12 + 1.0e9 * i) for i, d in enumerate(days)],
                 schema=["date", "btc_dominance_pct", "total_market_cap_usd"],
                 orient="row").write_parquet(path / "btc_dominance_1d.parquet")
    pl.DataFrame([(d, 5.0e10 + i) for i, d in enumerate(days)],
                 schema=["date", "tvl_usd"], orient="row").write_parquet(path / "total_tvl_1d.parquet")
    pl.DataFrame([(d, "uniswap", 4.0e9 + i) for i, d in enumerate(days)],
                 schema=["date", "protocol", "tvl_usd"], orient="row").write_parquet(path / "protocol_tvl_1d.parquet")
    (path / "dataset.json").write_text(json.dumps({
        "label": "tiny", "as_of": AS_OF.isoformat(), "funding_interval_hours": {"1000PEPE/USDT:USDT": 4}}))
    return path


@pytest.fixture(scope="module")
def tiny(tiny_dir: Path):
    with ReplayServer(load_dataset(tiny_dir)) as srv:
        yield srv


@pytest.fixture
def faulty(tiny_dir: Path):
    """A fresh server per fault test: its own plan, counters and request log."""
    with ReplayServer(load_dataset(tiny_dir)) as srv:
        yield srv


def _get(srv: ReplayServer, path: str, timeout: float = 5.0, **params: object) -> requests.Response:
    return requests.get(srv.base_url + path, params=params, timeout=timeout)


def test_clock_never_serves_after_the_as_of_day(tiny: ReplayServer) -> None:
    assert tiny.dataset.as_of_end_ms == AS_OF_END_MS
    klines = _get(tiny, "/api/v3/klines", symbol="BTCUSDT", interval="1d", endTime=FAR_FUTURE_MS, limit=1000).json()
    assert klines[-1][0] == DAY0_MS and len(klines) == 70
    assert _get(tiny, "/api/v3/klines", symbol="BTCUSDT", interval="1d", startTime=DAY0_MS + DAY_MS).json() == []
    funding = _get(tiny, "/fapi/v1/fundingRate", symbol="BTCUSDT", startTime=0, endTime=FAR_FUTURE_MS,
                   limit=1000).json()
    assert funding[-1]["fundingTime"] == DAY0_MS + 16 * 3_600_000
    bybit = _get(tiny, "/v5/market/kline", category="linear", symbol="1000PEPEUSDT", interval="D",
                 end=FAR_FUTURE_MS).json()["result"]["list"]
    assert int(bybit[0][0]) == DAY0_MS
    bybit_funding = _get(tiny, "/v5/market/funding/history", category="linear", symbol="BTCUSDT",
                         endTime=FAR_FUTURE_MS).json()["result"]["list"]
    assert int(bybit_funding[0]["fundingRateTimestamp"]) <= AS_OF_END_MS
    assert _get(tiny, "/v2/historicalChainTvl/ethereum").json()[-1]["date"] * 1000 == DAY0_MS
    assert _get(tiny, "/v2/historicalChainTvl").json()[-1]["date"] * 1000 == DAY0_MS
    assert _get(tiny, "/protocol/uniswap").json()["tvl"][-1]["date"] * 1000 == DAY0_MS
    chart = _get(tiny, "/api/v3/coins/bitcoin/market_chart", vs_currency="usd", days="max").json()
    assert max(p[0] for series in chart.values() for p in series) == DAY0_MS
    assert _get(tiny, "/api/v3/global").json()["data"]["updated_at"] * 1000 <= AS_OF_END_MS


def test_windows_limits_and_order(tiny: ReplayServer) -> None:
    start = _ms(dt.date(2024, 1, 5))
    rows = _get(tiny, "/api/v3/klines", symbol="BTCUSDT", interval="1d", startTime=start,
                endTime=start + 2 * DAY_MS).json()
    assert [r[0] for r in rows] == [start, start + DAY_MS, start + 2 * DAY_MS]  # inclusive, ascending
    assert isinstance(rows[0][4], str) and rows[0][6] == start + DAY_MS - 1 and len(rows[0]) == 12
    assert len(_get(tiny, "/api/v3/klines", symbol="BTCUSDT", interval="1d", limit=5).json()) == 5
    latest = _get(tiny, "/fapi/v1/fundingRate", symbol="BTCUSDT").json()  # neither start nor end: latest 200
    assert len(latest) == 200 and latest[-1]["fundingTime"] == DAY0_MS + 16 * 3_600_000
    assert len(_get(tiny, "/fapi/v1/fundingRate", symbol="BTCUSDT", startTime=0).json()) == 100
    bybit = _get(tiny, "/v5/market/kline", category="spot", symbol="BTCUSDT", interval="D", start=start,
                 limit=3).json()["result"]["list"]
    assert [int(r[0]) for r in bybit] == [start + 2 * DAY_MS, start + DAY_MS, start]  # newest first
    alone = _get(tiny, "/v5/market/funding/history", category="linear", symbol="BTCUSDT", startTime=start).json()
    assert alone["retCode"] == 10001
    before = _get(tiny, "/v5/market/funding/history", category="linear", symbol="BTCUSDT", endTime=start).json()
    assert len(before["result"]["list"]) == 13 and int(before["result"]["list"][0]["fundingRateTimestamp"]) == start


def test_markets_status_and_funding_intervals(tiny: ReplayServer) -> None:
    spot = make_exchange("binance", "spot", tiny.base_url)
    spot.load_markets()
    assert spot.markets["BTC/USDT"]["active"] and not spot.markets["OLD/USDT"]["active"]
    usdm = make_exchange("binanceusdm", "linear", tiny.base_url)
    usdm.load_markets()
    assert set(usdm.markets) == {"BTC/USDT:USDT", "1000PEPE/USDT:USDT"}
    assert usdm.markets["BTC/USDT:USDT"]["created"] == _ms(dt.date(2024, 1, 1))
    assert _get(tiny, "/fapi/v1/fundingInfo").json() == [{
        "symbol": "1000PEPEUSDT", "adjustedFundingRateCap": "0.02000000", "adjustedFundingRateFloor": "-0.02000000",
        "fundingIntervalHours": 4, "disclaimer": False}]
    linear = make_exchange("bybit", "linear", tiny.base_url)
    linear.load_markets()
    intervals = {s: m["info"]["fundingInterval"] for s, m in linear.markets.items()}
    assert intervals == {"BTC/USDT:USDT": 480, "1000PEPE/USDT:USDT": 240}


def test_perp_candles_are_the_underlying_spot(tiny: ReplayServer) -> None:
    spot = _get(tiny, "/api/v3/klines", symbol="PEPEUSDT", interval="1d", limit=1000).json()
    perp = _get(tiny, "/fapi/v1/klines", symbol="1000PEPEUSDT", interval="1d", limit=1000).json()
    assert [r[0] for r in perp] == [r[0] for r in spot]
    for s, p in zip(spot, perp, strict=True):
        assert math.isclose(float(p[4]), 1000 * float(s[4]), rel_tol=1e-11)
        assert math.isclose(float(p[5]), float(s[5]) / 1000, rel_tol=1e-11)


def test_unknown_symbol_errors_surface_in_ccxt(tiny: ReplayServer) -> None:
    raw = _get(tiny, "/api/v3/klines", symbol="NOPEUSDT", interval="1d")
    assert raw.status_code == 400 and raw.json() == {"code": -1121, "msg": "Invalid symbol."}
    binance = make_exchange("binance", "spot", tiny.base_url)
    with pytest.raises(ccxt.BadSymbol):
        binance.publicGetKlines({"symbol": "NOPEUSDT", "interval": "1d"})
    with pytest.raises(ccxt.BadSymbol):
        binance.fetch_ohlcv("NOPE/USDT", "1d")
    bybit = make_exchange("bybit", "spot", tiny.base_url)
    with pytest.raises(ccxt.ExchangeError):
        bybit.publicGetV5MarketKline({"category": "spot", "symbol": "NOPEUSDT", "interval": "D"})
    assert _get(tiny, "/v5/market/kline", category="spot", symbol="NOPEUSDT", interval="D").status_code == 200


def test_defillama_and_coingecko_shapes(tiny: ReplayServer) -> None:
    chain = _get(tiny, "/v2/historicalChainTvl/Ethereum").json()  # chain names match case-insensitively
    assert chain[0] == {"date": _ms(dt.date(2024, 1, 1)) // 1000, "tvl": 1_000_000}
    assert _get(tiny, "/v2/historicalChainTvl/Nowhere").status_code == 404
    assert _get(tiny, "/protocol/nothing").status_code == 404
    chains = {c["name"]: c for c in _get(tiny, "/v2/chains").json()}
    assert chains["Ethereum"]["tokenSymbol"] == "ETH" and chains["Ethereum"]["tvl"] == 70_000_000
    (uni,) = _get(tiny, "/protocols").json()
    assert uni["slug"] == "uniswap" and uni["tvl"] == 4.0e9 + 69 and uni["gecko_id"] == "uniswap"
    glob = _get(tiny, "/api/v3/global").json()["data"]
    assert glob["market_cap_percentage"]["btc"] == pytest.approx(50.0 + 6.9)
    chart = _get(tiny, "/api/v3/coins/bitcoin/market_chart", vs_currency="usd", days=7, interval="daily").json()
    dominance = chart["market_caps"][-1][1] / glob["total_market_cap"]["usd"] * 100
    assert dominance == pytest.approx(glob["market_cap_percentage"]["btc"], abs=1e-9)
    # no market-cap snapshots in this dataset (an older recording): CoinGecko's "not found"
    assert _get(tiny, "/api/v3/coins/markets", vs_currency="usd", ids="bitcoin").status_code == 404
    assert [p[0] for p in chart["prices"]] == [DAY0_MS - k * DAY_MS for k in range(7, -1, -1)]
    assert _get(tiny, "/api/v3/coins/nocoin/market_chart", vs_currency="usd", days=1).status_code == 404


# ---------------------------------------------------------------- faults


def test_fault_429_with_retry_after(faulty: ReplayServer) -> None:
    faulty.faults.add(FaultRule("429", path=r"^/api/v3/klines$", retry_after_s=1.5, times=1))
    hit = _get(faulty, "/api/v3/klines", symbol="BTCUSDT", interval="1d")
    assert hit.status_code == 429 and hit.headers["Retry-After"] == "2" and hit.json()["code"] == -1003
    assert _get(faulty, "/api/v3/klines", symbol="BTCUSDT", interval="1d").status_code == 200
    assert _get(faulty, "/v2/chains").status_code == 200  # path regex: other paths untouched
    faulty.faults.add(FaultRule("429", path="klines", times=1))
    binance = make_exchange("binance", "spot", faulty.base_url)
    with pytest.raises(ccxt.DDoSProtection):  # ccxt's binance maps any 418/429 to DDoSProtection
        binance.fetch_ohlcv("BTC/USDT", "1d")


def test_fault_5xx_and_ccxt_sees_it(faulty: ReplayServer) -> None:
    faulty.faults.add(FaultRule("5xx", status=502, path="/api/v3/"))
    assert _get(faulty, "/api/v3/global").status_code == 502
    binance = make_exchange("binance", "spot", faulty.base_url)
    with pytest.raises(ccxt.ExchangeNotAvailable):  # a NetworkError: ccxt's retryable family
        binance.load_markets()


def test_fault_timeout(faulty: ReplayServer) -> None:
    faulty.faults.add(FaultRule("timeout", delay_s=2.0, times=1))
    started = time.perf_counter()
    with pytest.raises(requests.Timeout):
        _get(faulty, "/v2/chains", timeout=0.2)
    assert time.perf_counter() - started < 1.5
    assert _get(faulty, "/v2/chains", timeout=0.5).status_code == 200


def test_fault_truncated_json(faulty: ReplayServer) -> None:
    faulty.faults.add(FaultRule("truncated_json", path="fundingRate"))
    answer = _get(faulty, "/fapi/v1/fundingRate", symbol="BTCUSDT")
    assert answer.status_code == 200
    with pytest.raises(requests.JSONDecodeError):
        answer.json()


def test_fault_missing_field(faulty: ReplayServer) -> None:
    faulty.faults.add(FaultRule("missing_field", path="fundingRate", field="fundingRate"))
    faulty.faults.add(FaultRule("missing_field", path="klines"))
    rows = _get(faulty, "/fapi/v1/fundingRate", symbol="BTCUSDT", limit=3).json()
    assert len(rows) == 3 and all("fundingRate" not in r and "fundingTime" in r for r in rows)
    klines = _get(faulty, "/api/v3/klines", symbol="BTCUSDT", interval="1d", limit=3).json()
    assert [len(r) for r in klines] == [4, 4, 4]  # 'close' and everything after it are gone


def test_fault_times_rate_and_latency(faulty: ReplayServer) -> None:
    faulty.faults.add(FaultRule("5xx", path="chains", times=2))
    assert [_get(faulty, "/v2/chains").status_code for _ in range(4)] == [503, 503, 200, 200]
    faulty.faults.clear()

    def draw() -> list[int]:
        faulty.faults.seed = 7
        faulty.faults.replace([FaultRule("5xx", rate=0.5)])
        return [_get(faulty, "/v2/chains").status_code for _ in range(20)]
    first = draw()
    assert first == draw() and 0 < first.count(503) < 20  # seeded: the same run twice
    faulty.faults.replace([FaultRule("latency", delay_s=0.15, path="chains")])
    started = time.perf_counter()
    _get(faulty, "/v2/chains")
    assert time.perf_counter() - started >= 0.15
    assert all(r.path == "/v2/chains" for r in faulty.requests) and faulty.requests[0].status == 503


def test_control_endpoint(faulty: ReplayServer) -> None:
    rules = [{"kind": "429", "path": "klines", "retry_after_s": 3}, {"kind": "5xx", "status": 500, "times": 1}]
    assert requests.post(faulty.base_url + "/__replay__/faults", json=rules, timeout=5).json() == {"faults": 2}
    assert [r.kind for r in faulty.faults.rules] == ["429", "5xx"]
    hit = _get(faulty, "/api/v3/klines", symbol="BTCUSDT", interval="1d")
    assert hit.status_code == 429 and hit.headers["Retry-After"] == "3"
    bad = requests.post(faulty.base_url + "/__replay__/faults", json=[{"kind": "nope"}], timeout=5)
    assert bad.status_code == 400 and len(faulty.faults.rules) == 2
    assert requests.delete(faulty.base_url + "/__replay__/faults", timeout=5).json() == {"faults": 0}
    assert _get(faulty, "/api/v3/klines", symbol="BTCUSDT", interval="1d").status_code == 200
    info = _get(faulty, "/__replay__/info").json()
    assert info == {"label": "tiny", "as_of": "2024-03-10", "first_date": "2024-01-01", "requests": 2}


def test_fault_spec_parsing() -> None:
    assert FaultRule.parse("429=2:/api/v3/klines:0.1") == FaultRule("429", path="/api/v3/klines", rate=0.1,
                                                                    retry_after_s=2.0)
    assert FaultRule.parse("5xx=502") == FaultRule("5xx", status=502)
    assert FaultRule.parse("missing_field=fundingRate:/fapi/") == FaultRule("missing_field", path="/fapi/",
                                                                            field="fundingRate")
    with pytest.raises(ValueError):
        FaultRule.parse("explode")


def test_cli_serves_and_is_steerable(tiny_dir: Path) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "pipeline.sources.replay", "--data", str(tiny_dir), "--port", "0",
         "--fault", "5xx=502:/v2/chains"],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )
    try:
        base_url = proc.stdout.readline().strip()
        assert base_url.startswith("http://127.0.0.1:")
        assert requests.get(base_url + "/v2/chains", timeout=5).status_code == 502
        requests.delete(base_url + "/__replay__/faults", timeout=5)
        assert requests.get(base_url + "/v2/chains", timeout=5).status_code == 200
        assert requests.get(base_url + "/__replay__/info", timeout=5).json()["requests"] == 2
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:  # seen once under a loaded CI run; serving is what this tests
            proc.kill()
            proc.wait(timeout=10)


# ---------------------------------------------------------------- the recorded real history


@pytest.fixture(scope="module")
def real_server(real):
    with ReplayServer(real) as srv:
        yield srv


def _page(fetch, since: int) -> list:
    """Page forward the way a client does: from the last timestamp seen, until nothing comes back."""
    out: list = []
    while True:
        batch = fetch(since)
        if not batch:
            return out
        out.extend(batch)
        stamp = batch[-1][0] if isinstance(batch[-1], list) else batch[-1]["timestamp"]
        since = stamp + 1


def _parquet_ohlcv(symbol: str) -> list[list[float]]:
    df = pl.read_parquet(REAL_DATA / "ohlcv_1d.parquet").filter(pl.col("symbol") == symbol).sort("date")
    return df.select(pl.col("date").dt.epoch("ms").cast(pl.Float64), "open", "high", "low", "close", "volume").rows()


def _parquet_funding(symbol: str) -> list[tuple[int, float]]:
    df = pl.read_parquet(REAL_DATA / "funding_8h.parquet").filter(pl.col("symbol") == symbol).sort("ts")
    return df.select(pl.col("ts").dt.epoch("ms"), "funding_rate").rows()


def test_real_binance_spot_paging_returns_the_parquet_rows(real_server: ReplayServer) -> None:
    binance = make_exchange("binance", "spot", real_server.base_url)
    binance.load_markets()
    assert "BTC/USDT" in binance.markets and not binance.markets["IMX/USDT"]["active"]
    for symbol in ("ETH/USDT", "ARB/USDT"):
        got = _page(lambda since, s=symbol: binance.fetch_ohlcv(s, "1d", since=since, limit=1000), 0)
        assert [[float(x) for x in row] for row in got] == [list(r) for r in _parquet_ohlcv(symbol)]


def test_real_binanceusdm_funding_equals_the_parquet(real_server: ReplayServer) -> None:
    usdm = make_exchange("binanceusdm", "linear", real_server.base_url)
    got = _page(lambda since: usdm.fetch_funding_rate_history("BTC/USDT:USDT", since=since, limit=1000), 0)
    assert [(r["timestamp"], r["fundingRate"]) for r in got] == _parquet_funding("BTC/USDT:USDT")


def test_real_bybit_spot_and_linear_give_the_same_values(real_server: ReplayServer) -> None:
    spot = make_exchange("bybit", "spot", real_server.base_url)
    linear = make_exchange("bybit", "linear", real_server.base_url)
    expected = [list(r) for r in _parquet_ohlcv("SUI/USDT")]
    for exchange, symbol in ((spot, "SUI/USDT"), (linear, "SUI/USDT:USDT")):
        got = _page(lambda since, e=exchange, s=symbol: e.fetch_ohlcv(s, "1d", since=since, limit=1000), 0)
        assert [[float(x) for x in row] for row in got] == expected
    funding = _page(lambda since: linear.fetch_funding_rate_history("SUI/USDT:USDT", since=since, limit=200),
                    _ms(dt.date(2023, 5, 1)))
    assert [(r["timestamp"], r["fundingRate"]) for r in funding] == _parquet_funding("SUI/USDT:USDT")


def test_real_clock_and_defillama(real_server: ReplayServer) -> None:
    as_of_day0 = real_server.dataset.as_of_end_ms + 1 - DAY_MS
    rows = _get(real_server, "/api/v3/klines", symbol="BTCUSDT", interval="1d", startTime=as_of_day0 - 3 * DAY_MS,
                endTime=FAR_FUTURE_MS).json()
    assert [r[0] for r in rows] == [as_of_day0 - k * DAY_MS for k in (3, 2, 1, 0)]
    tvl = pl.read_parquet(REAL_DATA / "chain_tvl_1d.parquet")
    for chain in tvl["chain"].unique().to_list():
        want = tvl.filter(pl.col("chain") == chain).sort("date")
        got = _get(real_server, f"/v2/historicalChainTvl/{chain.title()}").json()
        assert [(g["date"], g["tvl"]) for g in got] == list(zip(want["date"].dt.epoch("s").to_list(),
                                                                 want["tvl_usd"].to_list(), strict=True))


def test_real_coingecko_dominance_roundtrip(real_server: ReplayServer) -> None:
    caps = _get(real_server, "/api/v3/coins/bitcoin/market_chart", vs_currency="usd", days="max",
                interval="daily").json()["market_caps"]
    totals = dict(_get(real_server, "/api/v3/global/market_cap_chart", days="max").json()["market_cap_chart"]["market_cap"])
    dom = pl.read_parquet(REAL_DATA / "btc_dominance_1d.parquet").sort("date")
    want = dict(zip(dom["date"].dt.epoch("ms").to_list(), dom["btc_dominance_pct"].to_list(), strict=True))
    assert len(caps) == len(want)
    for ms, cap in caps:
        assert abs(cap / totals[ms] * 100 - want[ms]) < 1e-9
    glob = _get(real_server, "/api/v3/global").json()["data"]
    assert abs(glob["market_cap_percentage"]["btc"] - dom["btc_dominance_pct"][-1]) < 1e-9
    assert glob["updated_at"] * 1000 <= real_server.dataset.as_of_end_ms


# ---------------------------------------------------------------- the user's universe


def _own_universe(tmp_path: Path) -> Path:
    """A universe of the tiny dataset's own tokens, under CoinGecko ids the default universe lacks."""
    path = tmp_path / "universe.yaml"
    path.write_text(
        "sectors: [Core, Memes]\n"
        "tokens:\n"
        "  BTC: {sector: Core, bucket: core, spot: BTC/USDT, perp: BTC/USDT:USDT, coingecko: bitcoin}\n"
        "  OLD: {sector: Memes, bucket: speculative, spot: OLD/USDT, coingecko: old-coin, defillama: uniswap}\n")
    return path


def test_the_replay_answers_for_the_users_universe_from_rotation_universe(tiny_dir: Path, tmp_path: Path,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ROTATION_UNIVERSE", str(_own_universe(tmp_path)))
    with ReplayServer(load_dataset(tiny_dir)) as srv:
        chart = _get(srv, "/api/v3/coins/old-coin/market_chart", vs_currency="usd", days="max")
        (uni,) = _get(srv, "/protocols").json()
    assert chart.status_code == 200 and len(chart.json()["prices"]) == 32  # OLD traded 2024-01-01 .. 02-01
    assert uni["symbol"] == "OLD" and uni["gecko_id"] == "old-coin"


def test_the_market_sources_give_the_replay_their_universe(tiny_dir: Path, tmp_path: Path) -> None:
    import dagster as dg

    from pipeline.resources import MarketSources

    sources = MarketSources(mode="replay", replay_data=str(tiny_dir), universe_path=str(_own_universe(tmp_path)))
    with dg.build_resources({"sources": sources}) as resources:
        chart = requests.get(f"{resources.sources.base_url}/api/v3/coins/old-coin/market_chart",
                             params={"vs_currency": "usd", "days": "max"}, timeout=5)
    assert chart.status_code == 200


def test_the_cache_of_formatted_answers_is_bounded_and_answers_stay_the_same(tiny_dir: Path,
                                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    from pipeline.sources.replay import server

    monkeypatch.setattr(server, "CACHE_ENTRIES", 2)
    with ReplayServer(load_dataset(tiny_dir)) as srv:
        first = _get(srv, "/api/v3/klines", symbol="BTCUSDT", interval="1d", limit=1000).json()
        for symbol in ("PEPEUSDT", "OLDUSDT", "BTCUSDT", "PEPEUSDT"):
            assert _get(srv, "/api/v3/klines", symbol=symbol, interval="1d", limit=1000).status_code == 200
            assert len(srv._api._cache) <= 2
        assert _get(srv, "/api/v3/klines", symbol="BTCUSDT", interval="1d", limit=1000).json() == first
        assert len(first) == 70  # the 70 days up to the as-of day


def test_rows_repeating_a_key_are_named_in_a_warning_and_the_first_is_served(tiny_dir: Path, tmp_path: Path, caplog) -> None:
    """A dataset file with two rows for one day is a defect: the replay says so (the file, the keys
    and how many rows each) and serves the first row, as the recorded one."""
    import shutil

    folder = shutil.copytree(tiny_dir, tmp_path / "repeated")
    day = dt.date(2024, 2, 10)
    candles = pl.read_parquet(folder / "ohlcv_1d.parquet")
    again = candles.filter((pl.col("symbol") == "BTC/USDT") & (pl.col("date") == day)).with_columns(close=pl.lit(1.0))
    pl.concat([candles, again, again]).write_parquet(folder / "ohlcv_1d.parquet")
    tvl = pl.read_parquet(folder / "chain_tvl_1d.parquet")
    pl.concat([tvl, tvl.filter((pl.col("chain") == "arbitrum") & (pl.col("date") == day)).with_columns(tvl_usd=pl.lit(7, pl.Int64))]
              ).write_parquet(folder / "chain_tvl_1d.parquet")
    funding = pl.read_parquet(folder / "funding_8h.parquet")
    early = (pl.col("symbol") == "BTC/USDT:USDT") & (pl.col("ts").dt.date() <= dt.date(2024, 1, 3))  # 9 settlements
    pl.concat([funding, funding.filter(early)]).write_parquet(folder / "funding_8h.parquet")

    with caplog.at_level("WARNING", logger="pipeline.replay"):
        dataset = load_dataset(folder)
    warnings = {Path(r.args[0]).name: r.getMessage() for r in caplog.records if r.levelname == "WARNING"}
    assert set(warnings) == {"ohlcv_1d.parquet", "chain_tvl_1d.parquet", "funding_8h.parquet"}
    assert ": 1 (symbol, date) key(s) on more than one row: BTC/USDT 2024-02-10 (3 rows); the replay serves the first row of each" \
        in warnings["ohlcv_1d.parquet"]
    assert "1 (chain, date) key(s) on more than one row: arbitrum 2024-02-10 (2 rows)" in warnings["chain_tvl_1d.parquet"]
    assert "9 (symbol, ts) key(s) on more than one row: BTC/USDT:USDT 2024-01-01 00:00:00+00:00 (2 rows)" in warnings["funding_8h.parquet"]
    assert "(2 rows) and 4 more; the replay serves" in warnings["funding_8h.parquet"]

    with ReplayServer(dataset) as srv:
        klines = _get(srv, "/api/v3/klines", symbol="BTCUSDT", interval="1d", startTime=_ms(day), limit=1).json()
        arbitrum = _get(srv, "/v2/historicalChainTvl/arbitrum").json()
    recorded = candles.filter((pl.col("symbol") == "BTC/USDT") & (pl.col("date") == day))
    assert [(k[0], float(k[4])) for k in klines] == [(_ms(day), recorded["close"].item())]
    served = [p["tvl"] for p in arbitrum if p["date"] == _ms(day) // 1000]
    assert served == tvl.filter((pl.col("chain") == "arbitrum") & (pl.col("date") == day))["tvl_usd"].to_list()
