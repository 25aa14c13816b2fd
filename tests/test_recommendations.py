"""The recommendation engine: allocation tilts and cadence on constructed days, hedges and their
funding rules, orders for a portfolio; the invariants and no look-ahead on the real history; the
`recommend` command on a published snapshot."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from pipeline.quality.validate import validate
from pipeline.strategy.allocation import Allocation, Evidence, SectorSignal, allocate, bucket_total, tilt
from pipeline.strategy.hedge_plan import plan_hedges
from pipeline.strategy.orders import LastClose, held_split, perp_orders, spot_orders, value
from pipeline.strategy.playbook import BUCKETS, Playbook
from pipeline.strategy.portfolio import Portfolio, PortfolioError
from pipeline.strategy.recommend import portfolio_orders, recommendations
from pipeline.transforms.chain import compute_marts
from pipeline.transforms.config import AnalyticsConfig, without_market_caps
from pipeline.transforms.membership import membership
from pipeline.transforms.sector_index import sector_assignments
from pipeline.transforms.sector_weights import sector_weights
from pipeline.universe import load_universe
from tests.conftest import REAL_DATA, copy_of, nightly, ranked_universe, raw_frames
from warehouse import Warehouse

PLAYBOOK = Playbook()
CONFIG = without_market_caps(AnalyticsConfig())  # the fixed list: the recordings these tests replay
TOKENS = load_universe().frame()
ROOT = Path(__file__).resolve().parents[1]
DAY = dt.date(2025, 3, 3)
SECTORS = ["Core", "Layer-1", "Layer-2", "DeFi", "Infrastructure", "AI", "Gaming", "Memes"]
PERPS = {"Core": "BTC/USDT:USDT", "DeFi": "UNI/USDT:USDT", "Infrastructure": "LINK/USDT:USDT", "Layer-1": "SOL/USDT:USDT"}
BTC_PERP = "BTC/USDT:USDT"


def day(phase="btc_dominance", risk="risk_on", date=DAY, tvl=None, quadrants=None, returns=None, **extra) -> Evidence:
    """A constructed day: every sector present, quadrant None unless given."""
    quadrants, returns = quadrants or {}, returns or {}
    sectors = {s: SectorSignal(quadrants.get(s), None, returns.get(s)) for s in SECTORS}
    return Evidence(date, phase, risk, sectors, tvl_growth_30d=tvl, **extra)


def assert_valid(weights: dict[str, float], posture: str) -> None:
    assert all(0 <= w <= 1 for w in weights.values())
    assert sum(weights.values()) == pytest.approx(1, abs=1e-12)
    for bucket in BUCKETS:
        band = PLAYBOOK.postures[posture].band(bucket)
        assert band.low - 1e-12 <= bucket_total(weights, bucket, PLAYBOOK) <= band.high + 1e-12, bucket


# ------------------------------------------------------------------ allocation on constructed days


def test_with_no_signal_each_bucket_is_split_equally_at_its_target():
    weights, scores, moves, _ = tilt(day("btc_dominance"), "btc_dominance", PLAYBOOK)
    posture = PLAYBOOK.postures["btc_dominance"]
    assert moves == [] and set(scores.values()) == {0}
    assert weights["Core"] == pytest.approx(posture.core.target)
    assert weights["DeFi"] == pytest.approx(posture.mid.target / 4)
    assert weights["AI"] == pytest.approx(posture.speculative.target / 3)
    assert_valid(weights, "btc_dominance")


def test_a_step_goes_from_the_lagging_to_the_leading_sector():
    weights, _, moves, _ = tilt(day("btc_dominance", quadrants={"Layer-2": "leading", "Layer-1": "lagging"}),
                                "btc_dominance", PLAYBOOK)
    base = PLAYBOOK.postures["btc_dominance"].mid.target / 4
    assert weights["Layer-2"] == pytest.approx(base + 0.05) and weights["Layer-1"] == pytest.approx(base - 0.05)
    assert [(m.source, m.target, round(m.weight, 12)) for m in moves] == [("Layer-1", "Layer-2", 0.05)]
    assert_valid(weights, "btc_dominance")


def test_risk_off_favours_infrastructure_and_risk_on_with_rising_tvl_favours_defi():
    off, *_ = tilt(day("peak_consolidation", "risk_off"), "peak_consolidation", PLAYBOOK)
    assert off["Infrastructure"] - off["DeFi"] == pytest.approx(0.10)  # one step out of DeFi, into Infrastructure
    on, *_ = tilt(day("btc_dominance", "risk_on", tvl=0.12), "btc_dominance", PLAYBOOK)
    assert on["DeFi"] - on["Infrastructure"] == pytest.approx(0.10)
    flat, *_ = tilt(day("btc_dominance", "risk_on", tvl=-0.05), "btc_dominance", PLAYBOOK)
    assert flat["DeFi"] == pytest.approx(flat["Infrastructure"])  # TVL falling: no preference


def test_altcoin_surge_moves_5pct_from_btc_to_layer_1s():
    neutral = PLAYBOOK.postures["neutral"]
    weights, *_ = tilt(day("altcoin_surge"), "altcoin_surge", PLAYBOOK)
    assert weights["Core"] == pytest.approx(neutral.core.target - 0.05)
    others = [weights[s] for s in ("Layer-2", "DeFi", "Infrastructure")]
    assert weights["Layer-1"] > max(others)  # the favoured Layer-1s take the step
    assert_valid(weights, "altcoin_surge")


def test_a_sector_up_300pct_in_30_days_trims_a_step_back_to_core():
    weights, _, moves, _ = tilt(day("btc_dominance", returns={"DeFi": 340.0}), "btc_dominance", PLAYBOOK)
    base = PLAYBOOK.postures["btc_dominance"]
    assert moves[0].why.startswith("profit-take: DeFi up 340%")
    assert (moves[0].source, moves[0].target) == ("DeFi", "Core")
    assert weights["DeFi"] == pytest.approx(base.mid.target / 4 - 0.05)
    assert weights["Core"] == pytest.approx(base.core.target + 0.05)
    assert_valid(weights, "btc_dominance")


def test_composites_and_core_never_take_profits():
    """BTC, ETH and the Alts composite have indices too, but no weight of their own: a 300% month
    of theirs moves nothing (and core's own rally is what the portfolio is for)."""
    ev = day("btc_dominance", returns={"Core": 400.0})
    ev.sectors.update({name: SectorSignal("leading", 50.0, 400.0) for name in ("BTC", "ETH", "Alts")})
    weights, scores, moves, _ = tilt(ev, "btc_dominance", PLAYBOOK)
    assert moves == [] and set(weights) == set(SECTORS) and "Alts" not in scores


def test_steps_never_break_a_band():
    """Every non-core sector lagging in bear: the speculative bucket may fall to its 0% floor, the
    mid bucket not below 15%, core not above 80%, whatever the scores ask."""
    lagging = {s: "lagging" for s in SECTORS[1:]}
    weights, *_ = tilt(day("bear", "risk_off", quadrants=lagging), "bear", PLAYBOOK)
    assert_valid(weights, "bear")
    assert bucket_total(weights, "mid", PLAYBOOK) >= 0.15 - 1e-12


def test_cadence_holds_the_posture_a_month_and_the_tilts_a_week():
    start = dt.date(2025, 1, 1)
    days = [day("btc_dominance", date=start)]
    days += [day("bear", "risk_off", date=start + dt.timedelta(days=d)) for d in range(1, 45)]
    days[3] = day("bear", "risk_off", date=days[3].date, quadrants={"AI": "leading"})
    out = list(allocate(days, PLAYBOOK))
    postures = [a.posture for a in out]
    assert postures[:30] == ["btc_dominance"] * 30  # the phase turned on day 1; the posture waits for its review
    assert postures[30:] == ["bear"] * 15 and out[30].posture_since == start + dt.timedelta(days=30)
    assert "holds until 2025-01-31 (monthly review)" in out[5].notes["*"][0]
    # Day 3's AI signal arrives 3 days after the last tilt (day 0): held, not followed.
    assert out[3].weights == out[0].weights and "tilts held since 2025-01-01 until 2025-01-08 (weekly review)" in out[3].notes["*"]
    assert all(a.weights == out[0].weights for a in out[:7])
    # The weekly review on day 7 follows the risk-off days: a step from DeFi to Infrastructure
    assert out[7].weights["Infrastructure"] - out[7].weights["DeFi"] == pytest.approx(0.10) and out[7].tilted_on == days[7].date
    assert_valid(out[30].weights, "bear") and out[30].before_posture == out[29].weights
    daily = PLAYBOOK.model_copy(update={"cadence": PLAYBOOK.cadence.model_copy(update={"posture": "daily", "tilts": "daily"})})
    assert [a.posture for a in allocate(days, daily)][1] == "bear"


# ------------------------------------------------------------------ hedges and funding


def _alloc(posture: str, ev: Evidence, before: dict[str, float] | None = None) -> Allocation:
    weights, scores, moves, notes = tilt(ev, posture, PLAYBOOK)
    return Allocation(ev.date, posture, ev.date, weights, None, before, scores, tuple(moves), ev.date, notes)


def test_narrative_rotation_shorts_btc_for_10pct_and_a_positive_rate_is_income_for_the_short():
    ev = day("narrative_rotation")
    lines = plan_hedges(ev, _alloc("narrative_rotation", ev), PLAYBOOK, PERPS, BTC_PERP, {BTC_PERP: 12.0})
    (btc,) = lines
    assert (btc.instrument, btc.side, btc.notional_pct, btc.leverage, btc.margin_pct) == (BTC_PERP, "short", 10, 1, 10)
    assert btc.strategy == "long beta, hedge major"
    assert btc.funding_pct(30) == pytest.approx(10 * 0.12 * 30 / 365)  # shorts receive a positive rate


def test_bear_shorts_50pct_while_btc_is_below_its_average_and_30pct_when_the_posture_outlasts_it():
    """Issue 23: the top of the 30-50% range from the first bear day below the trend (it used to wait
    for BTC 30% below it: after most of 2022's fall), the bottom when the monthly review holds the
    bear posture over a BTC back above its average."""
    below = day("bear", "risk_off", btc_trend_pct=-3.0)
    (short,) = [h for h in plan_hedges(below, _alloc("bear", below), PLAYBOOK, PERPS, BTC_PERP, {}) if h.instrument == BTC_PERP]
    assert short.notional_pct == pytest.approx(50) and "-3.0% from its 200-day average" in short.rationale
    assert short.funding_apr_pct is None and short.funding_pct(30) is None
    held = day("btc_dominance", "risk_off", btc_trend_pct=4.0)  # the phase moved on, the posture is still bear
    (short,) = [h for h in plan_hedges(held, _alloc("bear", held), PLAYBOOK, PERPS, BTC_PERP, {}) if h.instrument == BTC_PERP]
    assert short.notional_pct == pytest.approx(30) and "bear posture: short BTC for 30%" in short.rationale
    for trend, pct in ((0.0, 50), (None, 30)):  # at the average: the top; no trend known: the bottom
        ev = day("bear", "risk_off", btc_trend_pct=trend)
        (short,) = [h for h in plan_hedges(ev, _alloc("bear", ev), PLAYBOOK, PERPS, BTC_PERP, {}) if h.instrument == BTC_PERP]
        assert short.notional_pct == pytest.approx(pct)


def test_a_short_that_would_pay_an_excessive_rate_is_sized_down_and_says_so():
    ev = day("narrative_rotation")
    (btc,) = plan_hedges(ev, _alloc("narrative_rotation", ev), PLAYBOOK, PERPS, BTC_PERP, {BTC_PERP: -45.0})
    assert btc.notional_pct == pytest.approx(10 * PLAYBOOK.funding.hedge_cut)
    assert "shorts pay 45.0% APR" in btc.rationale and btc.funding_pct(30) < 0


def test_peak_hedges_the_exited_sector_with_30pct_of_what_was_sold():
    ev = day("peak_consolidation", "risk_off")
    alloc = _alloc("peak_consolidation", ev, before={"DeFi": 0.20})
    lines = {h.instrument: h for h in plan_hedges(ev, alloc, PLAYBOOK, PERPS, BTC_PERP, {})}
    sold = 0.20 - alloc.weights["DeFi"]
    assert lines["UNI/USDT:USDT"].notional_pct == pytest.approx(sold * 0.30 * 100)
    assert lines["UNI/USDT:USDT"].strategy == "hedge the exited sector"


def test_a_tactical_long_is_cut_when_longs_pay_an_excessive_rate():
    leading = {"Layer-1": "leading"}
    ev = day("altcoin_surge", quadrants=leading, leading_sector="Layer-1")
    alloc = _alloc("altcoin_surge", ev)
    (long_,) = plan_hedges(ev, alloc, PLAYBOOK, PERPS, BTC_PERP, {"SOL/USDT:USDT": 12.0})
    assert (long_.side, long_.notional_pct, long_.leverage) == ("long", 5, 3) and long_.funding_pct(30) < 0
    (cut,) = plan_hedges(ev, alloc, PLAYBOOK, PERPS, BTC_PERP, {"SOL/USDT:USDT": 48.0})
    assert cut.notional_pct == 0 and "cut: longs pay 48.0% APR" in cut.rationale


# ------------------------------------------------------------------ orders


def test_orders_take_the_portfolio_to_its_targets_without_spending_money_it_lacks():
    """$100k in DeFi and LINK to 55% core / 35% DeFi / 10% Infrastructure with a 10% BTC short at 2x:
    the short's $5k margin stays in cash, so the sector targets apply to $95k."""
    tokens = TOKENS.filter(pl.col("token").is_in(["BTC", "ETH", "UNI", "AAVE", "LINK", "SOL"]))
    closes = pl.DataFrame({"symbol": ["BTC/USDT", "ETH/USDT", "UNI/USDT", "AAVE/USDT", "LINK/USDT", "SOL/USDT"],
                           "date": [DAY] * 6, "close": [100_000.0, 4_000.0, 10.0, 250.0, 16.0, 150.0]})
    portfolio = Portfolio(holdings={"UNI": 1750, "AAVE": 70, "LINK": 4062.5}, cash_usd=0)  # $17.5k + 17.5k + 65k
    targets = {"Core": 0.55, "DeFi": 0.35, "Infrastructure": 0.10, "Layer-1": 0.0}
    rotation = pl.DataFrame({"as_of": [DAY] * 4, "sector": list(targets), "target_weight": list(targets.values())})
    hedges = pl.DataFrame(
        {"as_of": [DAY], "instrument": [BTC_PERP], "side": ["short"], "notional_pct": [10.0], "leverage": [2.0],
         "funding_apr": [5.0], "strategy": ["long beta, hedge major"], "rationale": ["test"]}
    )
    weights = pl.DataFrame({"sector": ["Core", "Core"], "symbol": ["BTC/USDT", "ETH/USDT"], "weight": [0.7, 0.3]})
    orders = portfolio_orders(DAY, portfolio, rotation, hedges, closes, weights, tokens, PLAYBOOK)
    by = {r["instrument"]: r for r in orders.iter_rows(named=True)}
    investable = 100_000 - 5_000
    assert by["LINK/USDT"]["side"] == "sell" and by["LINK/USDT"]["notional_usd"] == pytest.approx(65_000 - 0.10 * investable)
    # core wants $52,250; the sells less the margin bring $50,500: the buys are scaled to that
    scale = (65_000 - 0.10 * investable - 5_000) / (0.55 * investable)
    assert by["BTC/USDT"]["notional_usd"] == pytest.approx(0.55 * investable * 0.7 * scale)
    assert by["BTC/USDT"]["quantity"] == pytest.approx(0.55 * investable * 0.7 * scale / 100_000)
    assert f"scaled to {scale:.1%}" in by["BTC/USDT"]["reason"]
    assert "DeFi" not in " ".join(orders["reason"])  # 35.0% held, 33.25% wanted: inside the 2.5 pp tolerance
    assert by[BTC_PERP]["side"] == "sell" and by[BTC_PERP]["notional_usd"] == pytest.approx(10_000)
    spot = orders.filter(~pl.col("instrument").str.contains(":"))
    spent = spot.filter(pl.col("side") == "buy")["notional_usd"].sum()
    assert spent == pytest.approx(spot.filter(pl.col("side") == "sell")["notional_usd"].sum() + portfolio.cash_usd - 5_000)


def test_a_holding_without_a_market_is_valued_at_its_last_close_flagged_and_never_sold():
    """UNI's candles stopped 5 days ago and AAVE was never listed: the portfolio is valued with UNI at
    its last close (AAVE at 0), both get a `hold` line saying so, and DeFi's cut is sold from what
    trades (LINK is not DeFi; so nothing of DeFi can be sold and the line says how much is stuck)."""
    tokens = TOKENS.filter(pl.col("token").is_in(["BTC", "ETH", "UNI", "AAVE", "LINK"]))
    stopped = DAY - dt.timedelta(days=5)
    closes = pl.DataFrame({"symbol": ["BTC/USDT", "UNI/USDT", "LINK/USDT"], "date": [DAY, stopped, DAY],
                           "close": [100_000.0, 10.0, 20.0]})
    portfolio = Portfolio(holdings={"UNI": 5_000, "AAVE": 10, "LINK": 2_500}, cash_usd=0)  # $50k stuck + $50k LINK
    targets = {"Core": 0.60, "DeFi": 0.20, "Infrastructure": 0.20}
    rotation = pl.DataFrame({"as_of": [DAY] * 3, "sector": list(targets), "target_weight": list(targets.values())})
    weights = pl.DataFrame({"sector": ["Core"], "symbol": ["BTC/USDT"], "weight": [1.0]})
    orders = portfolio_orders(DAY, portfolio, rotation, pl.DataFrame(schema={"as_of": pl.Date}), closes, weights, tokens, PLAYBOOK)
    by = {r["instrument"]: r for r in orders.iter_rows(named=True)}
    assert by["UNI/USDT"]["side"] == "hold" and by["UNI/USDT"]["price"] == 10.0 and by["UNI/USDT"]["notional_usd"] == 50_000
    assert by["UNI/USDT"]["reason"] == f"UNI: no market since {stopped} (last close 10, 5 days old); valued at it and left out of the sells"
    assert by["AAVE/USDT"]["side"] == "hold" and by["AAVE/USDT"]["price"] is None and "no close of it on record" in by["AAVE/USDT"]["reason"]
    # $100k in all: LINK 50% -> 20% sells $30k, which buys BTC (Core 0% -> 60% wants $60k: scaled to half)
    assert by["LINK/USDT"]["side"] == "sell" and by["LINK/USDT"]["notional_usd"] == pytest.approx(30_000)
    assert by["BTC/USDT"]["side"] == "buy" and by["BTC/USDT"]["notional_usd"] == pytest.approx(30_000)
    assert "scaled to 50.0%" in by["BTC/USDT"]["reason"]
    assert set(orders.filter(pl.col("side") == "sell")["instrument"]) == {"LINK/USDT"}
    # DeFi holds 50% against a 20% target, but none of it trades: no sell, no order at a made-up price
    assert not orders.filter(pl.col("instrument").is_in(["UNI/USDT", "AAVE/USDT"]) & (pl.col("side") != "hold")).height
    # and the nightly's quality gate takes these lines (AAVE's has no price at all)
    report = validate("marts.portfolio_orders", orders, as_of=DAY)
    assert report.success, report.summary()


def test_a_sector_cut_is_sold_from_its_tradable_holdings_only():
    sector_of = {"UNI": "DeFi", "AAVE": "DeFi"}
    held = value({"UNI": 1_000, "AAVE": 100}, 0.0, {"UNI": LastClose(DAY - dt.timedelta(days=2), 10.0),
                 "AAVE": LastClose(DAY, 100.0)}, sector_of, DAY)
    assert held.value_usd == 20_000 and held.no_market == {"UNI": LastClose(DAY - dt.timedelta(days=2), 10.0)}
    splits = held_split(held, sector_of, {}, {"AAVE": 100.0})
    assert splits == {"DeFi": {"AAVE": 1.0}}  # the user's DeFi is what of it trades
    orders = spot_orders(held, {"DeFi": 0.25, "Core": 0.75}, {"AAVE": 100.0}, sector_of,
                         {"UNI": "UNI/USDT", "AAVE": "AAVE/USDT"}, splits, PLAYBOOK)
    (sell,) = [o for o in orders if o.side == "sell"]
    # DeFi 100% -> 25% wants $15k out; only AAVE ($10k) trades: all of it, and the line says $5k is stuck
    assert (sell.instrument, sell.notional_usd) == ("AAVE/USDT", pytest.approx(10_000))
    assert sell.reason.endswith("; $5,000 of it has no market")


def test_an_open_perp_whose_underlying_was_never_priced_is_an_error_naming_it():
    held = value({}, 1_000, {}, {}, DAY)
    short = {"SOL/USDT:USDT": -500.0}
    with pytest.raises(PortfolioError, match="no close on record for the underlying of SOL/USDT:USDT"):
        perp_orders(held, short, [], {}, DAY, PLAYBOOK)
    stale = {"SOL/USDT:USDT": LastClose(DAY - dt.timedelta(days=3), 150.0)}
    (line,) = perp_orders(held, short, [], stale, DAY, PLAYBOOK)
    assert line.side == "hold" and "no market since 2025-02-28" in line.reason


# ------------------------------------------------------------------ the real history


def _recommend(marts: dict[str, pl.DataFrame], tokens: pl.DataFrame = TOKENS, config=CONFIG) -> tuple[pl.DataFrame, pl.DataFrame]:
    index = marts["marts.sector_index"].filter(pl.col("weighting") == config.relative_strength.weighting)
    return recommendations(marts["marts.market_regime"], marts["marts.relative_strength"], index,
                           marts["marts.funding_costs"], tokens, PLAYBOOK)[:2]


@pytest.fixture(scope="module")
def real_recs(real):
    """The nightly's chain on the real history: the universe as it was, the marts, the recommendations."""
    universe = ranked_universe(real)
    marts = compute_marts(raw_frames(real), universe.tokens, universe.config, universe.symbol_ranks, universe.ranks)
    return marts, *_recommend(marts, universe.tokens, universe.config)


def test_the_readmes_account_of_the_bear_short_on_the_real_history_is_what_the_model_does(real_recs):
    """README, Resilience: its SQL over marts.hedge_recommendation and marts.market_regime counts the
    days the change of the bear short's range moved (the README states the count), and the 2022
    postures it describes: the rallies read btc_dominance (no BTC short), the legs down after them too."""
    import duckdb

    marts, rotation, hedges = real_recs
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    start = readme.index("select strftime(h.as_of, '%Y-%m') as month")
    query = readme[start:readme.index("```", start)]
    with duckdb.connect() as con:
        con.sql("create schema marts")
        con.register("hedge_rows", hedges)
        con.register("regime_rows", marts["marts.market_regime"])
        con.sql("create table marts.hedge_recommendation as select * from hedge_rows")
        con.sql("create table marts.market_regime as select * from regime_rows")
        days = int(con.sql(query).pl()["days"].sum())
    assert days > 100 and f"to 50% on {days} days" in readme
    posture = dict(rotation.group_by("as_of").agg(pl.col("posture").first()).iter_rows())
    rallies_and_legs = [dt.date(2022, 4, 15), dt.date(2022, 7, 25), dt.date(2022, 8, 25), dt.date(2022, 10, 15),
                        dt.date(2022, 11, 8)]
    assert {posture[d] for d in rallies_and_legs} == {"btc_dominance"}
    assert {posture[d] for d in (dt.date(2022, 3, 15), dt.date(2022, 6, 15), dt.date(2022, 9, 15), dt.date(2022, 11, 25))} == {"bear"}


def test_real_history_weights_sum_to_one_within_the_bands_and_hedges_within_the_caps(real_recs):
    marts, rotation, hedges = real_recs
    phased = marts["marts.market_regime"].filter(pl.col("phase").is_not_null())
    assert rotation["as_of"].n_unique() == phased.height > 1_500  # a recommendation every day with a phase
    assert rotation["target_weight"].is_between(0, 1).all()
    sums = rotation.group_by("as_of").agg(pl.col("target_weight").sum())
    assert (sums["target_weight"] - 1).abs().max() < 1e-12
    bands = pl.DataFrame(
        [(p, b, getattr(post, b).low, getattr(post, b).high) for p, post in PLAYBOOK.postures.items() for b in BUCKETS],
        schema=["posture", "bucket", "low", "high"], orient="row",
    )
    totals = rotation.group_by("as_of", "posture", "bucket").agg(pl.col("target_weight").sum()).join(bands, on=["posture", "bucket"])
    assert totals.height == 3 * sums.height
    assert totals.filter(~pl.col("target_weight").is_between(pl.col("low") - 1e-12, pl.col("high") + 1e-12)).is_empty()
    assert set(rotation["posture"]) == set(PLAYBOOK.postures) - {"neutral"}  # every phase's posture was in effect
    rules = PLAYBOOK.hedging
    shorts, longs = hedges.filter(pl.col("side") == "short"), hedges.filter(pl.col("side") == "long")
    assert shorts.height > 500 and shorts["leverage"].max() <= rules.max_leverage
    assert longs["leverage"].is_between(rules.tactical_leverage_min, rules.tactical_leverage_max).all()
    assert longs["notional_pct"].max() <= rules.tactical_long_max * 100
    assert ((hedges["margin_pct"] - hedges["notional_pct"] / hedges["leverage"]).abs() < 1e-12).all()
    # The BTC short of the bear posture, 30-50%, on every bear day
    bear_days = rotation.filter(pl.col("posture") == "bear")["as_of"].unique()
    btc = hedges.filter(pl.col("as_of").is_in(bear_days.implode()) & (pl.col("instrument") == BTC_PERP))
    assert btc.height == bear_days.len() and btc["notional_pct"].is_between(30 * 0.5, 50).all()
    # Between reviews the weights hold: far fewer changes than days
    changes = rotation.filter(pl.col("action") != "hold")["as_of"].n_unique()
    assert changes < rotation["as_of"].n_unique() / 5


@pytest.mark.parametrize("cutoff", [dt.date(2022, 6, 30), dt.date(2024, 12, 1)])
def test_no_look_ahead_recommendations_up_to_a_day_do_not_change_when_later_data_arrives(real, real_recs, cutoff):
    _, rotation, hedges = real_recs
    early = ranked_universe(real, until=cutoff)
    early_rotation, early_hedges = _recommend(
        compute_marts(raw_frames(real, until=cutoff), early.tokens, early.config, early.symbol_ranks, early.ranks),
        early.tokens, early.config)
    assert early_rotation["as_of"].max() == cutoff
    assert early_rotation.equals(rotation.filter(pl.col("as_of") <= cutoff))
    assert early_hedges.equals(hedges.filter(pl.col("as_of") <= cutoff))


def test_recommend_prints_the_day_for_a_portfolio_from_the_snapshot(real, real_recs, tmp_path):
    marts, rotation, hedges = real_recs
    as_of = real.as_of
    path = tmp_path / "rotation.duckdb"
    wh = Warehouse(path)
    raw = raw_frames(real)
    members = membership(raw.ohlcv, TOKENS["symbol"], CONFIG.membership)
    weights = sector_weights(members, sector_assignments(TOKENS, CONFIG.sector_index), CONFIG.sector_index)
    wh.upsert({
        "marts.sector_weights": weights.filter(pl.col("date") == as_of).collect(),
        # from before the day 24 recorded symbols stop (2024-12-01): DOT's last close is there
        "raw.ohlcv_1d": raw.ohlcv.filter(pl.col("date") >= dt.date(2024, 11, 25)).with_columns(
            source=pl.lit("binance"), ingested_at=pl.lit(dt.datetime(2025, 8, 3, tzinfo=dt.UTC))),
        "marts.market_regime": marts["marts.market_regime"],
        "marts.rotation_recommendation": rotation,
        "marts.hedge_recommendation": hedges,
    })
    wh.publish_snapshot()
    mine = tmp_path / "mine.yaml"
    mine.write_text("holdings: {BTC: 0.5, SOL: 100, DOT: 1000}\ncash_usd: 20000\n")
    env = {**os.environ, "PYTHONPATH": str(ROOT), "ROTATION_WAREHOUSE": str(path)}
    done = subprocess.run([sys.executable, "-m", "pipeline", "recommend", "--portfolio", str(mine)],
                          cwd=ROOT, capture_output=True, text=True, timeout=120, env=env)
    assert done.returncode == 0, done.stderr
    today = rotation.filter(pl.col("as_of") == as_of)
    regime = marts["marts.market_regime"].filter(pl.col("date") == as_of).row(0, named=True)
    assert f"Recommendation for {as_of}: phase {regime['phase']}" in done.stdout
    for row in today.iter_rows(named=True):
        assert f"{row['sector']:<16}{row['bucket']:<13}" in done.stdout
    # $57k of BTC, $16k of SOL, $20k cash: the cash buys the sectors held at 0%, e.g. DeFi as its index
    orders = done.stdout.split(f"Orders for {mine} at the {as_of} closes:")[1].split("Why")[0]
    defi = today.filter(pl.col("sector") == "DeFi")["target_weight"].item()
    margin = hedges.filter(pl.col("as_of") == as_of)["margin_pct"].sum() / 100  # kept in cash for the hedges
    assert defi > 0.05 and "buy" in orders and f"DeFi 0.0% -> {defi * (1 - margin):.1%}" in orders
    assert "UNI/USDT" in orders and "AAVE/USDT" in orders
    dot_close = raw.ohlcv.filter((pl.col("symbol") == "DOT/USDT") & (pl.col("date") == dt.date(2024, 12, 1)))["close"].item()
    assert f"WARNING DOT: no market since 2024-12-01 (last close {dot_close:,.6g}, 244 days old)" in orders
    assert "DOT/USDT         hold" in orders and "DOT/USDT         sell" not in orders
    bad = tmp_path / "bad.yaml"
    bad.write_text("holdings: {BTCC: 1}\n")
    done = subprocess.run([sys.executable, "-m", "pipeline", "recommend", "--portfolio", str(bad), "--as-of", "2019-01-01"],
                          cwd=ROOT, capture_output=True, text=True, timeout=120, env=env)
    assert done.returncode == 1 and "holdings.BTCC: unknown token" in done.stderr
    done = subprocess.run([sys.executable, "-m", "pipeline", "recommend", "--as-of", "2019-01-01"],
                          cwd=ROOT, capture_output=True, text=True, timeout=120, env=env)
    assert done.returncode == 1 and f"no recommendation for 2019-01-01 (the newest is {as_of}" in done.stderr


# ------------------------------------------------------------------ in Dagster: the blocking checks gate them

MODEL_TABLES = ("marts.rotation_recommendation", "marts.hedge_recommendation")
RECOMMENDATION_TABLES = (*MODEL_TABLES, "marts.portfolio_orders")


def test_a_night_whose_data_fails_its_checks_gets_no_recommendation(real, history, tmp_path):
    """The real history up to 2025-07-29, then the nightly job for 07-30 (clean): the model's
    recommendations up to that night and the example portfolio's orders for it. Then 07-31 .. 08-02
    with the candles arriving duplicated (a blocking check): the run stops before the
    recommendations, which gain nothing for those days. Re-run with good data, the three days get theirs."""
    path = copy_of(history, tmp_path)
    last_good, bad = real.as_of - dt.timedelta(days=3), (real.as_of - dt.timedelta(days=2), real.as_of)
    assert nightly(REAL_DATA, path, last_good, last_good).success
    wh = Warehouse(path)
    stored = {t: wh.query("select * from " + t + " order by all") for t in RECOMMENDATION_TABLES}
    for table in MODEL_TABLES:  # recomputed from the start of history, up to the night
        assert stored[table]["as_of"].max() == last_good and stored[table]["as_of"].n_unique() > 1000, table
    assert stored["marts.portfolio_orders"]["as_of"].unique().to_list() == [last_good]  # the night's alone

    result = nightly(REAL_DATA, path, *bad, faults=["duplicate_row:/api/v3/klines"])
    assert not result.success
    failed = [c for c in result.get_asset_check_evaluations() if not c.passed]
    assert [c.asset_key.to_user_string() for c in failed] == ["raw/ohlcv_1d"]
    for table in RECOMMENDATION_TABLES:
        assert wh.query("select * from " + table + " order by all").equals(stored[table]), table  # nothing new

    assert nightly(REAL_DATA, path, *bad).success
    days = wh.query("select distinct as_of from marts.rotation_recommendation order by 1")["as_of"].to_list()
    assert days[-4:] == [last_good, *bad[:1], bad[0] + dt.timedelta(days=1), bad[1]]
    for table in MODEL_TABLES:  # the days before are as the clean night wrote them (to the last bits of a sum)
        assert_frame_equal(wh.query("select * from " + table + " where as_of <= ? order by all", [last_good]),
                           stored[table], check_exact=False, rel_tol=1e-12)
    assert wh.query("select max(as_of) from marts.portfolio_orders").item() == bad[1]


def test_a_users_portfolio_never_stops_the_models_night(real, history, tmp_path, monkeypatch):
    """Night 2025-07-30 of the real history for a portfolio holding DOT, whose candles stopped on
    2024-12-01: its orders flag DOT and never sell it, and the model's recommendations are the ones
    an empty portfolio gets. Then a portfolio file with a typo: the orders fail naming the token,
    while the night's model is written and published."""
    path = copy_of(history, tmp_path)
    wh = Warehouse(path)
    night = real.as_of - dt.timedelta(days=3)
    stale = tmp_path / "stale.yaml"
    stale.write_text("holdings: {DOT: 5000, BTC: 0.2, LINK: 1000}\ncash_usd: 10000\n")
    monkeypatch.setenv("ROTATION_CHARTS", "1")  # this run also shows the recommendations' charts
    result = nightly(REAL_DATA, path, night, night, portfolio=stale)
    monkeypatch.setenv("ROTATION_CHARTS", "0")
    assert result.success
    metadata = {e.asset_key.to_user_string(): e.metadata
                for e in (ev.event_specific_data.materialization for ev in result.get_asset_materialization_events())}
    for asset in ("marts/rotation_recommendation", "marts/hedge_recommendation"):
        assert metadata[asset]["chart"].value.startswith("![") and f"as of {night}" in metadata[asset]["chart"].value[:200]
    orders = wh.query("select * from marts.portfolio_orders where as_of = ?", [night])
    dot = orders.filter(pl.col("instrument") == "DOT/USDT").row(0, named=True)
    last = real.ohlcv.filter(pl.col("symbol") == "DOT/USDT").sort("date").tail(1).row(0, named=True)
    assert (dot["side"], dot["quantity"], dot["price"]) == ("hold", 5000, last["close"]) and last["date"] == dt.date(2024, 12, 1)
    assert dot["reason"] == (f"DOT: no market since 2024-12-01 (last close {last['close']:,.6g}, 241 days old); "
                             "valued at it and left out of the sells") and dot["notional_usd"] == pytest.approx(5000 * last["close"])
    traded = orders.filter(pl.col("side") != "hold")
    assert traded.height > 0 and "DOT/USDT" not in traded["instrument"].to_list()  # the rest is rebalanced
    model = {t: wh.query("select * from " + t + " where as_of = ? order by all", [night]) for t in MODEL_TABLES}
    assert model["marts.rotation_recommendation"].height > 5

    empty = tmp_path / "empty.yaml"
    empty.write_text("cash_usd: 0\n")
    assert nightly(REAL_DATA, path, night, night, portfolio=empty).success
    for table in MODEL_TABLES:
        assert wh.query("select * from " + table + " where as_of = ? order by all", [night]).equals(model[table]), table
    assert wh.query("select count(*) from marts.portfolio_orders where as_of = ?", [night]).item() == 0

    typo = tmp_path / "typo.yaml"
    typo.write_text("holdings: {BTCC: 1}\n")
    next_night = night + dt.timedelta(days=1)
    result = nightly(REAL_DATA, path, next_night, next_night, portfolio=typo)
    failed = [e for e in result.all_events if e.is_step_failure]
    assert [e.step_key for e in failed] == ["marts__portfolio_orders"]
    error = failed[0].step_failure_data.error.cause  # what the asset raised, inside Dagster's wrapper
    assert error.cls_name == "PortfolioError" and f"{typo}: holdings.BTCC: unknown token" in error.message
    snapshot = Warehouse(wh.snapshot_path)
    for table in MODEL_TABLES:
        assert wh.query("select count(*) from " + table + " where as_of = ?", [next_night]).item() > 0, table
        assert snapshot.query("select max(as_of) from " + table).item() == next_night, table  # published
    assert wh.query("select count(*) from marts.portfolio_orders where as_of = ?", [next_night]).item() == 0
