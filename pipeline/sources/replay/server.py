"""The replay server: the real APIs' paths and payload shapes, served offline from a `Dataset`.

One local HTTP server answers Binance spot and USD-M, Bybit v5, DefiLlama, CoinGecko and
CoinMarketCap at once (their paths do not collide), so the same client code (ccxt, requests) runs
against it unchanged; only base URLs differ. It keeps a clock: nothing after the dataset's as-of day is ever served,
whatever window a client asks for, so a replayed run cannot see the future.

The dataset's daily candles (ohlcv_1d's and the delisted pairs' beside them) are served for both
exchanges (`BTCUSDT` <-> `BTC/USDT`); a perp's candles are its underlying's spot candles
(`1000PEPEUSDT` = 1000 x `PEPE/USDT`). Values the dataset does not hold are filled plainly: quote
volume = base volume x close, trade counts 0, the market-cap history (/market_chart) of coins other
than bitcoin 0 (CoinGecko's own "unknown"), total volume = the dataset's spot turnover.
Market caps (CMC's listings, CoinGecko's /coins/markets) come from the dataset's monthly snapshots
only: a dataset without them answers 404 there, as CoinGecko does for what it does not have.

Everything a request needs is indexed at startup (per symbol, sorted, sliced with bisect); the
formatted rows of a symbol are built on its first request and cached, so requests take ~1 ms. The
cache keeps the CACHE_ENTRIES most recently used answers: a client pages through one symbol at a
time, and holding every symbol's rows of a 5,000-token universe took gigabytes.
Faults (`faults.py`) are injected around the correct answer; `/__replay__/...` controls them from
another process.
"""

from __future__ import annotations

import bisect
import datetime as dt
import json
import logging
import math
import re
import threading
import time
import zlib
from array import array
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import polars as pl

from pipeline.settings import Settings
from pipeline.sources.replay.dataset import Dataset
from pipeline.sources.replay.faults import (
    FaultPlan,
    FaultRule,
    drop_field,
    duplicate_last,
    gateway_page,
    rate_limit_body,
    retry_after_header,
    truncate,
)
from pipeline.universe import Universe, load_universe

log = logging.getLogger("pipeline.replay")

DAY_MS = 86_400_000
CONTROL_PREFIX = "/__replay__/"
_JSON = "application/json;charset=UTF-8"
_PERP_DELIVERY_MS = 4133404800000  # Binance's "no delivery" date for perpetuals (2100-12-25)
_MULTIPLIED = re.compile(r"^(10+)(\D.*)$")  # 1000PEPE, 1000000MOG: contracts of N base units
CACHE_ENTRIES = 256  # formatted answers kept (a symbol's 3 years of candles: ~0.2 MB)


# ---------------------------------------------------------------- numbers and windows


def _plain(x: float) -> str:
    """Shortest round-tripping decimal, never scientific: APIs send "0.00001", not "1e-05"."""
    s = repr(float(x))
    return format(Decimal(s), "f") if "e" in s else s


def _bn(x: float | None) -> str:
    """Binance's number strings: at least 8 decimals ("0.00010000"); "" when unknown."""
    if x is None or math.isnan(x):
        return ""
    whole, _, frac = _plain(x).partition(".")
    return f"{whole}.{frac.ljust(8, '0')}"


def _by(x: float | None) -> str:
    """Bybit's number strings: no padding ("0.0001", "43000")."""
    if x is None or math.isnan(x):
        return ""
    s = _plain(x)
    return s[:-2] if s.endswith(".0") else s


def _tick_exp(price: float) -> int:
    """Decimal exponent of a plausible tick size (~6 significant digits), for ccxt's precision."""
    if not price > 0:
        return -8
    return max(-8, min(-2, math.floor(math.log10(price)) - 5))


def _window(keys: list[int], start: int | None, end: int | None, limit: int, newest: bool) -> range:
    """Indexes of keys in [start, end] (inclusive), at most `limit`: the newest or the oldest."""
    lo = 0 if start is None else bisect.bisect_left(keys, start)
    hi = len(keys) if end is None else bisect.bisect_right(keys, end)
    if hi - lo > limit:
        lo, hi = (hi - limit, hi) if newest else (lo, lo + limit)
    return range(lo, max(lo, hi))


def _iso_ms(ms: int) -> str:
    return dt.datetime.fromtimestamp(ms / 1000, dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


# ---------------------------------------------------------------- indexed dataset


# A symbol's columns are packed arrays (8 bytes a value; they index, slice, zip and bisect like the
# lists they replace and give back Python ints and floats): as lists of Python floats, a 5,000-token
# universe's candles took 1.9 GB of the demo's process.
@dataclass(frozen=True)
class _Candles:
    t: array | list[int]  # open time, ms, ascending
    o: array | list[float]
    h: array | list[float]
    l: array | list[float]  # noqa: E741
    c: array | list[float]
    v: array | list[float]

    def scaled(self, m: int) -> _Candles:
        """Candles of a contract on `m` base units: prices x m, volume / m (12 significant digits)."""
        def px(xs: list[float]) -> list[float]:
            return [float(f"{x * m:.12g}") for x in xs]
        return _Candles(self.t, px(self.o), px(self.h), px(self.l), px(self.c),
                        [float(f"{x / m:.12g}") for x in self.v])


@dataclass(frozen=True)
class _Funding:
    t: array | list[int]  # funding time, ms, ascending
    rate: array | list[float]
    mark: list[float | None]


@dataclass(frozen=True)
class _Perp:
    symbol: str  # ccxt form, 'BTC/USDT:USDT'
    id: str  # exchange form, 'BTCUSDT'
    base: str
    quote: str
    settle: str
    funding: _Funding
    candles: _Candles | None  # the underlying's spot candles, scaled; None when the spot is absent


def _packed(df: pl.DataFrame, key: str, columns: dict[str, str | None]) -> dict[str, dict[str, array | list]]:
    """Per-key columns of a frame already sorted by key then time: packed arrays of the given type
    code ('q' int64, 'd' float64; a null float becomes NaN), or lists where the code is None."""
    def column(part: pl.DataFrame, name: str, code: str | None) -> array | list:
        if code is None:
            return part[name].to_list()
        dtype = "int64" if code == "q" else "float64"
        return array(code, part[name].to_numpy().astype(dtype, copy=False).tobytes())

    return {
        k: {c: column(part, c, code) for c, code in columns.items()}
        for (k,), part in df.group_by(key, maintain_order=True)
    }


class _ClientError(Exception):
    """A request the real API refuses; carries the answer in that API's own error shape."""

    def __init__(self, status: int, payload: Any) -> None:
        super().__init__(payload)
        self.status = status
        self.payload = payload


@dataclass
class _Response:
    status: int
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)
    content_type: str = _JSON


def _dumps(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode()


def _fragments(rows: list[Any]) -> list[str]:
    """Rows serialized once, so a request only joins a slice of them."""
    return [json.dumps(row, separators=(",", ":")) for row in rows]


def _join(fragments: list[str]) -> str:
    return "[" + ",".join(fragments) + "]"


def family(path: str) -> str:
    """Which API a path belongs to, so errors and injected faults take that API's shape."""
    if path.startswith("/v1/cryptocurrency/"):
        return "coinmarketcap"
    if path.startswith("/v5/"):
        return "bybit"
    if path.startswith("/fapi/") or path in ("/api/v3/exchangeInfo", "/api/v3/klines"):
        return "binance"
    if path.startswith("/api/v3/"):
        return "coingecko"
    return "defillama"


class _Api:
    """The handlers, over indexes built once from the dataset (clock applied at load)."""

    def __init__(self, ds: Dataset, universe: Universe) -> None:
        self.ds = ds
        self.now_ms = ds.as_of_end_ms
        self.day0_ms = self.now_ms + 1 - DAY_MS  # 00:00 UTC of the as-of day
        self._cache: OrderedDict[Any, Any] = OrderedDict()
        self._cache_lock = threading.Lock()

        spot = ds.ohlcv if ds.ohlcv_delisted is None else pl.concat([ds.ohlcv, ds.ohlcv_delisted], how="diagonal_relaxed")
        ohlcv = (
            spot.with_columns(t=pl.col("date").cast(pl.Date).dt.epoch("ms"))
            .filter(pl.col("t") <= self.day0_ms)
            .sort("symbol", "t")
        )
        self.spot = {
            s: _Candles(d["t"], d["open"], d["high"], d["low"], d["close"], d["volume"])
            for s, d in _packed(ohlcv, "symbol", {"t": "q", "open": "d", "high": "d", "low": "d", "close": "d",
                                                  "volume": "d"}).items()
        }
        self.spot_ids = {s.replace("/", ""): s for s in self.spot}
        turnover = ohlcv.group_by("t").agg((pl.col("close") * pl.col("volume")).sum().alias("usd"))
        self.turnover = dict(zip(turnover["t"].to_list(), turnover["usd"].to_list(), strict=True))

        funding = (
            ds.funding.with_columns(t=pl.col("ts").dt.epoch("ms"))
            .filter(pl.col("t") <= self.now_ms)
            .sort("symbol", "t")
        )
        self.perps: dict[str, _Perp] = {}
        for symbol, d in _packed(funding, "symbol", {"t": "q", "funding_rate": "d", "mark_price": None}).items():
            pair, _, settle = symbol.partition(":")
            base, _, quote = pair.partition("/")
            perp_id = base + quote
            self.perps[perp_id] = _Perp(
                symbol, perp_id, base, quote, settle or quote,
                _Funding(d["t"], d["funding_rate"], d["mark_price"]),
                self._underlying(base, quote),
            )

        self.chain_names = {t.defillama_chain.lower(): t for t in universe.tokens if t.defillama_chain}
        chains = ds.chain_tvl.filter(pl.col("date") <= ds.as_of).sort("chain", "date")
        self.chains = _packed(chains.with_columns(s=pl.col("date").dt.epoch("s")), "chain", {"s": None, "tvl_usd": None})
        self.total_tvl = None
        if ds.total_tvl is not None:
            total = ds.total_tvl.filter(pl.col("date") <= ds.as_of).sort("date")
            self.total_tvl = {"s": total["date"].dt.epoch("s").to_list(), "tvl_usd": total["tvl_usd"].to_list()}
        self.protocols: dict[str, dict[str, list]] = {}
        if ds.protocol_tvl is not None:
            protocols = ds.protocol_tvl.filter(pl.col("date") <= ds.as_of).sort("protocol", "date")
            self.protocols = _packed(
                protocols.with_columns(s=pl.col("date").dt.epoch("s")), "protocol", {"s": None, "tvl_usd": None}
            )
        self.protocol_tokens = {t.defillama: t for t in universe.tokens if t.defillama}

        dom = (
            ds.dominance.with_columns(t=pl.col("date").cast(pl.Date).dt.epoch("ms"))
            .filter(pl.col("t") <= self.day0_ms)
            .sort("t")
        )
        self.dom_t: list[int] = dom["t"].to_list()
        self.dom_pct: list[float] = dom["btc_dominance_pct"].to_list()
        self.dom_total: list[float] = dom["total_market_cap_usd"].to_list()
        self.coins = {t.coingecko: t.spot for t in universe.tokens if t.spot in self.spot}
        self.snapshots = _snapshots(ds.market_caps, ds.as_of)
        self.categories: dict[str, list[str]] = {}
        if ds.coin_categories is not None:
            for cid, names in ds.coin_categories.group_by("coingecko_id", maintain_order=True).agg("category").iter_rows():
                self.categories[cid] = [c for c in names if c]

        self._exact: dict[str, Callable[[dict[str, str]], _Response]] = {
            "/api/v3/exchangeInfo": self.binance_spot_info,
            "/api/v3/klines": lambda q: self.binance_klines(q, perp=False),
            "/fapi/v1/exchangeInfo": self.binance_usdm_info,
            "/fapi/v1/klines": lambda q: self.binance_klines(q, perp=True),
            "/fapi/v1/fundingRate": self.binance_funding,
            "/fapi/v1/fundingInfo": self.binance_funding_info,
            "/v5/market/instruments-info": self.bybit_instruments,
            "/v5/market/kline": self.bybit_kline,
            "/v5/market/funding/history": self.bybit_funding,
            "/v2/historicalChainTvl": self.llama_total_tvl,
            "/v2/chains": self.llama_chains,
            "/protocols": self.llama_protocols,
            "/api/v3/global": self.gecko_global,
            "/api/v3/coins/markets": self.gecko_markets,
            "/api/v3/global/market_cap_chart": self.gecko_market_cap_chart,
            "/v1/cryptocurrency/listings/historical": self.cmc_historical,
            "/v1/cryptocurrency/listings/latest": self.cmc_latest,
        }
        self._patterns: list[tuple[re.Pattern[str], Callable[..., _Response]]] = [
            (re.compile(r"^/v2/historicalChainTvl/([^/]+)$"), self.llama_chain_tvl),
            (re.compile(r"^/protocol/([^/]+)$"), self.llama_protocol),
            (re.compile(r"^/api/v3/coins/([^/]+)/market_chart$"), self.gecko_market_chart),
            (re.compile(r"^/api/v3/coins/([^/]+)$"), self.gecko_coin),
        ]

    def _underlying(self, base: str, quote: str) -> _Candles | None:
        if f"{base}/{quote}" in self.spot:
            return self.spot[f"{base}/{quote}"]
        m = _MULTIPLIED.match(base)
        if m and f"{m[2]}/{quote}" in self.spot:
            return self.spot[f"{m[2]}/{quote}"].scaled(int(m[1]))
        return None

    def _cached(self, key: Any, build: Callable[[], Any]) -> Any:
        """Build once per key while it is among the CACHE_ENTRIES most recently used; a race only
        builds twice, the results are equal."""
        with self._cache_lock:
            value = self._cache.get(key)
            if value is not None:
                self._cache.move_to_end(key)
                return value
        value = build()
        with self._cache_lock:
            self._cache[key] = value
            while len(self._cache) > CACHE_ENTRIES:
                self._cache.popitem(last=False)
        return value

    def handle(self, path: str, query: dict[str, str]) -> _Response:
        try:
            handler = self._exact.get(path)
            if handler is not None:
                return handler(query)
            for pattern, handler in self._patterns:
                m = pattern.match(path)
                if m:
                    return handler(query, *(unquote(g) for g in m.groups()))
            return _Response(404, _dumps({"error": f"not served by the replay: {path}"}))
        except _ClientError as err:
            return _Response(err.status, _dumps(err.payload))

    # ------------------------------------------------------------ parameters and errors

    @staticmethod
    def _int(q: dict[str, str], name: str, bad: Callable[[str], _ClientError]) -> int | None:
        raw = q.get(name)
        if raw is None or raw == "":
            return None
        try:
            return int(raw)
        except ValueError:
            raise bad(name) from None

    @staticmethod
    def _binance_error(code: int, msg: str) -> _ClientError:
        return _ClientError(400, {"code": code, "msg": msg})

    def _binance_bad(self, name: str) -> _ClientError:
        return self._binance_error(
            -1100, f"Illegal characters found in parameter '{name}'; legal range is '^[0-9]{{1,20}}$'.")

    def _bybit_error(self, msg: str, code: int = 10001) -> _ClientError:
        """Bybit answers HTTP 200 and puts the error in retCode."""
        return _ClientError(200, {"retCode": code, "retMsg": msg, "result": {}, "retExtInfo": {}, "time": self.now_ms})

    def _bybit_bad(self, name: str) -> _ClientError:
        return self._bybit_error(f"params error: {name} invalid")

    @staticmethod
    def _gecko_bad(name: str) -> _ClientError:
        return _ClientError(400, {"error": f"invalid {name}"})

    def _bybit_ok(self, result: dict[str, Any], rows: list[str] | None = None) -> _Response:
        """Bybit's envelope; `rows` (pre-serialized, newest first) become `result.list`."""
        if rows is None:
            return _Response(200, _dumps({"retCode": 0, "retMsg": "OK", "result": result, "retExtInfo": {},
                                          "time": self.now_ms}))
        head = json.dumps(result, separators=(",", ":"))[1:-1]
        body = (f'{{"retCode":0,"retMsg":"OK","result":{{{head},"list":{_join(rows)}}},'
                f'"retExtInfo":{{}},"time":{self.now_ms}}}')
        return _Response(200, body.encode())

    # ------------------------------------------------------------ Binance

    def _trading(self, last_ms: int) -> bool:
        """Trading iff the series reaches the as-of day; an earlier end looks like a delisting."""
        return last_ms >= self.day0_ms

    @staticmethod
    def _binance_filters(exp: int, notional: dict[str, Any]) -> list[dict[str, Any]]:
        tick = _bn(10.0**exp)
        lot = {"minQty": "0.00001000", "maxQty": "9000000000.00000000", "stepSize": "0.00001000"}
        return [
            {"filterType": "PRICE_FILTER", "minPrice": tick, "maxPrice": "1000000.00000000", "tickSize": tick},
            {"filterType": "LOT_SIZE", **lot},
            {"filterType": "MARKET_LOT_SIZE", **lot},
            notional,
        ]

    def binance_spot_info(self, q: dict[str, str]) -> _Response:
        def build() -> bytes:
            symbols = []
            for symbol, c in self.spot.items():
                base, quote = symbol.split("/")
                symbols.append({
                    "symbol": base + quote, "status": "TRADING" if self._trading(c.t[-1]) else "BREAK",
                    "baseAsset": base, "baseAssetPrecision": 8, "quoteAsset": quote, "quotePrecision": 8,
                    "quoteAssetPrecision": 8, "baseCommissionPrecision": 8, "quoteCommissionPrecision": 8,
                    "orderTypes": ["LIMIT", "LIMIT_MAKER", "MARKET", "STOP_LOSS_LIMIT", "TAKE_PROFIT_LIMIT"],
                    "icebergAllowed": True, "ocoAllowed": True, "otoAllowed": True,
                    "quoteOrderQtyMarketAllowed": True, "allowTrailingStop": True, "cancelReplaceAllowed": True,
                    "isSpotTradingAllowed": True, "isMarginTradingAllowed": False,
                    "filters": self._binance_filters(_tick_exp(c.c[-1]), {
                        "filterType": "NOTIONAL", "minNotional": "5.00000000", "applyMinToMarket": True,
                        "maxNotional": "9000000.00000000", "applyMaxToMarket": False, "avgPriceMins": 5}),
                    "permissions": [], "permissionSets": [["SPOT"]],
                    "defaultSelfTradePreventionMode": "EXPIRE_MAKER",
                    "allowedSelfTradePreventionModes": ["EXPIRE_TAKER", "EXPIRE_MAKER", "EXPIRE_BOTH"],
                })
            return _dumps({"timezone": "UTC", "serverTime": self.now_ms, "rateLimits": _BINANCE_RATE_LIMITS,
                           "exchangeFilters": [], "symbols": symbols})
        return _Response(200, self._cached("binance_spot_info", build))

    def binance_usdm_info(self, q: dict[str, str]) -> _Response:
        def build() -> bytes:
            symbols = []
            for p in self.perps.values():
                exp = _tick_exp(p.candles.c[-1] if p.candles else (p.funding.mark[-1] or 1.0))
                symbols.append({
                    "symbol": p.id, "pair": p.id, "contractType": "PERPETUAL",
                    "deliveryDate": _PERP_DELIVERY_MS, "onboardDate": p.funding.t[0],
                    "status": "TRADING" if self._trading(p.funding.t[-1]) else "SETTLING",
                    "maintMarginPercent": "2.5000", "requiredMarginPercent": "5.0000",
                    "baseAsset": p.base, "quoteAsset": p.quote, "marginAsset": p.settle,
                    "pricePrecision": -exp, "quantityPrecision": 3, "baseAssetPrecision": 8, "quotePrecision": 8,
                    "underlyingType": "COIN", "underlyingSubType": [], "settlePlan": 0,
                    "triggerProtect": "0.0500", "liquidationFee": "0.012500", "marketTakeBound": "0.05",
                    "maxMoveOrderLimit": 10000,
                    "filters": self._binance_filters(exp, {"filterType": "MIN_NOTIONAL", "notional": "5"}),
                    "orderTypes": ["LIMIT", "MARKET", "STOP", "STOP_MARKET", "TAKE_PROFIT",
                                   "TAKE_PROFIT_MARKET", "TRAILING_STOP_MARKET"],
                    "timeInForce": ["GTC", "IOC", "FOK", "GTX", "GTD"],
                })
            return _dumps({"timezone": "UTC", "serverTime": self.now_ms, "futuresType": "U_MARGINED",
                           "rateLimits": _BINANCE_RATE_LIMITS, "exchangeFilters": [],
                           "assets": [{"asset": "USDT", "marginAvailable": True, "autoAssetExchange": "-10000"}],
                           "symbols": symbols})
        return _Response(200, self._cached("binance_usdm_info", build))

    def _binance_rows(self, key: str, c: _Candles) -> list[str]:
        def build() -> list[str]:
            return _fragments([
                [t, _bn(o), _bn(h), _bn(lo), _bn(cl), _bn(v), t + DAY_MS - 1, _bn(v * cl), 0,
                 "0.00000000", "0.00000000", "0"]
                for t, o, h, lo, cl, v in zip(c.t, c.o, c.h, c.l, c.c, c.v, strict=True)
            ])
        return self._cached(("binance_klines", key), build)

    def binance_klines(self, q: dict[str, str], perp: bool) -> _Response:
        symbol = q.get("symbol")
        if not symbol:
            raise self._binance_error(-1102, "Mandatory parameter 'symbol' was not sent, was empty/null, or malformed.")
        if perp:
            p = self.perps.get(symbol)
            if p is None:
                raise self._binance_error(-1121, "Invalid symbol.")
            candles = p.candles or _Candles([], [], [], [], [], [])
        elif symbol in self.spot_ids:
            candles = self.spot[self.spot_ids[symbol]]
        else:
            raise self._binance_error(-1121, "Invalid symbol.")
        if q.get("interval") != "1d":
            raise self._binance_error(-1120, "Invalid interval.")
        limit = self._int(q, "limit", self._binance_bad) or 500
        limit = max(1, min(limit, 1500 if perp else 1000))
        start = self._int(q, "startTime", self._binance_bad)
        end = self._int(q, "endTime", self._binance_bad)
        rows = self._binance_rows(("fapi:" if perp else "spot:") + symbol, candles)
        window = _window(candles.t, start, end, limit, newest=start is None)
        return _Response(200, _join(rows[window.start:window.stop]).encode())

    def _funding_index(self, symbol: str | None) -> tuple[list[int], list[str]]:
        """Times and Binance rows of one perp, or of all perps merged in time order."""
        def build() -> tuple[list[int], list[str]]:
            perps = [self.perps[symbol]] if symbol else list(self.perps.values())
            keyed = sorted(
                (t, p.id, {"symbol": p.id, "fundingTime": t, "fundingRate": _bn(r), "markPrice": _bn(m)})
                for p in perps
                for t, r, m in zip(p.funding.t, p.funding.rate, p.funding.mark, strict=True)
            )
            return [k[0] for k in keyed], _fragments([k[2] for k in keyed])
        return self._cached(("binance_funding", symbol), build)

    def binance_funding(self, q: dict[str, str]) -> _Response:
        symbol = q.get("symbol") or None
        if symbol is not None and symbol not in self.perps:
            raise self._binance_error(-1121, "Invalid symbol.")
        start = self._int(q, "startTime", self._binance_bad)
        end = self._int(q, "endTime", self._binance_bad)
        limit = self._int(q, "limit", self._binance_bad)
        if limit is None:
            # Binance: default 100, but with neither startTime nor endTime the latest 200.
            limit = 200 if start is None and end is None else 100
        limit = max(1, min(limit, 1000))
        keys, rows = self._funding_index(symbol)
        window = _window(keys, start, end, limit, newest=start is None)
        return _Response(200, _join(rows[window.start:window.stop]).encode())

    def binance_funding_info(self, q: dict[str, str]) -> _Response:
        hours = self.ds.funding_interval_hours
        return _Response(200, _dumps([
            {"symbol": p.id, "adjustedFundingRateCap": "0.02000000", "adjustedFundingRateFloor": "-0.02000000",
             "fundingIntervalHours": hours[p.symbol], "disclaimer": False}
            for p in self.perps.values()
            if hours.get(p.symbol, 8) != 8
        ]))

    # ------------------------------------------------------------ Bybit

    def bybit_instruments(self, q: dict[str, str]) -> _Response:
        category = q.get("category", "")
        if category == "spot":
            items = [self._bybit_spot_item(s, c) for s, c in self.spot.items()]
        elif category == "linear":
            items = [self._bybit_linear_item(p) for p in self.perps.values()]
        elif category in ("inverse", "option"):
            items = []  # the replay has no inverse or option markets
        else:
            raise self._bybit_error("params error: category invalid")
        if q.get("symbol"):
            items = [i for i in items if i["symbol"] == q["symbol"]]
        if q.get("status"):
            items = [i for i in items if i["status"] == q["status"]]
        return self._bybit_ok({"category": category, "list": items, "nextPageCursor": ""})

    def _bybit_spot_item(self, symbol: str, c: _Candles) -> dict[str, Any]:
        base, quote = symbol.split("/")
        return {
            "symbol": base + quote, "baseCoin": base, "quoteCoin": quote, "innovation": "0",
            "status": "Trading" if self._trading(c.t[-1]) else "Closed", "marginTrading": "none", "stTag": "0",
            "lotSizeFilter": {"basePrecision": "0.00001", "quotePrecision": "0.00000001", "minOrderQty": "0.00001",
                              "maxOrderQty": "9000000000", "minOrderAmt": "5", "maxOrderAmt": "2000000"},
            "priceFilter": {"tickSize": _by(10.0 ** _tick_exp(c.c[-1]))},
        }

    def _bybit_linear_item(self, p: _Perp) -> dict[str, Any]:
        exp = _tick_exp(p.candles.c[-1] if p.candles else (p.funding.mark[-1] or 1.0))
        tick = _by(10.0**exp)
        return {
            "symbol": p.id, "contractType": "LinearPerpetual",
            "status": "Trading" if self._trading(p.funding.t[-1]) else "Closed",
            "baseCoin": p.base, "quoteCoin": p.quote, "settleCoin": p.settle,
            "launchTime": str(p.funding.t[0]), "deliveryTime": "0", "deliveryFeeRate": "", "priceScale": str(-exp),
            "leverageFilter": {"minLeverage": "1", "maxLeverage": "100.00", "leverageStep": "0.01"},
            "priceFilter": {"minPrice": tick, "maxPrice": "1999999.8", "tickSize": tick},
            "lotSizeFilter": {"maxOrderQty": "1000000", "minOrderQty": "0.001", "qtyStep": "0.001",
                              "postOnlyMaxOrderQty": "1000000", "maxMktOrderQty": "100000", "minNotionalValue": "5"},
            "unifiedMarginTrade": True,
            "fundingInterval": self.ds.funding_interval_hours.get(p.symbol, 8) * 60,
            "copyTrading": "both", "upperFundingRate": "0.02", "lowerFundingRate": "-0.02",
            "isPreListing": False, "preListingInfo": None,
        }

    def bybit_kline(self, q: dict[str, str]) -> _Response:
        category = q.get("category", "linear")
        symbol = q.get("symbol", "")
        if category == "spot":
            candles = self.spot.get(self.spot_ids.get(symbol, ""))
        elif category == "linear":
            p = self.perps.get(symbol)
            candles = p.candles if p else None
            if p and candles is None:
                candles = _Candles([], [], [], [], [], [])
        else:
            raise self._bybit_error("params error: category invalid")
        if candles is None:
            raise self._bybit_error("Not supported symbols")
        if q.get("interval") != "D":
            raise self._bybit_error("params error: interval invalid (the replay serves D)")
        limit = max(1, min(self._int(q, "limit", self._bybit_bad) or 200, 1000))
        start = self._int(q, "start", self._bybit_bad)
        end = self._int(q, "end", self._bybit_bad)

        def build() -> list[str]:
            return _fragments([[str(t), _by(o), _by(h), _by(lo), _by(cl), _by(v), _by(v * cl)]
                               for t, o, h, lo, cl, v in zip(candles.t, candles.o, candles.h, candles.l, candles.c,
                                                             candles.v, strict=True)])
        rows = self._cached(("bybit_kline", category, symbol), build)
        window = _window(candles.t, start, end, limit, newest=start is None)
        return self._bybit_ok({"symbol": symbol, "category": category}, rows[window.start:window.stop][::-1])

    def bybit_funding(self, q: dict[str, str]) -> _Response:
        if q.get("category") != "linear":
            raise self._bybit_error("params error: category invalid")
        p = self.perps.get(q.get("symbol", ""))
        if p is None:
            raise self._bybit_error("params error: symbol invalid")
        start = self._int(q, "startTime", self._bybit_bad)
        end = self._int(q, "endTime", self._bybit_bad)
        if start is not None and end is None:
            raise self._bybit_error("params error: startTime without endTime is not supported")
        limit = max(1, min(self._int(q, "limit", self._bybit_bad) or 200, 200))

        def build() -> list[str]:
            return _fragments([{"symbol": p.id, "fundingRate": _by(r), "fundingRateTimestamp": str(t)}
                               for t, r in zip(p.funding.t, p.funding.rate, strict=True)])
        rows = self._cached(("bybit_funding", p.id), build)
        window = _window(p.funding.t, start, end, limit, newest=True)
        return self._bybit_ok({"category": "linear"}, rows[window.start:window.stop][::-1])

    # ------------------------------------------------------------ DefiLlama

    @staticmethod
    def _llama_missing(what: str) -> _Response:
        return _Response(404, _dumps({"error": f"{what} is not in the replay dataset"}))

    def llama_total_tvl(self, q: dict[str, str]) -> _Response:
        total = self.total_tvl
        if total is None:
            return self._llama_missing("total chain TVL (total_tvl_1d)")
        return _Response(200, self._cached("llama_total", lambda: _dumps(
            [{"date": s, "tvl": v} for s, v in zip(total["s"], total["tvl_usd"], strict=True)])))

    def llama_chain_tvl(self, q: dict[str, str], chain: str) -> _Response:
        key = chain.lower()
        d = self.chains.get(key)
        if d is None:
            return self._llama_missing(f"chain {chain!r}")
        return _Response(200, self._cached(("llama_chain", key), lambda: _dumps(
            [{"date": s, "tvl": v} for s, v in zip(d["s"], d["tvl_usd"], strict=True)])))

    def llama_chains(self, q: dict[str, str]) -> _Response:
        def build() -> bytes:
            out = []
            for chain, d in self.chains.items():
                token = self.chain_names.get(chain)
                out.append({
                    "gecko_id": token.coingecko if token else None,
                    "tvl": d["tvl_usd"][-1] if d["tvl_usd"] else 0,
                    "tokenSymbol": token.spot.split("/")[0] if token else None,
                    "cmcId": None,
                    "name": token.defillama_chain if token else chain.title(),
                    "chainId": None,
                })
            return _dumps(out)
        return _Response(200, self._cached("llama_chains", build))

    def _protocol_meta(self, slug: str) -> dict[str, Any]:
        token = self.protocol_tokens.get(slug)
        return {
            "name": slug.replace("-", " ").title(), "slug": slug,
            "symbol": token.spot.split("/")[0] if token else "-",
            "category": token.sector if token else None,
            "chains": [], "gecko_id": token.coingecko if token else None,
        }

    def llama_protocols(self, q: dict[str, str]) -> _Response:
        def build() -> bytes:
            out = []
            for i, (slug, d) in enumerate(self.protocols.items()):
                tvl = d["tvl_usd"]

                def change(days: int, tvl: list[float] = tvl) -> float | None:
                    return (tvl[-1] / tvl[-1 - days] - 1) * 100 if len(tvl) > days and tvl[-1 - days] else None
                out.append({"id": str(i + 1), **self._protocol_meta(slug), "tvl": tvl[-1] if tvl else 0,
                            "chainTvls": {}, "change_1h": None, "change_1d": change(1), "change_7d": change(7),
                            "mcap": None})
            return _dumps(out)
        return _Response(200, self._cached("llama_protocols", build))

    def llama_protocol(self, q: dict[str, str], slug: str) -> _Response:
        key = slug.lower()
        d = self.protocols.get(key)
        if d is None:
            return self._llama_missing(f"protocol {slug!r}")
        return _Response(200, self._cached(("llama_protocol", key), lambda: _dumps({
            **self._protocol_meta(key),
            "tvl": [{"date": s, "totalLiquidityUSD": v} for s, v in zip(d["s"], d["tvl_usd"], strict=True)],
            "chainTvls": {}, "currentChainTvls": {},
        })))

    # ------------------------------------------------------------ CoinGecko

    def _gecko_since(self, q: dict[str, str]) -> int | None:
        """First ms served for `days` (N days back from the as-of day, N+1 daily points); None = max."""
        if q.get("vs_currency", "usd").lower() != "usd":
            raise self._gecko_bad("vs_currency (the replay serves usd)")
        days = q.get("days")
        if days is None:
            raise _ClientError(400, {"error": "Missing parameter days"})
        if days == "max":
            return None
        try:
            return self.day0_ms - int(float(days)) * DAY_MS
        except ValueError:
            raise self._gecko_bad("days") from None

    def _btc_caps(self, lo: int = 0) -> list[list[float]]:
        return [[t, pct / 100 * total]
                for t, pct, total in zip(self.dom_t[lo:], self.dom_pct[lo:], self.dom_total[lo:], strict=True)]

    def gecko_global(self, q: dict[str, str]) -> _Response:
        if not self.dom_t:
            return _Response(404, _dumps({"error": "no global market data in the replay dataset"}))
        total, pct, t = self.dom_total[-1], self.dom_pct[-1], self.dom_t[-1]
        change = (total / self.dom_total[-2] - 1) * 100 if len(self.dom_t) > 1 else 0.0
        btc = self.spot.get(self.coins.get("bitcoin", ""))
        btc_price = btc.c[-1] if btc else None
        volume = self.turnover.get(t, 0.0)
        return _Response(200, _dumps({"data": {
            "active_cryptocurrencies": len(self.coins), "upcoming_icos": 0, "ongoing_icos": 0, "ended_icos": 0,
            "markets": len(self.spot),
            "total_market_cap": {"usd": total, **({"btc": total / btc_price} if btc_price else {})},
            "total_volume": {"usd": volume, **({"btc": volume / btc_price} if btc_price else {})},
            "market_cap_percentage": {"btc": pct},
            "market_cap_change_percentage_24h_usd": change,
            "updated_at": (self.now_ms + 1) // 1000 - 60,
        }}))

    def gecko_markets(self, q: dict[str, str]) -> _Response:
        """The newest market-cap snapshot known at the as-of day, by market cap, a page at a time."""
        if q.get("vs_currency", "").lower() != "usd":
            raise self._gecko_bad("vs_currency (the replay serves usd)")
        if q.get("category"):
            raise _ClientError(404, {"error": "category not found (the replay serves no categories)"})
        if q.get("order", "market_cap_desc") != "market_cap_desc":
            raise self._gecko_bad("order (the replay serves market_cap_desc)")
        if not self.snapshots:
            raise _ClientError(404, {"error": "no market caps in the replay dataset"})
        day = max(self.snapshots)
        rows = self._cached(("gecko_markets", day), lambda: sorted(
            (self._gecko_market(row, day) for row in self.snapshots[day]),
            key=lambda r: (r["market_cap"] is None, -(r["market_cap"] or 0), r["market_cap_rank"])))
        wanted = {i.strip() for i in q.get("ids", "").split(",") if i.strip()}
        if wanted:
            rows = [r for r in rows if r["id"] in wanted]
        per_page = max(1, min(self._int(q, "per_page", self._gecko_bad) or 100, 250))
        page = max(1, self._int(q, "page", self._gecko_bad) or 1)
        return _Response(200, _dumps(rows[(page - 1) * per_page: page * per_page]))

    @staticmethod
    def _gecko_market(row: dict[str, Any], day: dt.date) -> dict[str, Any]:
        return {
            "id": row["gecko_id"], "symbol": row["symbol"].lower(), "name": row["name"], "image": None,
            "current_price": row["price_usd"], "market_cap": row["market_cap_usd"], "market_cap_rank": row["rank"],
            "fully_diluted_valuation": None, "total_volume": row["volume_24h_usd"], "high_24h": None, "low_24h": None,
            "price_change_24h": None, "price_change_percentage_24h": None,
            "circulating_supply": row["circulating_supply"], "total_supply": None, "max_supply": None,
            "last_updated": _end_of(day),
        }

    def gecko_coin(self, q: dict[str, str], coin_id: str) -> _Response:
        """A coin's page: its id, symbol, name and `categories` (the dataset's coin_categories, else [])."""
        known = self._cached("gecko_ids", lambda: {
            **{cid: (symbol.split("/")[0].lower(), cid.replace("-", " ").title()) for cid, symbol in self.coins.items()},
            **{cid: ("", cid) for cid in self.categories},
            **{r["gecko_id"]: (r["symbol"].lower(), r["name"]) for day in sorted(self.snapshots) for r in self.snapshots[day]},
        })
        if coin_id not in known:
            raise _ClientError(404, {"error": "coin not found"})
        symbol, name = known[coin_id]
        return _Response(200, _dumps({"id": coin_id, "symbol": symbol, "name": name, "web_slug": coin_id,
                                      "categories": self.categories.get(coin_id, []), "description": {"en": ""}}))

    # ------------------------------------------------------------ CoinMarketCap

    def _cmc_error(self, status: int, code: int, message: str) -> _ClientError:
        return _ClientError(status, {"status": {"timestamp": _iso_ms(self.now_ms), "error_code": code,
                                                "error_message": message, "elapsed": 0, "credit_count": 0}})

    def _cmc_ok(self, items: list[dict[str, Any]]) -> _Response:
        return _Response(200, _dumps({"status": {"timestamp": _iso_ms(self.now_ms), "error_code": 0, "error_message": None,
                                                 "elapsed": 1, "credit_count": 1 + len(items) // 100, "notice": None},
                                      "data": items}))

    def _cmc_items(self, q: dict[str, str], day: dt.date | None) -> list[dict[str, Any]]:
        if q.get("convert", "USD").upper() != "USD":
            raise self._cmc_error(400, 400, '"convert" must be USD in the replay')
        def bad(name: str) -> _ClientError:
            return self._cmc_error(400, 400, f'"{name}" must be a positive integer')
        start = self._int(q, "start", bad) or 1
        limit = self._int(q, "limit", bad) or 100
        if start < 1 or not 1 <= limit <= 5000:
            raise bad("start" if start < 1 else "limit")
        if day is None:
            return []
        rows = self._cached(("cmc_listing", day), lambda: [self._cmc_item(r, day) for r in self.snapshots[day]])
        return rows[start - 1: start - 1 + limit]

    @staticmethod
    def _cmc_item(row: dict[str, Any], day: dt.date) -> dict[str, Any]:
        stamp = _end_of(day)
        return {
            "id": zlib.crc32(row["slug"].encode()), "name": row["name"], "symbol": row["symbol"], "slug": row["slug"],
            "cmc_rank": row["rank"], "num_market_pairs": None, "circulating_supply": row["circulating_supply"],
            "total_supply": None, "max_supply": None, "date_added": None, "tags": [], "platform": None,
            "last_updated": stamp,
            "quote": {"USD": {"price": row["price_usd"], "volume_24h": row["volume_24h_usd"],
                              "market_cap": row["market_cap_usd"], "percent_change_24h": None, "last_updated": stamp}},
        }

    def cmc_historical(self, q: dict[str, str]) -> _Response:
        """The snapshot of exactly `date` (none that day: an empty list, as CMC answers); a date after
        the as-of day is refused as CMC refuses a future date."""
        raw = q.get("date")
        if not raw:
            raise self._cmc_error(400, 400, '"date" is required')
        try:
            day = dt.date.fromisoformat(raw[:10])
        except ValueError:
            raise self._cmc_error(400, 400, f'"date" must be a valid ISO 8601 timestamp or unix time value: {raw}') from None
        if day > self.ds.as_of:
            raise self._cmc_error(400, 400, f'"date" must be in the past: {raw}')
        return self._cmc_ok(self._cmc_items(q, day if day in self.snapshots else None))

    def cmc_latest(self, q: dict[str, str]) -> _Response:
        """The newest snapshot known at the as-of day."""
        return self._cmc_ok(self._cmc_items(q, max(self.snapshots) if self.snapshots else None))

    def gecko_market_chart(self, q: dict[str, str], coin_id: str) -> _Response:
        if coin_id not in self.coins:
            raise _ClientError(404, {"error": "coin not found"})
        since = self._gecko_since(q)

        def build() -> bytes:
            c = self.spot[self.coins[coin_id]]
            lo = 0 if since is None else bisect.bisect_left(c.t, since)
            t, close, vol = c.t[lo:], c.c[lo:], c.v[lo:]
            if coin_id == "bitcoin":
                caps = self._btc_caps(0 if since is None else bisect.bisect_left(self.dom_t, since))
            else:
                caps = [[ms, 0.0] for ms in t]
            return _dumps({
                "prices": [[ms, p] for ms, p in zip(t, close, strict=True)],
                "market_caps": caps,
                "total_volumes": [[ms, p * v] for ms, p, v in zip(t, close, vol, strict=True)],
            })
        return _Response(200, self._cached(("gecko_chart", coin_id, since), build))

    def gecko_market_cap_chart(self, q: dict[str, str]) -> _Response:
        since = self._gecko_since(q)

        def build() -> bytes:
            lo = 0 if since is None else bisect.bisect_left(self.dom_t, since)
            t = self.dom_t[lo:]
            return _dumps({"market_cap_chart": {
                "market_cap": [[ms, v] for ms, v in zip(t, self.dom_total[lo:], strict=True)],
                "volume": [[ms, self.turnover[ms]] for ms in t if ms in self.turnover],
            }})
        return _Response(200, self._cached(("gecko_cap_chart", since), build))


def _end_of(day: dt.date) -> str:
    """The last second of `day` (UTC) as the vendors write times: what a snapshot of that day describes."""
    return f"{day.isoformat()}T23:59:59.000Z"


def _slug(name: str) -> str:
    """CoinMarketCap's kind of slug: the name in lower case, runs of other characters as '-'."""
    return re.sub(r"[^a-z0-9]+", "-", name.strip().lower()).strip("-")


def _snapshots(caps: pl.DataFrame | None, as_of: dt.date) -> dict[dt.date, list[dict[str, Any]]]:
    """The market-cap snapshots known at `as_of` (dated before it: a snapshot describes the end of its
    day), each a list of rows by rank with the coin's CMC slug and CoinGecko id."""
    if caps is None:
        return {}
    known = caps.filter(pl.col("snapshot_date").cast(pl.Date) < as_of).sort("snapshot_date", "rank")
    out: dict[dt.date, list[dict[str, Any]]] = {}
    for row in known.iter_rows(named=True):
        slug = _slug(row["name"])
        row = {**row, "name": row["name"].strip(), "symbol": row["symbol"].strip(), "slug": slug,
               "gecko_id": row.get("coingecko_id") or slug}
        out.setdefault(row["snapshot_date"], []).append(row)
    return out


_BINANCE_RATE_LIMITS = [
    {"rateLimitType": "REQUEST_WEIGHT", "interval": "MINUTE", "intervalNum": 1, "limit": 6000},
    {"rateLimitType": "ORDERS", "interval": "SECOND", "intervalNum": 10, "limit": 100},
    {"rateLimitType": "RAW_REQUESTS", "interval": "MINUTE", "intervalNum": 5, "limit": 61000},
]


# ---------------------------------------------------------------- HTTP


@dataclass(frozen=True)
class RequestRecord:
    method: str
    path: str
    query: dict[str, str]
    status: int


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as ccxt's and requests' sessions expect
    disable_nagle_algorithm = True  # headers and body go out in two writes: no 40 ms delayed-ACK stall
    server: _HTTPServer

    def do_GET(self) -> None:
        self.server.replay._serve(self, "GET")

    def do_POST(self) -> None:
        self.server.replay._serve(self, "POST")

    def do_DELETE(self) -> None:
        self.server.replay._serve(self, "DELETE")

    def log_message(self, format: str, *args: Any) -> None:
        """Silenced: each request is logged once, at DEBUG, by the server."""


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    replay: ReplayServer

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that hung up (e.g. after its own timeout) is expected, not a stack trace."""
        log.debug("connection from %s ended with an error", client_address, exc_info=True)


class ReplayServer:
    """A local server of the real APIs' paths and payloads from `dataset`, up to its as-of day.

    `universe` names the chains, protocols and CoinGecko ids it answers for (default: the user's,
    ROTATION_UNIVERSE or pipeline/universe.yaml). `faults` can be changed while it runs (or through
    `/__replay__/faults` from another process); `requests` records every API request served
    (control requests excluded).
    """

    def __init__(self, dataset: Dataset, host: str = "127.0.0.1", port: int = 0, latency_s: float = 0.0,
                 universe: Universe | None = None) -> None:
        self.dataset = dataset
        self.host = host
        self.port = port
        self.latency_s = latency_s
        self.base_url = ""
        self.faults = FaultPlan()
        self.requests: list[RequestRecord] = []
        self._requests_lock = threading.Lock()
        self._api = _Api(dataset, universe or load_universe(Settings.from_env().universe_path))
        self._httpd: _HTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()

    def start(self) -> str:
        if self._httpd is not None:
            return self.base_url
        self._stopping.clear()
        httpd = _HTTPServer((self.host, self.port), _Handler)
        httpd.replay = self
        self.port = httpd.server_address[1]
        self.base_url = f"http://{self.host}:{self.port}"
        self._httpd = httpd
        self._thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.1},
                                        name=f"replay-{self.port}", daemon=True)
        self._thread.start()
        log.info("replay %r (as of %s) serving at %s", self.dataset.label, self.dataset.as_of, self.base_url)
        return self.base_url

    def stop(self) -> None:
        if self._httpd is None:
            return
        self._stopping.set()  # wakes requests sleeping in a latency/timeout fault
        self._httpd.shutdown()
        self._httpd.server_close()
        if self._thread is not None:
            self._thread.join()
        self._httpd = self._thread = None

    def __enter__(self) -> ReplayServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ------------------------------------------------------------ request path

    def _serve(self, handler: _Handler, method: str) -> None:
        started = time.perf_counter()
        url = urlsplit(handler.path)
        path = url.path
        query = {k: v[-1] for k, v in parse_qs(url.query, keep_blank_values=True).items()}
        length = int(handler.headers.get("Content-Length") or 0)
        body = handler.rfile.read(length) if length else b""  # read even if unused: the connection is kept alive
        if path.startswith(CONTROL_PREFIX):
            self._send(handler, self._control(method, path, body))
            return
        fired = self.faults.draw(path, url.query)
        response = self._respond(method, path, query, fired)
        with self._requests_lock:
            self.requests.append(RequestRecord(method, path, query, response.status))
        delay = self.latency_s + sum(r.delay_s for r in fired if r.kind in ("timeout", "latency"))
        if delay > 0:
            self._stopping.wait(delay)
        self._send(handler, response)
        log.debug("%s %s -> %d%s (%.1f ms)", method, handler.path, response.status,
                  "".join(f" [{r.kind}]" for r in fired), (time.perf_counter() - started) * 1000)

    def _respond(self, method: str, path: str, query: dict[str, str], fired: list[FaultRule]) -> _Response:
        for rule in fired:
            if rule.kind == "429":
                return _Response(429, _dumps(rate_limit_body(family(path), self._api.now_ms)),
                                 {"Retry-After": retry_after_header(rule)})
            if rule.kind == "5xx":
                return _Response(rule.status, gateway_page(rule.status), content_type="text/html")
        if method != "GET":
            return _Response(405, _dumps({"error": f"{method} is not served on {path}"}))
        response = self._api.handle(path, query)
        for rule in fired:
            if rule.kind == "missing_field":
                response.body = drop_field(response.body, rule.field)
            if rule.kind == "duplicate_row":
                response.body = duplicate_last(response.body)
        if any(rule.kind == "truncated_json" for rule in fired):
            response.body = truncate(response.body)
        return response

    def _control(self, method: str, path: str, body: bytes) -> _Response:
        """`/__replay__/info` and `/__replay__/faults`: steer a server running in another process."""
        if path == "/__replay__/info" and method == "GET":
            return _Response(200, _dumps({"label": self.dataset.label, "as_of": self.dataset.as_of.isoformat(),
                                          "first_date": self.dataset.first_date.isoformat(),
                                          "requests": len(self.requests)}))
        if path == "/__replay__/faults":
            if method == "GET":
                return _Response(200, _dumps([asdict(r) for r in self.faults.rules]))
            if method == "DELETE":
                self.faults.clear()
                return _Response(200, _dumps({"faults": 0}))
            if method == "POST":
                try:
                    raw = json.loads(body or b"[]")
                    rules = [FaultRule(**r) for r in (raw if isinstance(raw, list) else [raw])]
                except (ValueError, TypeError) as exc:
                    return _Response(400, _dumps({"error": f"bad fault rules: {exc}"}))
                self.faults.replace(rules)
                return _Response(200, _dumps({"faults": len(rules)}))
        return _Response(404, _dumps({"error": f"no control endpoint {method} {path}"}))

    @staticmethod
    def _send(handler: _Handler, response: _Response) -> None:
        try:
            handler.send_response(response.status)
            handler.send_header("Content-Type", response.content_type)
            handler.send_header("Content-Length", str(len(response.body)))
            for name, value in response.headers.items():
                handler.send_header(name, value)
            handler.end_headers()
            handler.wfile.write(response.body)
        except OSError:  # broken pipe, reset: the client gave up (e.g. its own timeout)
            log.debug("client left before the answer to %s", handler.path)
