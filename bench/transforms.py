"""Analytics benchmark (P1): the Polars chain (`compute_marts`) on a synthetic 1,000-symbol x
2,000-day market read from DuckDB, against a plain pandas version of the same math and against a
bare scan + group-by of the same candle rows, all timed in this process.

The chain and the two scans run in turn, round after round, and each ratio is the median of its
rounds: on a shared 2-core machine a run's speed swings by a third from minute to minute, and
interleaving puts every pair of numbers under the same load.

Goals: pandas / polars >= 10x; polars / bare scan <= 3x, where the bare scan is the chain's own
path with nothing in it (DuckDB scans the rows into Polars, Polars groups them by symbol); peak RSS
of one chain run in its own process <= 1 GiB. DuckDB's in-engine group-by, whose rows never leave
DuckDB, is printed beside it for reference. Exits non-zero only when the pandas reference
disagrees with the Polars marts, never on a timing. `--quick`: 60 symbols x 1,000 days, one round,
the same equality check.
"""

from __future__ import annotations

import argparse
import datetime as dt
import math
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import polars as pl

from pipeline.transforms import ENGINE
from pipeline.transforms.altseason import altseason
from pipeline.transforms.chain import (
    CHAIN_MARTS, MEMBER_COLUMNS, RawFrames, btc_funding, compute_marts,
)
from pipeline.transforms.config import AnalyticsConfig, without_market_caps
from pipeline.transforms.funding_costs import funding_costs
from pipeline.transforms.market_regime import EVIDENCE, market_features, market_regime
from pipeline.transforms.membership import membership
from pipeline.transforms.relative_strength import MOMENTUM_DAYS, relative_strength
from pipeline.transforms.sector_index import sector_assignments, sector_days, sector_index

FIRST_DAY = dt.date(2019, 1, 1)
SEED = 20_260_101
SECTORS = ("Core", "Layer-1", "Layer-2", "DeFi", "Infrastructure", "AI", "Gaming", "Memes")
# interval_hours as stored (None: unknown); T0030 settled every 8h until halfway, then every 4h.
PERP_TOKENS = {"BTC": 8, "ETH": 8, "T0010": 8, "T0020": 4, "T0030": 4, "T0040": None}
MOVED_TO_4H = "T0030"
MISSING_SETTLEMENTS = 0.01  # share of funding rows left out, as if quarantined
CHAINS = ("ethereum", "solana", "bsc", "arbitrum", "avalanche")
RTOL = 1e-9  # pandas vs Polars floats: |a - b| / max(|a|, 1) at most this
GOAL_PANDAS_RATIO, GOAL_SCAN_RATIO, GOAL_RSS_BYTES = 10.0, 3.0, 1 << 30


@dataclass(frozen=True)
class Sizes:
    symbols: int
    days: int  # > 900: chains launch up to 900 days in
    rounds: int  # interleaved timing rounds (after one warm-up)
    pandas_runs: int
    step_runs: int


FULL = Sizes(symbols=1_000, days=2_000, rounds=9, pandas_runs=2, step_runs=3)
# Every mart and both comparisons on a market small enough for seconds; its timings mean nothing.
QUICK = Sizes(symbols=60, days=1_000, rounds=1, pandas_runs=1, step_runs=1)


# --- the synthetic market ------------------------------------------------------------------------


@dataclass(frozen=True)
class Market:
    """Everything the chain reads besides the candles (which live in DuckDB): small, kept in memory."""

    tokens: pl.DataFrame  # token, symbol, sector, bucket, perp, as `Universe.frame()`
    funding: pl.DataFrame  # exchange, symbol, funding_time (UTC), funding_rate, interval_hours
    defi_tvl: pl.DataFrame  # scope, name, date, tvl_usd
    btc_dominance: pl.DataFrame  # date, btc_dominance_pct

    def save(self, folder: Path) -> None:
        for name, frame in vars(self).items():
            frame.write_parquet(folder / f"{name}.parquet")

    @classmethod
    def load(cls, folder: Path) -> Market:
        return cls(**{name: pl.read_parquet(folder / f"{name}.parquet") for name in cls.__dataclass_fields__})

    def to_pandas(self) -> dict[str, pd.DataFrame]:
        dates_as_datetimes = pl.col(pl.Date).cast(pl.Datetime("us"))  # pandas' rolling and date arithmetic want these
        return {name: frame.with_columns(dates_as_datetimes).to_pandas() for name, frame in vars(self).items()}


def synthetic_market(rng: np.random.Generator, n_symbols: int, n_days: int) -> tuple[pl.DataFrame, Market]:
    """Candles (symbol, date, close, volume) and the rest of a factor market: each token = market +
    its sector + its own noise. Some tokens list late, delist early, pause (stale gaps), miss single
    days, or trade too little to be members."""
    names = ["BTC", "ETH", "USDC", "WBTC", *[f"T{i:04d}" for i in range(4, n_symbols)]]
    sectors = np.array(["Core"] * 4 + [SECTORS[1 + i % (len(SECTORS) - 1)] for i in range(4, n_symbols)])
    buckets = np.where(np.arange(n_symbols) < 4, "core", np.where(rng.random(n_symbols) < 0.4, "mid", "speculative"))
    tokens = pl.DataFrame(
        {
            "token": names,
            "symbol": [f"{n}/USDT" for n in names],
            "sector": sectors,
            "bucket": buckets,
            "perp": [f"{n}/USDT:USDT" if n in PERP_TOKENS else None for n in names],
        },
        schema={"token": pl.String, "symbol": pl.String, "sector": pl.String, "bucket": pl.String, "perp": pl.String},
    )

    # Prices: daily log returns = beta * market + sector factor + idiosyncratic noise.
    sector_of = np.array([SECTORS.index(s) for s in sectors])
    market = rng.normal(0.0005, 0.035, n_days)
    sector_factor = rng.normal(0.0, 0.02, (n_days, len(SECTORS)))
    beta = rng.uniform(0.6, 1.6, n_symbols)
    noise = rng.normal(0.0, 1.0, (n_days, n_symbols)) * rng.uniform(0.01, 0.06, n_symbols)
    log_ret = market[:, None] * beta + sector_factor[:, sector_of] + noise
    log_ret[:, :4] = market[:, None] * [1.0, 1.2, 0.0, 1.0] + noise[:, :4] * [0.0, 0.3, 0.002, 0.05]
    close = np.exp(rng.normal(0.0, 2.0, n_symbols) + np.cumsum(log_ret, axis=0))
    # Dollar volume: a per-token level (a sixth of tokens sit below the $1M membership bar) x daily noise.
    dollar_volume = np.exp(rng.normal(np.log(6e6), 1.6, n_symbols) + rng.normal(0.0, 0.6, (n_days, n_symbols)))
    dollar_volume[:, :4] *= 1_000.0
    volume = dollar_volume / close

    # Which (day, token) candles exist: late listings, early delistings, stale pauses, missing days.
    traded = np.ones((n_days, n_symbols), dtype=bool)
    late = rng.random(n_symbols) < 0.3
    start = np.where(late, rng.integers(1, n_days - 300, n_symbols), 0)
    delisted = rng.random(n_symbols) < 0.1
    end = np.where(delisted, start + rng.integers(120, n_days, n_symbols), n_days).clip(max=n_days)
    day = np.arange(n_days)[:, None]
    traded &= (day >= start) & (day < end)
    for sym in np.flatnonzero(rng.random(n_symbols) < 0.08):  # pauses of 2..10 missing days
        for _ in range(rng.integers(1, 4)):
            first = rng.integers(0, n_days - 12)
            traded[first : first + rng.integers(2, 11), sym] = False
    traded &= rng.random((n_days, n_symbols)) > 0.002  # the odd single missing candle
    traded[:, :2] = True  # BTC and ETH trade every day

    syms, days = np.nonzero(traded.T)  # symbol-major order
    dates = np.datetime64(FIRST_DAY, "D") + days
    candles = pl.DataFrame(
        {
            "symbol": tokens["symbol"].gather(syms),
            "date": dates,
            "close": close[days, syms],
            "volume": volume[days, syms],
        }
    )

    all_dates = np.datetime64(FIRST_DAY, "D") + np.arange(n_days)
    funding_parts = []
    for i, (name, interval) in enumerate(PERP_TOKENS.items()):
        listed = 0 if i < 2 else int(rng.integers(0, 600))
        start, switch = np.datetime64(FIRST_DAY, "h"), (n_days // 2) * 24
        if name == MOVED_TO_4H:
            times = start + np.concatenate([np.arange(listed * 24, switch, 8), np.arange(switch, n_days * 24, 4)])
        else:
            times = start + np.arange(listed * 24, n_days * 24, interval or 8)
        times = times[rng.random(len(times)) >= MISSING_SETTLEMENTS]
        rate = 0.0001 + np.cumsum(rng.normal(0.0, 0.00004, len(times))) * 0.05 + rng.normal(0.0, 0.0002, len(times))
        funding_parts.append(
            pl.DataFrame(
                {
                    "exchange": "binanceusdm",
                    "symbol": f"{name}/USDT:USDT",
                    "funding_time": times.astype("datetime64[us]"),
                    "funding_rate": rate,
                    "interval_hours": interval,
                },
                schema_overrides={"interval_hours": pl.Int32},
            ).with_columns(pl.col("funding_time").dt.replace_time_zone("UTC"))
        )
    tvl_parts = []
    for i, chain in enumerate(CHAINS):
        launch = 0 if i < 2 else int(rng.integers(100, 900))
        keep = rng.random(n_days - launch) > 0.01  # DefiLlama misses a day now and then
        level = 1e9 * np.exp(np.cumsum(rng.normal(0.001, 0.03, n_days - launch)))
        tvl_parts.append(
            pl.DataFrame({"scope": "chain", "name": chain, "date": all_dates[launch:][keep], "tvl_usd": level[keep]})
        )
    dominance = 55.0 + 10.0 * np.sin(np.arange(n_days) / 200.0) + np.cumsum(rng.normal(0.0, 0.1, n_days))
    return candles, Market(
        tokens=tokens,
        funding=pl.concat(funding_parts),
        defi_tvl=pl.concat(tvl_parts),
        btc_dominance=pl.DataFrame({"date": all_dates[20:], "btc_dominance_pct": dominance[20:]}),
    )


def write_candles(db: Path, candles: pl.DataFrame) -> None:
    """The candles as a table stored in (symbol, date) order, the order `Warehouse.read` returns them in."""
    con = duckdb.connect(str(db))
    con.register("candles_arrow", candles.to_arrow())
    con.execute("begin")
    con.execute("create table candles (symbol varchar not null, date date not null, close double, volume double)")
    con.execute("insert into candles select * from candles_arrow order by symbol, date")
    con.execute("commit")
    con.close()


CANDLES_SQL = "select symbol, date, close, volume from candles"


# --- a. the Polars chain ---------------------------------------------------------------------------


def polars_chain(db: Path, market: Market, cfg: AnalyticsConfig) -> dict[str, pl.DataFrame]:
    with duckdb.connect(str(db), read_only=True) as con:
        candles = con.sql(CANDLES_SQL).pl()
    raw = RawFrames(ohlcv=candles, funding=market.funding, defi_tvl=market.defi_tvl, btc_dominance=market.btc_dominance)
    return compute_marts(raw, market.tokens, cfg)


def polars_steps(db: Path, market: Market, cfg: AnalyticsConfig, runs: int) -> dict[str, float]:
    """The chain's steps one at a time, as `compute_marts` collects them (each best of `runs`)."""
    seconds: dict[str, float] = {}

    def timed(step: str, fn: Callable[[], pl.DataFrame]) -> pl.DataFrame:
        seconds[step], out = best_of(runs, fn)
        return out

    def read() -> pl.DataFrame:
        with duckdb.connect(str(db), read_only=True) as con:
            return con.sql(CANDLES_SQL).pl()

    si = cfg.sector_index
    candles = timed("read candles (duckdb -> polars)", read)
    members = timed(
        "membership",
        lambda: membership(candles, market.tokens["symbol"], cfg.membership)
        .select(*MEMBER_COLUMNS)
        .collect(engine=ENGINE),
    ).lazy()
    assignments = sector_assignments(market.tokens, si)
    days, season, costs = timed(
        "sector days + altseason + funding",
        lambda: pl.collect_all(
            [
                sector_days(members, assignments),
                altseason(members, market.tokens, cfg.altseason, si),
                funding_costs(market.funding),
            ],
            engine=ENGINE,
        ),
    )
    index = timed(
        "sector_index (from the days)",
        lambda: sector_index(members, assignments, si, days).collect(engine=ENGINE),
    )
    rs = timed(
        "relative_strength",
        lambda: relative_strength(index.lazy(), si.btc, cfg.relative_strength).collect(engine=ENGINE),
    )
    timed(
        "market_regime",
        lambda: market_regime(
            market_features(
                btc_level=index.lazy().filter(
                    (pl.col("sector") == si.btc) & (pl.col("weighting") == cfg.relative_strength.weighting)
                ),
                dominance=market.btc_dominance.lazy(),
                altseason=season.lazy(),
                relative_strength=rs.lazy(),
                tvl=market.defi_tvl.lazy(),
                btc_funding=btc_funding(costs.lazy(), market.tokens, si.btc),
                alts_sector=si.alts,
                cfg=cfg.regime,
            ),
            cfg.regime,
        ).collect(engine=ENGINE),
    )
    return seconds


# --- b. the pandas reference -----------------------------------------------------------------------
# The same math written the way a pandas user would: groupby / transform / rolling / merge.

GROUP = ["sector", "date"]


def pd_membership(candles: pd.DataFrame, tokens: pd.DataFrame, cfg) -> pd.DataFrame:
    c = candles.merge(tokens[["symbol"]], on="symbol")
    c["dollar_volume_usd"] = c["close"] * c["volume"]
    c = c[["symbol", "date", "close", "dollar_volume_usd"]].sort_values(["symbol", "date"], ignore_index=True)
    by_symbol = c.groupby("symbol", sort=False)
    gap = (c["date"] - by_symbol["date"].shift(1)).dt.days
    new_spell = gap.isna() | (gap > cfg.stale_after_days)
    c["spell"] = new_spell.astype(int).groupby(c["symbol"]).cumsum()
    c["ret_1d"] = (c["close"] / by_symbol["close"].shift(1) - 1).where(~new_spell)
    c["history_days"] = (c["date"] - by_symbol["date"].transform("min")).dt.days + 1
    # Rows are already in (symbol, date) order, the order groupby-rolling returns them in.
    adv = c.groupby("symbol", sort=False).rolling(f"{cfg.dollar_volume_window_days}D", on="date")["dollar_volume_usd"]
    c["adv_usd"] = adv.mean().to_numpy()
    c["eligible"] = (c["history_days"] >= cfg.min_history_days) & (c["adv_usd"] >= cfg.min_dollar_volume_usd)
    was_eligible = c.groupby("symbol")["eligible"].shift(1).fillna(False).astype(bool)
    c["in_return"] = was_eligible & ~new_spell
    adv_prev = c.groupby("symbol")["adv_usd"].shift(1)
    month = c["date"].dt.to_period("M")
    c["score_usd"] = adv_prev.where(c["in_return"]).groupby([c["symbol"], c["spell"], month]).transform("first")
    # Growth since the weight was set: holdings are runs of in_return rows within a month.
    prev_close = by_symbol["close"].shift(1)
    prev_in_return = c.groupby("symbol")["in_return"].shift(1).fillna(False).astype(bool)
    starts = c["in_return"] & (~prev_in_return | (month != by_symbol["date"].shift(1).dt.to_period("M")))
    holding = starts.cumsum()
    c["growth"] = (prev_close / prev_close.groupby(holding).transform("first")).where(c["in_return"])
    c["held_since"] = c["date"].groupby(holding).transform("first").where(c["in_return"])
    c["status"] = np.select(
        [c["history_days"] < cfg.min_history_days, c["adv_usd"] < cfg.min_dollar_volume_usd],
        ["too_young", "low_volume"],
        "member",
    )
    return c


def pd_assignments(tokens: pd.DataFrame, cfg) -> pd.DataFrame:
    own = tokens[["symbol", "sector"]]
    btc_eth = tokens[tokens["token"].isin([cfg.btc, cfg.eth])][["symbol", "token"]].rename(columns={"token": "sector"})
    alts = tokens[~tokens["token"].isin([cfg.btc, cfg.eth, *cfg.excluded_tokens])][["symbol"]].assign(sector=cfg.alts)
    return pd.concat([own, btc_eth, alts], ignore_index=True).drop_duplicates()


def pd_capped_weights(frame: pd.DataFrame, max_weight: float) -> pd.Series:
    keys = [frame["sector"], frame["date"]]
    size = frame["score_usd"].fillna(0.0).clip(lower=1e-12)
    cap = np.maximum(max_weight, 1.0 / size.groupby(keys).transform("size"))
    weight = size / size.groupby(keys).transform("sum")
    pinned = pd.Series(False, index=frame.index)
    for _ in range(math.floor(1 / max_weight) + 1):
        pinned = pinned | (weight > cap * (1 + 1e-9))
        free = size.where(~pinned, 0.0)
        n_pinned = pinned.groupby(keys).transform("sum")
        weight = cap.where(pinned, free * (1 - cap * n_pinned) / free.groupby(keys).transform("sum"))
    return weight


def pd_sector_index(members: pd.DataFrame, tokens: pd.DataFrame, cfg) -> pd.DataFrame:
    rows = members.merge(pd_assignments(tokens, cfg), on="symbol")
    counted = rows.groupby(GROUP, as_index=False).agg(n_constituents=("eligible", "sum"))
    returning = rows[rows["in_return"] & rows["ret_1d"].notna()].copy()
    # Capped targets as set on the holding's first day, on the scale of the sizes.
    size = returning["score_usd"].fillna(0.0).clip(lower=1e-12)
    day_total = size.groupby([returning["sector"], returning["date"]]).transform("sum")
    set_on_day = returning[["sector", "symbol", "date"]].assign(
        _target=pd_capped_weights(returning, cfg.max_weight) * day_total
    ).rename(columns={"date": "held_since"})
    held = returning[["sector", "symbol", "held_since"]].merge(set_on_day, how="left")
    targets = {"equal": pd.Series(1.0, index=returning.index), "capped": held["_target"].set_axis(returning.index)}
    weights = {}
    for weighting, target in targets.items():  # drifted with the price since the month's rebalance
        drifted = target * returning["growth"]
        weights[weighting] = drifted / drifted.groupby([returning["sector"], returning["date"]]).transform("sum")
    spans = counted[counted["n_constituents"] > 0].groupby("sector")["date"].min().to_frame("first")
    spans["last"] = counted.groupby("sector")["date"].max()
    calendar = pd.concat(
        [pd.DataFrame({"sector": sector, "date": pd.date_range(s["first"], s["last"], freq="D")})
         for sector, s in spans.iterrows()],
        ignore_index=True,
    )
    parts = []
    for weighting in cfg.weightings:
        contribution = returning["ret_1d"] * weights[weighting]
        returns = contribution.groupby([returning["sector"], returning["date"]]).sum().rename("ret_1d").reset_index()
        level = calendar.merge(counted, on=GROUP, how="left").merge(returns, on=GROUP, how="left")
        level["n_constituents"] = level["n_constituents"].fillna(0).astype(int)
        level = level.sort_values(GROUP, ignore_index=True)
        level["level"] = 100.0 * (1.0 + level["ret_1d"].fillna(0.0)).groupby(level["sector"]).cumprod()
        parts.append(level.assign(weighting=weighting))
    return pd.concat(parts, ignore_index=True)[["sector", "date", "weighting", "level", "ret_1d", "n_constituents"]]


def pd_lagged(frame: pd.DataFrame, keys: list[str], column: str, days: int, alias: str) -> pd.DataFrame:
    past = frame[[*keys, "date", column]].rename(columns={column: alias})
    past["date"] = past["date"] + pd.Timedelta(days=days)
    return frame.merge(past, on=[*keys, "date"], how="left")


def pd_quadrant(ratio: pd.Series, momentum: pd.Series) -> np.ndarray:
    strong, rising = ratio >= 100, momentum >= 100
    return np.select(
        [ratio.isna() | momentum.isna(), strong & rising, strong, rising],
        [None, "leading", "weakening", "improving"],
        "lagging",
    )


def pd_relative_strength(index: pd.DataFrame, btc_sector: str, cfg) -> pd.DataFrame:
    levels = index[index["weighting"] == cfg.weighting]
    btc = levels[levels["sector"] == btc_sector][["date", "level"]].rename(columns={"level": "btc_level"})
    rs = levels[levels["sector"] != btc_sector].merge(btc, on="date")
    rs["rs_vs_btc"] = 100.0 * rs["level"] / rs["btc_level"]
    rs = rs[["sector", "date", "rs_vs_btc"]]
    for days in MOMENTUM_DAYS:
        rs = pd_lagged(rs, ["sector"], "rs_vs_btc", days, "_past")
        rs[f"rs_mom_{days}d_pct"] = 100.0 * (rs["rs_vs_btc"] / rs.pop("_past") - 1)
    rs = rs.sort_values(["sector", "date"], ignore_index=True)
    smooth = rs.groupby("sector")["rs_vs_btc"].transform(lambda s: s.ewm(span=cfg.smoothing_days, adjust=False).mean())
    norm = smooth.groupby(rs["sector"]).transform(
        lambda s: s.rolling(cfg.ratio_window_days, min_periods=cfg.ratio_window_days).mean()
    )
    rs["rs_ratio"] = 100.0 * smooth / norm
    rs["rs_momentum"] = 100.0 * rs["rs_ratio"] / rs.groupby("sector")["rs_ratio"].shift(cfg.momentum_lookback_days)
    rs["quadrant"] = pd_quadrant(rs["rs_ratio"], rs["rs_momentum"])
    return rs


def pd_altseason(members: pd.DataFrame, tokens: pd.DataFrame, cfg, index_cfg) -> pd.DataFrame:
    returns = pd_lagged(members[["symbol", "date", "close", "eligible"]], ["symbol"], "close", cfg.window_days, "_past")
    returns = returns.merge(tokens[["symbol", "token"]], on="symbol")
    returns["ret"] = returns["close"] / returns["_past"] - 1
    btc = returns[(returns["token"] == index_cfg.btc) & returns["ret"].notna()][["date", "ret"]]
    alts = returns[
        returns["eligible"]
        & returns["ret"].notna()
        & ~returns["token"].isin([index_cfg.btc, *index_cfg.excluded_tokens])
    ]
    alts = alts.merge(btc.rename(columns={"ret": "btc_ret"}), on="date")
    alts["beats_btc"] = alts["ret"] > alts["btc_ret"]
    season = alts.groupby("date", as_index=False).agg(
        n_eligible=("ret", "size"), n_outperforming=("beats_btc", "sum"), btc_ret=("btc_ret", "first")
    )
    season["btc_return_pct"] = 100.0 * season.pop("btc_ret")
    season["altseason_index"] = (100.0 * season["n_outperforming"] / season["n_eligible"]).where(
        season["n_eligible"] >= cfg.min_eligible
    )
    index = season["altseason_index"]
    season["season"] = np.select(
        [index.isna(), index >= cfg.alt_season, index <= cfg.btc_season], [None, "alt_season", "btc_season"], "neutral"
    )
    return season.sort_values("date", ignore_index=True)


def pd_settlement_hours(f: pd.DataFrame) -> pd.Series:
    """Hours each settlement covers; `f` sorted by exchange, symbol, funding_time."""
    by_symbol = [f["exchange"], f["symbol"]]
    spacing = (f.groupby(by_symbol, sort=False)["funding_time"].diff().dt.total_seconds() / 60).round() / 60
    earlier = spacing.groupby(by_symbol, sort=False)
    usual = pd.concat([earlier.shift(1), earlier.shift(2)], axis=1).min(axis=1)  # skips a missing one
    stored = f["interval_hours"].fillna(8).astype(float)
    keep = usual.isna() | (spacing == stored) | (spacing <= usual)
    hours = spacing.where(keep, usual).where(spacing.notna(), stored)
    return hours.where(hours <= 8, stored)


def pd_funding_costs(funding: pd.DataFrame) -> pd.DataFrame:
    f = funding.sort_values(["exchange", "symbol", "funding_time"], ignore_index=True)
    f["date"] = f["funding_time"].dt.tz_convert("UTC").dt.tz_localize(None).dt.floor("D")
    f["_hours"] = pd_settlement_hours(f)
    f["_paid_hours"] = f["_hours"].where(f["funding_rate"].notna(), 0.0)
    daily = f.groupby(["exchange", "symbol", "date"], as_index=False).agg(
        settlements=("funding_rate", "count"),  # with a published rate
        interval_hours=("_hours", "max"),
        funding_rate_sum=("funding_rate", "sum"),
        _paid_hours=("_paid_hours", "sum"),
    )
    daily["interval_hours"] = daily["interval_hours"].round()
    daily = daily.sort_values(["exchange", "symbol", "date"], ignore_index=True)
    daily["funding_apr_pct"] = (daily["funding_rate_sum"] * 876_000 / daily["_paid_hours"]).where(daily["_paid_hours"] > 0)
    trailing = daily.groupby(["exchange", "symbol"], sort=False).rolling("7D", on="date")[["funding_rate_sum", "_paid_hours"]]
    trailing = trailing.sum()  # in (exchange, symbol, date) order, like `daily`
    apr_7d = trailing["funding_rate_sum"] * 876_000 / trailing["_paid_hours"]
    daily["funding_apr_7d_pct"] = apr_7d.where(trailing["_paid_hours"] > 0).to_numpy()
    return daily.drop(columns="_paid_hours")


def pd_tvl_growth(tvl: pd.DataFrame, days: int) -> pd.DataFrame:
    series = tvl[tvl["scope"].isin(["total", "chain"])][["scope", "name", "date", "tvl_usd"]]
    paired = pd_lagged(series, ["scope", "name"], "tvl_usd", days, "_past").dropna(subset=["_past"])
    sums = paired.groupby(["date", "scope"], as_index=False)[["tvl_usd", "_past"]].sum()
    sums["growth"] = sums["tvl_usd"] / sums["_past"] - 1
    sums["prefer"] = sums["scope"] != "total"
    return sums.sort_values(["date", "prefer"]).groupby("date", as_index=False).first()[["date", "growth"]]


def pd_leadership(rs: pd.DataFrame, alts_sector: str, cfg) -> pd.DataFrame:
    momentum = f"rs_mom_{cfg.leadership_days}d_pct"
    by_date = rs[["date"]].drop_duplicates()
    alts = rs[rs["sector"] == alts_sector].groupby("date")[momentum].first().rename("alts_vs_btc_pct")
    platform = rs[rs["sector"].isin(cfg.platform_sectors)].groupby("date")[momentum].mean()
    narrative = rs[rs["sector"].isin(cfg.narrative_sectors)].groupby("date")[momentum].mean()
    contenders = rs[rs["sector"].isin([*cfg.platform_sectors, *cfg.narrative_sectors]) & rs[momentum].notna()]
    leader = contenders.loc[contenders.groupby("date")[momentum].idxmax()].set_index("date")["sector"]
    out = by_date.set_index("date")
    out["alts_vs_btc_pct"] = alts
    out["platform_lead_pct"] = platform - narrative
    out["leading_sector"] = leader
    return out.reset_index()


def pd_run_length(values: pd.Series) -> pd.Series:
    """Position in the run of equal consecutive values (+1); a missing value always starts a run."""
    previous = values.shift(1)
    starts = (values != previous) | values.isna() | previous.isna()
    run = starts.cumsum()
    return run.groupby(run).cumcount() + 1


def pd_market_regime(index: pd.DataFrame, season: pd.DataFrame, rs: pd.DataFrame, costs: pd.DataFrame,
                     tokens: pd.DataFrame, tvl: pd.DataFrame, dominance: pd.DataFrame, cfg: AnalyticsConfig) -> pd.DataFrame:
    r = cfg.regime
    btc = index[(index["sector"] == cfg.sector_index.btc) & (index["weighting"] == cfg.relative_strength.weighting)]
    btc = btc[["date", "level"]].sort_values("date", ignore_index=True)
    trend_mean = btc["level"].rolling(r.btc_trend_days, min_periods=r.btc_trend_days).mean()
    btc["btc_trend_pct"] = 100.0 * (btc["level"] / trend_mean - 1)
    log_return = np.log(btc["level"]).diff()
    volatility = log_return.rolling(r.btc_volatility_days, min_periods=r.btc_volatility_days).std()
    btc["btc_volatility_pct"] = 100.0 * math.sqrt(365) * volatility
    btc = pd_lagged(btc, [], "level", r.btc_momentum_days, "_past")
    btc["btc_momentum_pct"] = 100.0 * (btc["level"] / btc.pop("_past") - 1)
    dom = pd_lagged(dominance[["date", "btc_dominance_pct"]], [], "btc_dominance_pct", r.dominance_trend_days, "_past")
    dom["btc_dominance_trend"] = dom["btc_dominance_pct"] - dom.pop("_past")
    btc_perps = tokens.loc[tokens["token"] == cfg.sector_index.btc, "perp"].tolist()
    funding = costs[costs["symbol"].isin(btc_perps)][["date", "funding_apr_7d_pct"]]
    tvl_growth = pd_tvl_growth(tvl, r.tvl_growth_days).rename(columns={"growth": "tvl_growth_30d"})
    f = (
        btc.merge(dom, on="date", how="left")
        .merge(season[["date", "altseason_index"]], on="date", how="left")
        .merge(pd_leadership(rs, cfg.sector_index.alts, r), on="date", how="left")
        .merge(tvl_growth, on="date", how="left")
        .merge(funding.rename(columns={"funding_apr_7d_pct": "btc_funding_apr_pct"}), on="date", how="left")
        .sort_values("date", ignore_index=True)
    )
    f["missing_inputs"] = (
        pd.concat([f[c].isna().map({True: c, False: None}) for c in EVIDENCE], axis=1)
        .apply(lambda row: ",".join(row.dropna()), axis=1)
    )

    trend, momentum, alts = f["btc_trend_pct"], f["btc_momentum_pct"], f["alts_vs_btc_pct"]
    above_trend = trend >= 0
    bear = ~above_trend & (
        (momentum <= r.bear_momentum_pct)
        | (f["btc_funding_apr_pct"] < r.funding_negative_apr_pct)
        | (f["tvl_growth_30d"] <= r.tvl_outflow_30d)
    )
    whipsaw = above_trend & (f["btc_volatility_pct"] >= r.peak_volatility_pct)
    # alts beating BTC while BTC is below its trend is a bear-market rally, not an alt season
    winning = above_trend & ((alts >= r.alts_outperform_pct) | (f["altseason_index"] >= r.breadth_wide))
    losing = (alts <= r.alts_underperform_pct) | (f["btc_dominance_trend"] >= r.dominance_rising_pp)
    platform_leads = (f["platform_lead_pct"] >= 0) | f["platform_lead_pct"].isna()
    f["raw_phase"] = pd.Series(
        np.select(
            [trend.isna() | momentum.isna(), bear, whipsaw, winning & platform_leads, winning, losing, above_trend],
            [None, "bear", "peak_consolidation", "altcoin_surge", "narrative_rotation", "btc_dominance",
             "peak_consolidation"],
            "btc_dominance",
        ),
        dtype=object,
    )
    f["phase"] = f["raw_phase"].where(pd_run_length(f["raw_phase"]) >= r.confirm_days).ffill()
    f["days_in_phase"] = pd_run_length(f["phase"]).where(f["phase"].notna())
    f["risk_mode"] = np.select([f["phase"].isna(), f["phase"].isin(r.risk_off_phases)], [None, "risk_off"], "risk_on")
    funding_apr = f["btc_funding_apr_pct"]
    f["funding_regime"] = np.select(
        [funding_apr.isna(), funding_apr < r.funding_negative_apr_pct, funding_apr > r.funding_hot_apr_pct],
        [None, "negative", "hot"],
        "normal",
    )
    return f


def pandas_chain(db: Path, market: dict[str, pd.DataFrame], cfg: AnalyticsConfig) -> dict[str, pd.DataFrame]:
    with duckdb.connect(str(db), read_only=True) as con:
        candles = con.sql(CANDLES_SQL).df()
    tokens = market["tokens"]
    members = pd_membership(candles, tokens, cfg.membership)
    index = pd_sector_index(members, tokens, cfg.sector_index)
    rs = pd_relative_strength(index, cfg.sector_index.btc, cfg.relative_strength)
    season = pd_altseason(members, tokens, cfg.altseason, cfg.sector_index)
    costs = pd_funding_costs(market["funding"])
    regime = pd_market_regime(index, season, rs, costs, tokens, market["defi_tvl"], market["btc_dominance"], cfg)
    return dict(zip(REFERENCE_MARTS, (index, rs, season, costs, regime), strict=True))


# --- c. the bare floor -----------------------------------------------------------------------------
# The same rows through the chain's own path with no work in it: DuckDB scans them into Polars,
# Polars groups them by symbol (the goal's denominator). DuckDB grouping them itself, without
# moving them, is the reference beside it: no chain whose math is Polars can come within 3x of
# that: moving the rows into Polars alone already takes about as long as DuckDB's whole group-by.

SCAN_SQL = "select symbol, count(*) as n, avg(close) as avg_close, sum(close * volume) as dollar_volume from candles group by symbol"


def duckdb_scan(db: Path) -> pl.DataFrame:
    with duckdb.connect(str(db), read_only=True) as con:
        return con.sql(SCAN_SQL).pl()


def polars_scan(db: Path) -> pl.DataFrame:
    with duckdb.connect(str(db), read_only=True) as con:
        candles = con.sql(CANDLES_SQL).pl()
    return candles.group_by("symbol").agg(
        n=pl.len(), avg_close=pl.col("close").mean(), dollar_volume=(pl.col("close") * pl.col("volume")).sum()
    )


# --- equality check and timing ----------------------------------------------------------------------

KEYS = {
    "marts.sector_index": ["sector", "weighting", "date"],
    "marts.relative_strength": ["sector", "date"],
    "marts.altseason": ["date"],
    "marts.funding_costs": ["exchange", "symbol", "date"],
    "marts.market_regime": ["date"],
}


def _normalised(frame: pd.DataFrame, keys: list[str], columns: list[str]) -> pd.DataFrame:
    out = frame[columns].copy()
    for column in columns:
        if pd.api.types.is_datetime64_any_dtype(out[column]):
            out[column] = out[column].astype("datetime64[ns]")
    return out.sort_values(keys, ignore_index=True)


def _values(column: pd.Series) -> list:
    """Python values with None for missing, so int32 vs int64 and NaN vs None compare as equal."""
    return column.astype(object).where(column.notna(), None).tolist()


def differences(polars_marts: dict[str, pl.DataFrame], pandas_marts: dict[str, pd.DataFrame]) -> list[str]:
    """One line per mart: rows, the worst relative float difference, and what (if anything) disagrees."""
    lines = []
    for mart, keys in KEYS.items():
        columns = polars_marts[mart].columns
        expected = _normalised(polars_marts[mart].to_pandas(), keys, columns)
        missing = [c for c in columns if c not in pandas_marts[mart].columns]
        if missing:
            lines.append(f"FAIL {mart}: pandas lacks {missing}")
            continue
        actual = _normalised(pandas_marts[mart], keys, columns)
        if len(actual) != len(expected):
            lines.append(f"FAIL {mart}: {len(actual):,} pandas rows vs {len(expected):,} polars rows")
            continue
        worst, bad = 0.0, []
        for column in columns:
            want, got = expected[column], actual[column]
            if pd.api.types.is_float_dtype(want):
                a, b = want.to_numpy(dtype=float), got.to_numpy(dtype=float)
                same_null = np.isnan(a) == np.isnan(b)
                both = ~np.isnan(a) & ~np.isnan(b)
                diff = np.abs(a[both] - b[both]) / np.maximum(np.abs(a[both]), 1.0)
                worst = max(worst, float(diff.max(initial=0.0)))
                if not same_null.all() or (diff > RTOL).any():
                    bad.append(column)
            elif _values(want) != _values(got):
                bad.append(column)
        line = f"{'FAIL' if bad else 'ok  '} {mart:<25} {len(expected):>7,} rows  max rel diff {worst:.1e}"
        lines.append(line + (f"  differs in {bad}" if bad else ""))
    return lines


def best_of(runs: int, fn: Callable[[], object]) -> tuple[float, object]:
    best, result = math.inf, None
    for _ in range(runs):
        start = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - start)
    return best, result


def rounds(runs: int, contenders: dict[str, Callable[[], object]]) -> dict[str, list[float]]:
    """Seconds per run of each contender, run in turn `runs` times (after one warm-up round)."""
    seconds: dict[str, list[float]] = {name: [] for name in contenders}
    for round_ in range(runs + 1):
        for name, fn in contenders.items():
            start = time.perf_counter()
            fn()
            if round_:
                seconds[name].append(time.perf_counter() - start)
    return seconds


def ratio(over: list[float], under: list[float]) -> tuple[float, float, float]:
    """Median, min and max of the per-round ratios over / under."""
    ratios = [a / b for a, b in zip(over, under, strict=True)]
    return statistics.median(ratios), min(ratios), max(ratios)


def peak_rss_bytes() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux reports KiB


# What the pandas reference computes: every mart of the chain but the universe's membership rows
# (the same membership's evidence, one row per candle).
REFERENCE_MARTS = tuple(m for m in CHAIN_MARTS if m != "marts.universe_membership")
# The made-up market has no market caps: the chain runs on its list, as a night without them does
# (and the pandas reference has no market-cap weighting to compare with).
FIXED_LIST = without_market_caps(AnalyticsConfig())


def verdict(ok: bool) -> str:
    return "PASS" if ok else "MISS"


def polars_once(folder: Path) -> None:
    """The child process whose peak RSS is the chain's: the DuckDB file and the saved tables in, marts out."""
    polars_chain(folder / "candles.duckdb", Market.load(folder), FIXED_LIST)


def main(quick: bool = False) -> int:
    cfg, sizes = FIXED_LIST, QUICK if quick else FULL
    candles, market = synthetic_market(np.random.default_rng(SEED), sizes.symbols, sizes.days)
    rows = candles.height
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        db = folder / "candles.duckdb"
        write_candles(db, candles)
        del candles
        market.save(folder)
        subprocess.run([sys.executable, __file__, "--polars-once", str(folder)], check=True)
        rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024

        polars_marts = polars_chain(db, market, cfg)
        timed = rounds(
            sizes.rounds,
            {
                "polars": lambda: polars_chain(db, market, cfg),
                "scan": lambda: polars_scan(db),
                "duckdb": lambda: duckdb_scan(db),
            },
        )
        steps = polars_steps(db, market, cfg, sizes.step_runs)
        rss_polars = peak_rss_bytes()
        market_pd = market.to_pandas()
        pandas_s, pandas_marts = best_of(sizes.pandas_runs, lambda: pandas_chain(db, market_pd, cfg))
    check = differences(polars_marts, pandas_marts)
    polars_s, scan_s, duckdb_s = (statistics.median(timed[name]) for name in ("polars", "scan", "duckdb"))
    pandas_ratio = pandas_s / min(timed["polars"])  # best of each: pandas runs too long to interleave
    scan_ratio, scan_low, scan_high = ratio(timed["polars"], timed["scan"])
    duckdb_ratio, *_ = ratio(timed["polars"], timed["duckdb"])

    if quick:
        print("quick mode: a small market, to check that the bench runs and the pandas reference agrees;"
              " its timings and goals mean nothing")
    print(f"synthetic market: {sizes.symbols:,} symbols x {sizes.days:,} days, {rows:,} candle rows in DuckDB "
          f"(+{market.funding.height:,} funding, {market.defi_tvl.height:,} tvl, {market.btc_dominance.height:,} dominance)")
    print(f"polars {pl.__version__} ({ENGINE} engine, {pl.thread_pool_size()} threads), pandas {pd.__version__},"
          f" duckdb {duckdb.__version__}; {sizes.rounds} interleaved rounds, medians")
    print(f"polars     duckdb -> compute_marts              {polars_s:7.3f} s   (best {min(timed['polars']):.3f} s)")
    print(f"pandas     duckdb -> same math (best of {sizes.pandas_runs})     {pandas_s:7.3f} s")
    print(f"bare scan  duckdb -> polars, group_by symbol    {scan_s:7.3f} s")
    print(f"           duckdb group by symbol -> polars     {duckdb_s:7.3f} s   (for reference)")
    print(f"pandas / polars     {pandas_ratio:7.1f}x   goal >= {GOAL_PANDAS_RATIO:.0f}x   {verdict(pandas_ratio >= GOAL_PANDAS_RATIO)}"
          "   (best runs)")
    print(f"polars / bare scan  {scan_ratio:7.1f}x   goal <= {GOAL_SCAN_RATIO:.0f}x    {verdict(scan_ratio <= GOAL_SCAN_RATIO)}"
          f"   (rounds {scan_low:.1f}x .. {scan_high:.1f}x)")
    print(f"  (for reference: {duckdb_ratio:.1f}x DuckDB's in-engine group-by, whose rows never leave DuckDB;"
          f" reading them into Polars alone costs {steps['read candles (duckdb -> polars)'] / duckdb_s:.1f}x it)")
    print(f"peak RSS, one chain run in its own process  {rss / 2**20:5.0f} MiB   goal <= {GOAL_RSS_BYTES / 2**20:.0f} MiB"
          f"   {verdict(rss <= GOAL_RSS_BYTES)}")
    print(f"peak RSS, this process: {rss_polars / 2**20:.0f} MiB after the data and every Polars run,"
          f" {peak_rss_bytes() / 2**20:.0f} MiB after pandas")
    print(f"polars chain, one step collected at a time (best of {sizes.step_runs}):")
    for step, seconds in steps.items():
        print(f"  {step:<34} {seconds:7.3f} s")
    print(f"equality, pandas reference vs polars marts (rtol {RTOL:g}):")
    for line in check:
        print(f"  {line}")
    if any(line.startswith("FAIL") for line in check):
        print("FAIL: the pandas reference disagrees with the Polars chain")
        return 1
    return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="small sizes, seconds: errors and wrong results still fail")
    parser.add_argument("--polars-once", type=Path, metavar="FOLDER", help=argparse.SUPPRESS)  # the RSS child
    args = parser.parse_args()
    if args.polars_once:
        polars_once(args.polars_once)
    else:
        sys.exit(main(quick=args.quick))
