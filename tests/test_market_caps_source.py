"""Market caps as a source: the replay's CoinMarketCap and CoinGecko answers (clock, paging, errors),
the delisted pairs' candles beside the others, both clients against the replay, and the
`market_caps` ingest asset on a dataset of its own (rows, gate, a dataset without market caps).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
from pathlib import Path

import dagster as dg
import polars as pl
import pytest
import requests

from assets.ingest import market_caps
from pipeline.resources import MarketSources, QualitySettings, WarehouseResource
from pipeline.sources.coingecko import CoinGecko
from pipeline.sources.coinmarketcap import CoinMarketCap, vendor_error
from pipeline.sources.errors import NotAvailable, SourceError
from pipeline.sources.exchange import make_exchange
from pipeline.sources.prices import fetch_daily_candles
from pipeline.sources.replay import FaultRule, ReplayServer, load_dataset
from pipeline.sources.retry import Retryable
from warehouse import Warehouse

AS_OF = dt.date(2024, 3, 10)
SNAPSHOTS = (dt.date(2024, 2, 1), dt.date(2024, 3, 1), AS_OF)  # the last one is dated on the as-of day
COINS = 600  # per snapshot: three pages of CoinGecko's 250


def coin_rows(day: dt.date, scale: float) -> list[tuple]:
    """Bitcoin, then "Coin 2".."Coin 600" (CoinGecko id "gecko-coin-N", CMC slug "coin-N"), caps falling with rank."""
    rows = [(day, 1, "BTC", "Bitcoin", 1.0e12 * scale, 50_000.0, 2.0e7, 3.0e10, "bitcoin")]
    rows += [(day, n, f"C{n}", f"Coin {n}", 1.0e10 * scale / n, 10.0 / n, 1.0e9, 1.0e6 * (COINS - n + 1), f"gecko-coin-{n}")
             for n in range(2, COINS + 1)]
    return rows


def write_dataset(folder: Path, caps: bool = True, bad_price: str | None = None) -> Path:
    """A dataset of its own: BTC's candles, funding, TVL and dominance to a few days past AS_OF, and
    (with `caps`) three market-cap snapshots and the coins' categories; `bad_price` names a coin sent
    with a negative price in every snapshot."""
    folder.mkdir(parents=True, exist_ok=True)
    days = [dt.date(2024, 1, 1) + dt.timedelta(days=i) for i in range(75)]
    pl.DataFrame([("binance", "BTC/USDT", d, 40_000.0 + i, 40_500.0 + i, 39_500.0 + i, 40_100.0 + i, 1000.0)
                  for i, d in enumerate(days)],
                 schema=["exchange", "symbol", "date", "open", "high", "low", "close", "volume"],
                 orient="row").write_parquet(folder / "ohlcv_1d.parquet")
    pl.DataFrame([("binanceusdm", "BTC/USDT:USDT", dt.datetime.combine(d, dt.time(), dt.UTC), 0.0001, 40_000.0)
                  for d in days], schema=["exchange", "symbol", "ts", "funding_rate", "mark_price"],
                 orient="row").write_parquet(folder / "funding_8h.parquet")
    pl.DataFrame([(d, "ethereum", 5.0e10) for d in days], schema=["date", "chain", "tvl_usd"],
                 orient="row").write_parquet(folder / "chain_tvl_1d.parquet")
    pl.DataFrame([(d, 50.0, 2.0e12) for d in days], schema=["date", "btc_dominance_pct", "total_market_cap_usd"],
                 orient="row").write_parquet(folder / "btc_dominance_1d.parquet")
    (folder / "dataset.json").write_text(json.dumps({"label": "caps", "as_of": AS_OF.isoformat()}))
    if caps:
        rows = [r for k, day in enumerate(SNAPSHOTS) for r in coin_rows(day, 1.0 + k)]
        frame = pl.DataFrame(rows, schema=["snapshot_date", "rank", "symbol", "name", "market_cap_usd", "price_usd",
                                           "circulating_supply", "volume_24h_usd", "coingecko_id"], orient="row")
        if bad_price:
            frame = frame.with_columns(price_usd=pl.when(pl.col("name") == bad_price).then(-1.0).otherwise("price_usd"))
        frame.write_parquet(folder / "market_caps_monthly.parquet")
        pl.DataFrame([("bitcoin", "Layer 1 (L1)"), ("bitcoin", "Proof of Work (PoW)"),
                      ("gecko-coin-2", "Decentralized Finance (DeFi)")],
                     schema=["coingecko_id", "category"], orient="row").write_parquet(folder / "coin_categories.parquet")
    return folder


@pytest.fixture(scope="module")
def caps_dir(tmp_path_factory) -> Path:
    return write_dataset(tmp_path_factory.mktemp("caps") / "caps")


@pytest.fixture
def caps(caps_dir):
    """A fresh server per test: its own request log and faults."""
    with ReplayServer(load_dataset(caps_dir)) as srv:
        yield srv


def get(srv: ReplayServer, path: str, **params) -> requests.Response:
    return requests.get(srv.base_url + path, params=params, timeout=10)


# ------------------------------------------------------------------ the replay on the real history


@pytest.fixture(scope="module")
def real_server(real):
    with ReplayServer(real) as srv:
        yield srv


def test_the_cmc_listing_of_2022_01_01_holds_luna_and_ftt_with_the_recorded_caps(real_server, real_data):
    payload = get(real_server, "/v1/cryptocurrency/listings/historical", date="2022-01-01", start=1, limit=200,
                  convert="USD").json()
    assert payload["status"]["error_code"] == 0 and len(payload["data"]) == 200
    items = {item["symbol"]: item for item in payload["data"]}
    recorded = pl.read_parquet(real_data / "market_caps_monthly.parquet").filter(
        pl.col("snapshot_date") == dt.date(2022, 1, 1), pl.col("symbol").is_in(["LUNA", "FTT"]))
    for symbol, name, cap, rank in recorded.select("symbol", "name", "market_cap_usd", "rank").iter_rows():
        item = items[symbol]
        assert (item["name"], item["cmc_rank"], item["quote"]["USD"]["market_cap"]) == (name, rank, cap)
        assert item["last_updated"] == "2022-01-01T23:59:59.000Z" and isinstance(item["id"], int)
    assert items["LUNA"]["name"] == "Terra" and items["LUNA"]["slug"] == "terra"
    assert items["FTT"]["slug"] == "ftx-token" and items["FTT"]["quote"]["USD"]["market_cap"] == pytest.approx(5.585e9, rel=1e-3)
    # the client: keyed by slug, as raw.market_caps holds it
    frame = CoinMarketCap(base_url=real_server.base_url).listings_historical(dt.date(2022, 1, 1))
    luna = frame.filter(pl.col("coin") == "terra").row(0, named=True)
    assert luna["symbol"] == "LUNA" and luna["rank"] == 9 and luna["date"] == dt.date(2022, 1, 1)
    assert luna["market_cap_usd"] == recorded.filter(pl.col("symbol") == "LUNA")["market_cap_usd"].item()


def test_lunas_delisted_candles_are_served_to_its_collapse_and_the_pair_is_inactive(real_server):
    info = get(real_server, "/api/v3/exchangeInfo").json()
    status = {s["symbol"]: s["status"] for s in info["symbols"]}
    assert status["LUNAUSDT"] == "BREAK" and status["FTTUSDT"] == "BREAK" and status["BTCUSDT"] == "TRADING"
    may = int(dt.datetime(2022, 5, 1, tzinfo=dt.UTC).timestamp() * 1000)
    klines = get(real_server, "/api/v3/klines", symbol="LUNAUSDT", interval="1d", startTime=may, limit=1000).json()
    assert dt.datetime.fromtimestamp(klines[-1][0] / 1000, dt.UTC).date() == dt.date(2022, 5, 13)
    assert float(klines[-1][4]) == pytest.approx(0.00005, rel=0.5)  # the collapse
    after = int(dt.datetime(2022, 5, 14, tzinfo=dt.UTC).timestamp() * 1000)
    assert get(real_server, "/api/v3/klines", symbol="LUNAUSDT", interval="1d", startTime=after).json() == []
    # ccxt marks the pair inactive, and the candle fetch the ingest runs still gets its history
    exchange = make_exchange("binance", "spot", real_server.base_url)
    candles = asyncio.run(fetch_daily_candles(exchange, "LUNA/USDT", dt.date(2022, 5, 1), dt.date(2022, 6, 30)))
    assert exchange.markets["LUNA/USDT"]["active"] is False
    assert candles["date"].to_list() == [dt.date(2022, 5, 1) + dt.timedelta(days=i) for i in range(13)]


# ------------------------------------------------------------------ the replay's clock, paging and errors


def test_the_clock_hides_the_snapshot_dated_on_the_as_of_day_and_refuses_later_dates(caps):
    listing = "/v1/cryptocurrency/listings/historical"
    known = get(caps, listing, date="2024-03-01", limit=5).json()
    assert [i["slug"] for i in known["data"]] == ["bitcoin", "coin-2", "coin-3", "coin-4", "coin-5"]
    assert known["data"][0]["quote"]["USD"]["market_cap"] == 2.0e12  # the 2024-03-01 snapshot (scale 2)
    hidden = get(caps, listing, date=AS_OF.isoformat())  # describes the end of the as-of day: known from the next
    assert hidden.status_code == 200 and hidden.json()["data"] == [] and hidden.json()["status"]["error_code"] == 0
    assert get(caps, listing, date="2024-02-15").json()["data"] == []  # a day without a snapshot
    future = get(caps, listing, date="2024-03-11")
    assert future.status_code == 400 and future.json()["status"]["error_code"] == 400
    assert "2024-03-11" in future.json()["status"]["error_message"]
    latest = get(caps, "/v1/cryptocurrency/listings/latest", limit=1).json()["data"]
    assert latest[0]["last_updated"] == "2024-03-01T23:59:59.000Z"
    (btc,) = get(caps, "/api/v3/coins/markets", vs_currency="usd", ids="bitcoin").json()
    assert btc["last_updated"] == "2024-03-01T23:59:59.000Z" and btc["market_cap"] == 2.0e12
    # the client: a later date is an error at once (no retry), not an empty day
    cmc = CoinMarketCap(base_url=caps.base_url, backoff_s=0.01)
    assert cmc.listings_historical(AS_OF).is_empty()
    before = len(caps.requests)
    with pytest.raises(SourceError, match=r"coinmarketcap GET /v1/cryptocurrency/listings/historical: .*must be in the past"):
        cmc.listings_historical(dt.date(2024, 3, 11))
    assert len(caps.requests) == before + 1


def test_coins_markets_pages_by_250_in_market_cap_order_with_the_datasets_coingecko_ids(caps):
    pages = [get(caps, "/api/v3/coins/markets", vs_currency="usd", order="market_cap_desc", per_page=250, page=k).json()
             for k in (1, 2, 3, 4)]
    assert [len(p) for p in pages] == [250, 250, 100, 0]
    ids = [c["id"] for p in pages for c in p]
    assert ids[:3] == ["bitcoin", "gecko-coin-2", "gecko-coin-3"] and len(set(ids)) == COINS
    assert [c["market_cap_rank"] for p in pages for c in p] == list(range(1, COINS + 1))
    # the client asks page after page and keeps the top N
    gecko = CoinGecko(base_url=caps.base_url + "/api/v3", backoff_s=0.01)
    before = len(caps.requests)
    top = gecko.markets(300)
    asked = [r.query for r in caps.requests[before:]]
    assert [(q["page"], q["per_page"], q["order"]) for q in asked] == [("1", "250", "market_cap_desc"), ("2", "250", "market_cap_desc")]
    assert top.height == 300 and top["rank"].to_list() == list(range(1, 301))
    row = top.filter(pl.col("coin") == "gecko-coin-2").row(0, named=True)
    assert row == {"date": dt.date(2024, 3, 1), "coin": "gecko-coin-2", "symbol": "C2", "name": "Coin 2", "rank": 2,
                   "market_cap_usd": 1.0e10, "price_usd": 5.0, "volume_24h_usd": 599.0e6, "circulating_supply": 1.0e9}
    assert gecko.markets(1000).height == COINS  # fewer coins than asked: the last page is short


def test_a_coins_categories_come_from_the_dataset_and_an_unknown_coin_is_coingeckos_404(caps):
    gecko = CoinGecko(base_url=caps.base_url + "/api/v3", backoff_s=0.01)
    assert gecko.coin_categories("bitcoin") == ["Layer 1 (L1)", "Proof of Work (PoW)"]
    assert gecko.coin_categories("gecko-coin-3") == []
    asked = caps.requests[-1].query
    assert asked["localization"] == asked["tickers"] == asked["market_data"] == "false"
    missing = get(caps, "/api/v3/coins/no-such-coin")
    assert missing.status_code == 404 and missing.json() == {"error": "coin not found"}
    with pytest.raises(NotAvailable, match="coin not found"):
        gecko.coin_categories("no-such-coin")


def test_cmc_rate_limits_are_retried_and_its_key_and_plan_errors_are_not_available(caps):
    caps.faults.add(FaultRule(kind="429", path="/v1/cryptocurrency/", times=2, retry_after_s=0.01))
    frame = CoinMarketCap(base_url=caps.base_url, backoff_s=0.01).listings_historical(dt.date(2024, 2, 1), limit=3)
    assert frame["coin"].to_list() == ["bitcoin", "coin-2", "coin-3"]
    assert [r.status for r in caps.requests] == [429, 429, 200]
    endpoint = "coinmarketcap GET /v1/cryptocurrency/listings/historical"
    plan = vendor_error(endpoint, 403, {"status": {"error_code": 1006, "error_message": "Your plan is not authorized"}})
    assert isinstance(plan, NotAvailable) and "1006" in str(plan)
    assert isinstance(vendor_error(endpoint, 401, {"status": {"error_code": 1002, "error_message": "API key missing."}}),
                      NotAvailable)
    assert isinstance(vendor_error(endpoint, 429, {"status": {"error_code": 1009, "error_message": "daily limit"}}), Retryable)
    assert vendor_error(endpoint, 200, {"status": {"error_code": 0}, "data": []}) is None


# ------------------------------------------------------------------ the ingest asset


def materialise(folder: Path, warehouse_path: Path, month: str = "2024-03-01") -> dg.MaterializeResult:
    resources = {"sources": MarketSources(replay_data=str(folder), backoff_s=0.01),
                 "warehouse": WarehouseResource(path=str(warehouse_path)), "quality": QualitySettings()}
    with dg.build_asset_context(partition_key_range=dg.PartitionKeyRange(month, month), resources=resources) as ctx:
        return market_caps(ctx)


@pytest.fixture
def small_night(monkeypatch):
    monkeypatch.setenv("ROTATION_MARKET_CAP_TOP_N", "20")
    monkeypatch.setenv("ROTATION_CATEGORY_CALLS", "5")


def test_the_newest_month_writes_cmcs_first_day_coingeckos_snapshot_and_new_coins_categories(caps_dir, warehouse_path,
                                                                                             small_night):
    result = materialise(caps_dir, warehouse_path)
    check = result.check_results[0]
    assert check.passed and check.severity == dg.AssetCheckSeverity.ERROR
    wh = Warehouse(warehouse_path)
    stored = wh.query("select source, date, count(*) as coins, min(rank) as first, max(rank) as last "
                      "from raw.market_caps group by all order by all")
    assert stored.rows() == [("coingecko", dt.date(2024, 3, 1), 20, 1, 20), ("coinmarketcap", dt.date(2024, 3, 1), 20, 1, 20)]
    keys = wh.query("select source, coin, symbol from raw.market_caps where rank = 3 order by source").rows()
    assert keys == [("coingecko", "gecko-coin-3", "C3"), ("coinmarketcap", "coin-3", "C3")]  # each vendor's own id
    # bitcoin's categories are not asked for: the taxonomy places it
    assert result.metadata["rows_written"] == 40 and result.metadata["categories_written"] == 1
    categories = wh.query("select source, coin, category, first_seen from raw.coin_categories order by all").rows()
    assert categories == [("coingecko", "gecko-coin-2", "Decentralized Finance (DeFi)", dt.date(2024, 3, 1))]
    # a second night: the held CMC snapshot is not asked for again, nothing is written twice
    again = materialise(caps_dir, warehouse_path)
    assert again.metadata["rows_written"] == 0
    assert wh.query("select count(*) from raw.market_caps").item() == 40


def test_an_earlier_month_writes_only_cmcs_listing_of_its_first_day(caps_dir, warehouse_path, small_night):
    result = materialise(caps_dir, warehouse_path, month="2024-02-01")
    assert result.check_results[0].passed
    stored = Warehouse(warehouse_path).query("select distinct source, date from raw.market_caps").rows()
    assert stored == [("coinmarketcap", dt.date(2024, 2, 1))]
    assert Warehouse(warehouse_path).query("select count(*) from raw.coin_categories").item() == 0


def test_the_gate_keeps_a_negative_price_out_and_blocks(tmp_path, warehouse_path, small_night):
    folder = write_dataset(tmp_path / "bad", bad_price="Coin 3")
    result = materialise(folder, warehouse_path)
    check = result.check_results[0]
    assert not check.passed and check.severity == dg.AssetCheckSeverity.ERROR
    assert "price_non_negative" in check.description
    wh = Warehouse(warehouse_path)
    assert wh.query("select count(*) from raw.market_caps where rank = 3").item() == 0
    assert wh.query("select count(*) from raw.market_caps").item() == 38
    quarantined = wh.query("select row_key, expectation, action, kept_in_table from raw.quarantine order by row_key").rows()
    assert quarantined == [
        ('{"source":"coingecko","date":"2024-03-01","coin":"gecko-coin-3"}', "raw.market_caps.price_non_negative", "block", False),
        ('{"source":"coinmarketcap","date":"2024-03-01","coin":"coin-3"}', "raw.market_caps.price_non_negative", "block", False),
    ]


def test_a_dataset_without_market_caps_warns_writes_nothing_and_succeeds(tmp_path, warehouse_path, small_night, capfd):
    folder = write_dataset(tmp_path / "older", caps=False)
    result = materialise(folder, warehouse_path)
    assert result.check_results[0].passed and result.metadata["rows_written"] == 0
    warnings = [line for line in capfd.readouterr().err.splitlines() if " - WARNING - " in line]  # the run's log
    assert any("CoinMarketCap has no snapshot of 2024-03-01" in w for w in warnings), warnings
    assert any("no CoinGecko snapshot" in w and "no market caps in the replay dataset" in w for w in warnings), warnings
    assert Warehouse(warehouse_path).query("select count(*) from raw.market_caps").item() == 0


def test_live_without_a_cmc_key_has_no_cmc_client_and_with_one_sends_it(monkeypatch):
    monkeypatch.delenv("COINMARKETCAP_API_KEY", raising=False)
    assert MarketSources(mode="live").coinmarketcap() is None
    monkeypatch.setenv("COINMARKETCAP_API_KEY", "FAKE-cmc-key")
    client = MarketSources(mode="live").coinmarketcap()
    assert client.http.base_url == "https://pro-api.coinmarketcap.com"
    assert client.http.session.headers["X-CMC_PRO_API_KEY"] == "FAKE-cmc-key"
