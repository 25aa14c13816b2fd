"""A replay dataset: a folder of Parquet files in the format of `../shared/data/real/`.

Required files (the recorded real history has exactly these):
  ohlcv_1d.parquet          exchange, symbol ('BTC/USDT'), date, open, high, low, close, volume
  funding_8h.parquet        exchange, symbol ('BTC/USDT:USDT'), ts (UTC), funding_rate (per interval), mark_price
  chain_tvl_1d.parquet      date, chain (DefiLlama chain, lower case), tvl_usd
  btc_dominance_1d.parquet  date, btc_dominance_pct (0..100), total_market_cap_usd
Optional files (the synthetic market writes them; a replay without them answers 404 for those series;
a dataset without the market-cap files is an older recording, still valid):
  total_tvl_1d.parquet      date, tvl_usd                      -> /v2/historicalChainTvl
  protocol_tvl_1d.parquet   date, protocol (slug), tvl_usd     -> /protocol/{slug}
  market_caps_monthly.parquet  snapshot_date, rank, symbol, name, market_cap_usd, price_usd,
                            circulating_supply, volume_24h_usd [, coingecko_id]
                            -> CoinMarketCap /v1/cryptocurrency/listings/historical and /latest,
                               CoinGecko /coins/markets; a snapshot dated D describes the end of D,
                               so it is served from D + 1 on. Without `coingecko_id` a coin's
                               CoinGecko id is its CMC-style slug (the name, lower case, runs of
                               other characters as '-')
  coin_categories.parquet   coingecko_id, category             -> CoinGecko /coins/{id} `categories`
  ohlcv_1d_delisted.parquet same columns as ohlcv_1d: pairs the exchange no longer lists, served
                            beside ohlcv_1d's (a symbol in both: ohlcv_1d's, with a warning); a
                            series ending before the as-of day is in exchangeInfo with status BREAK
  dataset.json              {"label": "synthetic", "as_of": "YYYY-MM-DD",
                             "funding_interval_hours": {"SYM/USDT:USDT": 4}, ...}
The as-of day is `dataset.json`'s `as_of`, else the last date present in any file: the replay
never serves anything after the end of that day.
A file holding two rows for one key (a symbol's day, a chain's day, a funding time) is defective:
the replay serves the first and logs a warning naming the file and the keys, rather than let the
defect pass unseen.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl

log = logging.getLogger("pipeline.replay")

REQUIRED = ("ohlcv_1d", "funding_8h", "chain_tvl_1d", "btc_dominance_1d")
OPTIONAL = ("total_tvl_1d", "protocol_tvl_1d", "market_caps_monthly", "coin_categories", "ohlcv_1d_delisted")


class DatasetError(ValueError):
    """The dataset folder is missing a file or a column; the message names which."""


_COLUMNS = {
    "ohlcv_1d": ("exchange", "symbol", "date", "open", "high", "low", "close", "volume"),
    "funding_8h": ("exchange", "symbol", "ts", "funding_rate", "mark_price"),
    "chain_tvl_1d": ("date", "chain", "tvl_usd"),
    "btc_dominance_1d": ("date", "btc_dominance_pct", "total_market_cap_usd"),
    "total_tvl_1d": ("date", "tvl_usd"),
    "protocol_tvl_1d": ("date", "protocol", "tvl_usd"),
    "market_caps_monthly": ("snapshot_date", "rank", "symbol", "name", "market_cap_usd", "price_usd",
                            "circulating_supply", "volume_24h_usd"),
    "coin_categories": ("coingecko_id", "category"),
    "ohlcv_1d_delisted": ("exchange", "symbol", "date", "open", "high", "low", "close", "volume"),
}
# What one row of each file stands for; `date` counts by the day. A symbol's candles are one series
# whatever the exchange column says: the replay serves them for every exchange.
_KEYS = {
    "ohlcv_1d": ("symbol", "date"),
    "funding_8h": ("symbol", "ts"),
    "chain_tvl_1d": ("chain", "date"),
    "btc_dominance_1d": ("date",),
    "total_tvl_1d": ("date",),
    "protocol_tvl_1d": ("protocol", "date"),
    "market_caps_monthly": ("snapshot_date", "symbol", "name"),  # a coin of a snapshot (tickers repeat)
    "coin_categories": ("coingecko_id", "category"),
    "ohlcv_1d_delisted": ("symbol", "date"),
}
SHOWN_KEYS = 5  # repeated keys named in the warning; the rest are counted


@dataclass(frozen=True)
class Dataset:
    path: Path
    label: str
    as_of: dt.date
    ohlcv: pl.DataFrame
    funding: pl.DataFrame
    chain_tvl: pl.DataFrame
    dominance: pl.DataFrame
    total_tvl: pl.DataFrame | None = None
    protocol_tvl: pl.DataFrame | None = None
    market_caps: pl.DataFrame | None = None
    coin_categories: pl.DataFrame | None = None
    ohlcv_delisted: pl.DataFrame | None = None  # symbols ohlcv does not hold
    funding_interval_hours: dict[str, int] = field(default_factory=dict)

    @property
    def as_of_end_ms(self) -> int:
        """Last millisecond of the as-of day: nothing later is ever served."""
        end = dt.datetime.combine(self.as_of + dt.timedelta(days=1), dt.time(), dt.UTC)
        return int(end.timestamp() * 1000) - 1

    @property
    def first_date(self) -> dt.date:
        return min(
            df["date"].min()
            for df in (self.ohlcv, self.chain_tvl, self.dominance)
            if df.height
        )


class ReplayUnreachable(RuntimeError):
    """ROTATION_REPLAY_URL names no replay server that answers."""


@dataclass(frozen=True)
class ReplayInfo:
    """What a run needs to know of the dataset a replay serves: its label and days."""

    label: str
    first_date: dt.date
    as_of: dt.date

    @classmethod
    def of(cls, dataset: Dataset) -> ReplayInfo:
        return cls(dataset.label, dataset.first_date, dataset.as_of)

    @classmethod
    def read(cls, path: str | Path) -> ReplayInfo:
        """From a dataset folder without loading its rows: `dataset.json` (label, as-of day) and the
        dated files' Parquet statistics (first day; the as-of day when the JSON has none)."""
        path = Path(path)
        if not path.is_dir():
            raise DatasetError(f"replay dataset folder not found: {path}")
        spans = []
        for name in ("ohlcv_1d", "chain_tvl_1d", "btc_dominance_1d"):
            file = path / f"{name}.parquet"
            if not file.exists():
                raise DatasetError(f"replay dataset {path}: missing {file.name}")
            day = pl.col("date").cast(pl.Date)
            spans.append(pl.scan_parquet(file).select(day.min().alias("first"), day.max().alias("last")).collect().row(0))
        meta = json.loads((path / "dataset.json").read_text()) if (path / "dataset.json").exists() else {}
        last = max(d for _, d in spans if d is not None)
        as_of = dt.date.fromisoformat(meta["as_of"]) if "as_of" in meta else last
        return cls(meta.get("label", path.name), min(d for d, _ in spans if d is not None), as_of)

    @classmethod
    def ask(cls, url: str) -> ReplayInfo:
        """From a replay server running in another process (its `/__replay__/info`)."""
        import requests

        try:
            response = requests.get(url.rstrip("/") + "/__replay__/info", timeout=10)
            response.raise_for_status()
            info = response.json()
            return cls(info["label"], dt.date.fromisoformat(info["first_date"]), dt.date.fromisoformat(info["as_of"]))
        except (requests.RequestException, ValueError, KeyError) as exc:
            raise ReplayUnreachable(
                f"ROTATION_REPLAY_URL={url}: no replay server answers there ({exc}); start one with "
                "`python -m pipeline.sources.replay --data FOLDER` or unset ROTATION_REPLAY_URL") from exc


def load_dataset(path: str | Path) -> Dataset:
    path = Path(path)
    if not path.is_dir():
        raise DatasetError(f"replay dataset folder not found: {path}")
    frames: dict[str, pl.DataFrame | None] = {}
    for name in REQUIRED + OPTIONAL:
        file = path / f"{name}.parquet"
        if not file.exists():
            if name in REQUIRED:
                raise DatasetError(f"replay dataset {path}: missing {file.name}")
            frames[name] = None
            continue
        df = pl.read_parquet(file)
        missing = [c for c in _COLUMNS[name] if c not in df.columns]
        if missing:
            raise DatasetError(f"replay dataset {file}: missing column(s) {missing}")
        frames[name] = _first_of_each_key(file, df, _KEYS[name])
    funding = frames["funding_8h"].with_columns(pl.col("ts").dt.convert_time_zone("UTC"))
    info = ReplayInfo.read(path)
    meta = json.loads((path / "dataset.json").read_text()) if (path / "dataset.json").exists() else {}
    return Dataset(
        path=path,
        label=info.label,
        as_of=info.as_of,
        ohlcv=frames["ohlcv_1d"],
        funding=funding,
        chain_tvl=frames["chain_tvl_1d"],
        dominance=frames["btc_dominance_1d"],
        total_tvl=frames["total_tvl_1d"],
        protocol_tvl=frames["protocol_tvl_1d"],
        market_caps=frames["market_caps_monthly"],
        coin_categories=frames["coin_categories"],
        ohlcv_delisted=_beside(path, frames["ohlcv_1d"], frames["ohlcv_1d_delisted"]),
        funding_interval_hours={k: int(v) for k, v in meta.get("funding_interval_hours", {}).items()},
    )


def _beside(path: Path, ohlcv: pl.DataFrame, delisted: pl.DataFrame | None) -> pl.DataFrame | None:
    """The delisted pairs' candles minus any symbol ohlcv_1d also holds: a symbol's candles come from
    one file; one in both is defective, served from ohlcv_1d and named in a warning."""
    if delisted is None:
        return None
    both = sorted(set(delisted["symbol"].unique()) & set(ohlcv["symbol"].unique()))
    if both:
        log.warning("replay dataset %s: %d symbol(s) in both ohlcv_1d and ohlcv_1d_delisted: %s; the replay serves "
                    "ohlcv_1d's candles of them", path, len(both), ", ".join(both[:SHOWN_KEYS]) +
                    (f" and {len(both) - SHOWN_KEYS} more" if len(both) > SHOWN_KEYS else ""))
    return delisted.filter(~pl.col("symbol").is_in(both))


def _first_of_each_key(file: Path, frame: pl.DataFrame, key: tuple[str, ...]) -> pl.DataFrame:
    """The file's rows with the first of each key kept; keys held more than once are logged as a
    warning naming the file, the keys (the first few, then how many more) and their rows."""
    keys = frame.select(pl.col(c).cast(pl.Date) if c == "date" else pl.col(c) for c in key)
    first = keys.select(pl.struct(key).is_first_distinct()).to_series()
    if first.all():
        return frame
    repeated = keys.filter(keys.is_duplicated()).group_by(list(key)).len().sort(list(key))
    named = ", ".join(" ".join(map(str, row[:-1])) + f" ({row[-1]} rows)" for row in repeated.head(SHOWN_KEYS).iter_rows())
    more = f" and {repeated.height - SHOWN_KEYS} more" if repeated.height > SHOWN_KEYS else ""
    log.warning("replay dataset %s: %d (%s) key(s) on more than one row: %s%s; the replay serves the first row of each",
                file, repeated.height, ", ".join(key), named, more)
    return frame.filter(first)
