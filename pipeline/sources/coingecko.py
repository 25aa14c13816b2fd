"""BTC dominance from CoinGecko.

`/global` gives today's true dominance (no history). History needs the paid
`/global/market_cap_chart` (total market cap) together with BTC's own market caps
(`/coins/bitcoin/market_chart`): dominance = BTC market cap / total market cap.
Keyless and demo plans get `NotAvailable` for the history and fall back to daily snapshots.

Market caps: `/coins/markets` is today's ranking only, recorded nightly (`markets`), and a coin's
categories are today's only (`coin_categories`), recorded the night the coin is first seen.
"""

from __future__ import annotations

import datetime as dt

import polars as pl

from pipeline.sources.errors import PayloadError
from pipeline.sources.http import JsonClient
from pipeline.sources.market_caps import float_or_none, market_cap_frame

LIVE_URL = {"demo": "https://api.coingecko.com/api/v3", "pro": "https://pro-api.coingecko.com/api/v3"}
KEY_HEADER = {"demo": "x-cg-demo-api-key", "pro": "x-cg-pro-api-key"}
PER_PAGE = 250  # the most /coins/markets gives per page
COIN_ONLY = {"localization": "false", "tickers": "false", "market_data": "false", "community_data": "false",
             "developer_data": "false"}  # /coins/{id} without the heavy parts
DOMINANCE_SCHEMA = {"date": pl.Date, "btc_dominance_pct": pl.Float64, "total_market_cap_usd": pl.Float64}


class CoinGecko:
    def __init__(
        self,
        base_url: str | None = None,
        api_key: str | None = None,
        plan: str = "demo",
        timeout_s: float = 30.0,
        backoff_s: float = 2.0,
    ):
        headers = {KEY_HEADER[plan]: api_key} if api_key else {}
        self.http = JsonClient(
            base_url or LIVE_URL[plan], name="coingecko", headers=headers, timeout_s=timeout_s, backoff_s=backoff_s
        )

    def global_snapshot(self) -> pl.DataFrame:
        """Today's dominance: one row dated by the snapshot's `updated_at` (UTC)."""
        path = "/global"
        payload = self.http.get_json(path)
        try:
            data = payload["data"]
            pct = float(data["market_cap_percentage"]["btc"])
            total = float(data["total_market_cap"]["usd"])
            updated = dt.datetime.fromtimestamp(int(data["updated_at"]), dt.UTC).date()
        except (KeyError, TypeError, ValueError) as exc:
            raise PayloadError(f"coingecko GET {path}", f"missing or bad field {exc}") from None
        return pl.DataFrame(
            {"date": [updated], "btc_dominance_pct": [pct], "total_market_cap_usd": [total]},
            schema=DOMINANCE_SCHEMA,
        )

    def dominance_history(self, days: int | str) -> pl.DataFrame:
        """Daily dominance for the last `days` days (or "max"); `NotAvailable` without a paid plan."""
        total_path = "/global/market_cap_chart"
        btc_path = "/coins/bitcoin/market_chart"
        total = self.http.get_json(total_path, {"days": days})
        btc = self.http.get_json(btc_path, {"vs_currency": "usd", "days": days, "interval": "daily"})
        try:
            total_caps = total["market_cap_chart"]["market_cap"]
        except (KeyError, TypeError):
            raise PayloadError(f"coingecko GET {total_path}", "missing market_cap_chart.market_cap") from None
        try:
            btc_caps = btc["market_caps"]
        except (KeyError, TypeError):
            raise PayloadError(f"coingecko GET {btc_path}", "missing market_caps") from None
        total_df = _daily(total_caps, "total_market_cap_usd", total_path)
        btc_df = _daily(btc_caps, "btc_market_cap_usd", btc_path)
        return (
            total_df.join(btc_df, on="date", how="inner")
            .with_columns(
                (pl.col("btc_market_cap_usd") / pl.col("total_market_cap_usd") * 100).alias("btc_dominance_pct")
            )
            .select(list(DOMINANCE_SCHEMA))
            .sort("date")
        )

    def markets(self, top_n: int) -> pl.DataFrame:
        """Today's top `top_n` coins by market cap (pages of 250), dated by the UTC day of each coin's
        `last_updated` (a coin without one: the snapshot's newest day); rank = `market_cap_rank`.

        There is deliberately no market-cap history here (`/coins/{id}/market_chart`): ranks rebuilt
        from the histories of today's top coins are survivors by construction, blind to the coins
        that died (the bias a recorded point-in-time ranking removes)."""
        path = "/coins/markets"
        items: list = []
        page = 1
        while len(items) < top_n:
            batch = self.http.get_json(path, {"vs_currency": "usd", "order": "market_cap_desc", "per_page": PER_PAGE,
                                              "page": page, "sparkline": "false"})
            if not isinstance(batch, list):
                raise PayloadError(f"coingecko GET {path}", "expected a list of coins")
            items.extend(batch)
            if len(batch) < PER_PAGE:
                break
            page += 1
        try:
            stamps = [_utc_day(item["last_updated"]) for item in items[:top_n]]
            newest = max((d for d in stamps if d is not None), default=None)
            rows = [{
                "date": day or newest, "coin": item["id"], "symbol": item["symbol"], "name": item["name"],
                "rank": item["market_cap_rank"], "market_cap_usd": float_or_none(item["market_cap"]),
                "price_usd": float_or_none(item["current_price"]), "volume_24h_usd": float_or_none(item["total_volume"]),
                "circulating_supply": float_or_none(item["circulating_supply"]),
            } for item, day in zip(items[:top_n], stamps, strict=True)]
        except (KeyError, TypeError, ValueError) as exc:
            raise PayloadError(f"coingecko GET {path}", f"missing or bad field {exc}") from None
        return market_cap_frame(rows)

    def coin_categories(self, coin_id: str) -> list[str]:
        """The coin's CoinGecko categories today (names, e.g. "Layer 1 (L1)"); `NotAvailable` for an
        unknown id."""
        path = f"/coins/{coin_id}"
        payload = self.http.get_json(path, COIN_ONLY)
        categories = payload.get("categories") if isinstance(payload, dict) else None
        if not isinstance(categories, list):
            raise PayloadError(f"coingecko GET {path}", "missing categories")
        return [c.strip() for c in categories if isinstance(c, str) and c.strip()]


def _utc_day(stamp: str | None) -> dt.date | None:
    """The UTC day of an ISO time such as '2025-08-01T23:59:59.000Z' (None stays None)."""
    if stamp is None:
        return None
    return dt.datetime.fromisoformat(stamp.replace("Z", "+00:00")).astimezone(dt.UTC).date()


def _daily(points: object, name: str, path: str) -> pl.DataFrame:
    if not isinstance(points, list) or any(not isinstance(p, list) or len(p) < 2 or p[1] is None for p in points):
        raise PayloadError(f"coingecko GET {path}", f"{name}: expected [[ms, value], ...]")
    if not points:
        return pl.DataFrame(schema={"date": pl.Date, name: pl.Float64})
    return (
        pl.DataFrame({"ms": [int(p[0]) for p in points], name: [float(p[1]) for p in points]})
        .with_columns(pl.from_epoch("ms", time_unit="ms").dt.date().alias("date"))
        .sort("ms")
        .unique("date", keep="last", maintain_order=True)
        .select("date", name)
    )
