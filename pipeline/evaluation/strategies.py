"""The strategies the backtest puts side by side, each as decisions by as-of day: the playbook as
the nightly wrote it (with and without its hedges), and what a user would hold instead (BTC,
60/40 BTC/ETH, the seeds' neutral buckets, equal-weight sectors), rebalanced monthly. All start
from the playbook's first recommendation, so every strategy covers the same days."""

from __future__ import annotations

import datetime as dt

import polars as pl

from pipeline.evaluation.backtest import Decision, Market, Strategy
from pipeline.strategy.hedge_plan import HedgeLine
from pipeline.strategy.playbook import BUCKETS, Playbook

PLAYBOOK, UNHEDGED = "playbook", "playbook_unhedged"
BTC_HOLD, BTC_ETH, NEUTRAL, EQUAL = "btc_hold", "btc_eth_60_40", "neutral_buckets", "equal_sectors"
NAMES = (PLAYBOOK, UNHEDGED, BTC_HOLD, BTC_ETH, NEUTRAL, EQUAL)
DESCRIPTIONS = {
    PLAYBOOK: "the nightly's rotation and hedge recommendations",
    UNHEDGED: "the same rotation, no perps: what the hedges add or cost",
    BTC_HOLD: "100% BTC, bought once and held",
    BTC_ETH: "60% BTC / 40% ETH, rebalanced monthly",
    NEUTRAL: "core 55 / mid 30 / speculative 15, sectors equal inside a bucket, monthly",
    EQUAL: "every sector alike, monthly",
}


def recommended(rotation: pl.DataFrame, hedges: pl.DataFrame, with_hedges: bool = True) -> dict[dt.date, Decision]:
    """The nightly's decisions: marts.rotation_recommendation's target weights and, optionally,
    marts.hedge_recommendation's lines, by as-of day."""
    lines: dict[dt.date, list[HedgeLine]] = {}
    if with_hedges:
        for r in hedges.iter_rows(named=True):
            lines.setdefault(r["as_of"], []).append(HedgeLine(
                r["instrument"], r["side"], r["notional_pct"], r["leverage"], r["funding_apr"], r["strategy"], r["rationale"]))
    targets: dict[dt.date, dict[str, float]] = {}
    for as_of, sector, weight in rotation.select("as_of", "sector", "target_weight").iter_rows():
        targets.setdefault(as_of, {})[sector] = weight
    return {day: Decision(t, tuple(lines.get(day, ()))) for day, t in targets.items()}


def month_ends(first: dt.date, last: dt.date) -> list[dt.date]:
    """`first`, then the last day of every month after it up to `last`: each trades on the 1st."""
    days, day = [first], first
    while True:
        day = (day.replace(day=1) + dt.timedelta(days=32)).replace(day=1)  # the next month's 1st
        if day - dt.timedelta(days=1) > last:
            return days
        if day - dt.timedelta(days=1) > first:
            days.append(day - dt.timedelta(days=1))


def _sectors_with_index(market: Market, as_of: dt.date, sectors: list[str]) -> list[str]:
    members = market.members.get(as_of + dt.timedelta(days=1)) or market.members.get(as_of, {})
    return [s for s in sectors if members.get(s)]


def strategies(
    rotation: pl.DataFrame, hedges: pl.DataFrame, tokens: pl.DataFrame, market: Market, playbook: Playbook,
    btc: str = "BTC", eth: str = "ETH", since: dt.date | None = None,
) -> list[Strategy]:
    """The six strategies over the days of `rotation` (marts.rotation_recommendation); with `since`,
    the decisions before it are left out (a resumed run has traded them: its market starts later
    and cannot size them)."""
    if rotation.is_empty():
        return []
    sector_of = dict(zip(tokens["token"], tokens["sector"], strict=True))
    monthly = month_ends(rotation["as_of"].min(), rotation["as_of"].max())
    btc_bought = {monthly[0]: Decision({btc: 1.0})} if since is None or monthly[0] >= since else {}
    if since is not None:
        monthly = [d for d in monthly if d >= since]
        rotation, hedges = rotation.filter(pl.col("as_of") >= since), hedges.filter(pl.col("as_of") >= since)
    neutral = playbook.postures["neutral"]
    buckets, sector_list = {}, list(playbook.sector_buckets)
    for as_of in monthly:
        present = _sectors_with_index(market, as_of, sector_list)
        if not present:
            continue
        weights: dict[str, float] = {}
        for bucket in BUCKETS:
            mine = [s for s in present if playbook.sector_buckets[s] == bucket]
            weights |= {s: neutral.band(bucket).target / len(mine) for s in mine}
        total = sum(weights.values())  # < 1 only when a whole bucket has no index yet
        buckets[as_of] = Decision({s: w / total for s, w in weights.items()})
    equal = {d: Decision({s: 1 / len(p) for s in p}) for d in monthly if (p := _sectors_with_index(market, d, sector_list))}
    return [
        Strategy(PLAYBOOK, recommended(rotation, hedges), sector_of),
        Strategy(UNHEDGED, recommended(rotation, hedges, with_hedges=False), sector_of),
        Strategy(BTC_HOLD, btc_bought, {btc: btc}, {btc: {btc: 1.0}}),
        Strategy(BTC_ETH, {d: Decision({btc: 0.6, eth: 0.4}) for d in monthly}, {btc: btc, eth: eth},
                 {btc: {btc: 1.0}, eth: {eth: 1.0}}),
        Strategy(NEUTRAL, buckets, sector_of),
        Strategy(EQUAL, equal, sector_of),
    ]
