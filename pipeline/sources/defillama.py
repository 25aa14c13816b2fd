"""DefiLlama TVL history (no key): all chains, one chain, one protocol.

DefiLlama has no `since` parameter: each call returns the whole series, and the caller keeps
only the days it does not hold yet. The last point may be intraday: it is normalised to its
UTC date (the last point of a day wins).
"""

from __future__ import annotations

import polars as pl

from pipeline.sources.errors import PayloadError
from pipeline.sources.http import JsonClient

LIVE_URL = "https://api.llama.fi"
TVL_SCHEMA = {"date": pl.Date, "tvl_usd": pl.Float64}


class DefiLlama:
    def __init__(self, base_url: str = LIVE_URL, timeout_s: float = 30.0, backoff_s: float = 1.0):
        self.http = JsonClient(base_url, name="defillama", timeout_s=timeout_s, backoff_s=backoff_s)

    def total_tvl(self) -> pl.DataFrame:
        """Daily TVL of all chains (DefiLlama excludes liquid staking and double counting)."""
        path = "/v2/historicalChainTvl"
        return _series(self.http.get_json(path), path, value_key="tvl")

    def chain_tvl(self, chain: str) -> pl.DataFrame:
        path = f"/v2/historicalChainTvl/{chain}"
        return _series(self.http.get_json(path), path, value_key="tvl")

    def protocol_tvl(self, slug: str) -> pl.DataFrame:
        path = f"/protocol/{slug}"
        payload = self.http.get_json(path)
        if not isinstance(payload, dict) or not isinstance(payload.get("tvl"), list):
            raise PayloadError(f"defillama GET {path}", "expected an object with a 'tvl' list")
        return _series(payload["tvl"], path, value_key="totalLiquidityUSD")


def _series(points: object, path: str, value_key: str) -> pl.DataFrame:
    endpoint = f"defillama GET {path}"
    if not isinstance(points, list):
        raise PayloadError(endpoint, f"expected a list of points, got {type(points).__name__}")
    bad = [p for p in points if not isinstance(p, dict) or p.get("date") is None or p.get(value_key) is None]
    if bad:
        raise PayloadError(endpoint, f"{len(bad)} point(s) without 'date'/'{value_key}', first {bad[0]!r}")
    if not points:
        return pl.DataFrame(schema=TVL_SCHEMA)
    return (
        pl.DataFrame(
            {"ts": [int(p["date"]) for p in points], "tvl_usd": [float(p[value_key]) for p in points]}
        )
        .with_columns(pl.from_epoch("ts", time_unit="s").dt.date().alias("date"))
        .sort("ts")
        .unique("date", keep="last", maintain_order=True)
        .select(list(TVL_SCHEMA))
    )
