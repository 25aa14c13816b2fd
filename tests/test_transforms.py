"""The analytics math on small frames written out here, where every expected value is worked by hand."""

from __future__ import annotations

import datetime as dt
import math

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from pipeline.transforms.altseason import altseason
from pipeline.transforms.config import (
    AnalyticsConfig,
    AnalyticsConfigError,
    Altseason,
    Membership,
    Regime,
    RelativeStrength,
    SectorIndex,
    load_analytics_config,
)
from pipeline.transforms.funding_costs import funding_costs
from pipeline.transforms.market_regime import market_features, market_regime, with_hysteresis
from pipeline.transforms.membership import membership
from pipeline.transforms.relative_strength import QUADRANTS, relative_strength
from pipeline.transforms.sector_index import capped_weights, sector_assignments, sector_index
from pipeline.transforms.sector_weights import sector_weights

D0 = dt.date(2024, 1, 1)


def day(n: int) -> dt.date:
    return D0 + dt.timedelta(days=n)


def candles(rows: list[tuple[str, int, float, float]]) -> pl.DataFrame:
    """(symbol, day number, close, dollar volume) -> candle rows (volume in base units)."""
    return pl.DataFrame(
        {
            "symbol": [r[0] for r in rows],
            "date": [day(r[1]) for r in rows],
            "close": [r[2] for r in rows],
            "volume": [r[3] / r[2] for r in rows],
        }
    )


def symbols(rows: list[tuple[str, int, float, float]]) -> list[str]:
    """The universe: every symbol the rows name."""
    return sorted({r[0] for r in rows})


def tokens(*specs: tuple[str, str]) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "token": [t for t, _ in specs],
            "symbol": [f"{t}/USDT" for t, _ in specs],
            "sector": [s for _, s in specs],
            "bucket": ["mid"] * len(specs),
            "perp": [None] * len(specs),
        },
        schema_overrides={"perp": pl.String},
    )


# ------------------------------------------------------------------ membership


def test_tokens_join_after_their_history_and_volume_and_leave_when_stale_or_delisted():
    cfg = Membership(min_history_days=3, min_dollar_volume_usd=1_000, dollar_volume_window_days=2, stale_after_days=2)
    rows = [("A/USDT", d, 1.0, 5_000) for d in (0, 1, 2, 3, 4, 5, 9, 10, 11)]  # pauses days 6-8: 3 days
    rows += [("B/USDT", d, 1.0, 5_000) for d in range(0, 4)]  # delisted after day 3
    rows += [("C/USDT", d, 1.0, 500) for d in range(0, 6)]  # never trades enough
    rows += [("D/USDT", d, 1.0, 5_000) for d in (0, 1, 2, 4, 5)]  # misses one day: under the stale bar
    m = membership(candles(rows), symbols(rows), cfg).collect()
    member_days = {s: sorted((d - D0).days for d in g["date"]) for (s,), g in m.filter("eligible").group_by("symbol")}
    assert member_days["A/USDT"] == [2, 3, 4, 5, 9, 10, 11]  # 3rd day in; back when it trades again
    assert member_days["B/USDT"] == [2, 3]  # counted while it traded, gone after
    assert "C/USDT" not in member_days
    assert member_days["D/USDT"] == [2, 4, 5]
    a = m.filter(pl.col("symbol") == "A/USDT").sort("date")
    assert a["status"].to_list() == ["too_young"] * 2 + ["member"] * 7
    # The return across the pause is not a day's return: it restarts the series.
    assert a.filter(pl.col("date") == day(9))["ret_1d"].item() is None
    # A token's return counts on D only if it was a member at D-1's close.
    assert sorted((d - D0).days for d in a.filter("in_return")["date"]) == [3, 4, 5, 10, 11]
    d = m.filter(pl.col("symbol") == "D/USDT").sort("date")
    assert d.filter(pl.col("date") == day(4))["in_return"].item() is True  # a 1-day gap is not stale


def test_membership_is_the_same_whatever_order_the_candles_come_in():
    # Rows in (symbol, date) order skip the sort; any other order is sorted first.
    cfg = Membership(min_history_days=2, min_dollar_volume_usd=1_000, dollar_volume_window_days=3, stale_after_days=2)
    rows = [(s, d, 1.0 + d / 10 + i, 2_000.0 * (1 + d % 3)) for i, s in enumerate(("B/USDT", "A/USDT")) for d in range(9)]
    ordered = membership(candles(rows).sort("symbol", "date"), symbols(rows), cfg).collect()
    shuffled = membership(candles(rows).sample(fraction=1.0, shuffle=True, seed=7), symbols(rows), cfg).collect()
    date_major = membership(candles(rows).sort("date", "symbol"), symbols(rows), cfg).collect()
    assert ordered.height == 18 and ordered["eligible"].sum() > 0
    assert ordered["adv_usd"].to_list()[2] == pytest.approx((2_000 * 1.0 + 2_000 * 2 + 2_000 * 3) / 3)
    assert_frame_equal(shuffled, ordered)
    assert_frame_equal(date_major, ordered)


def test_capped_weights_pin_the_largest_at_the_cap_and_spread_the_excess_pro_rata():
    frame = pl.DataFrame({"g": ["x"] * 5 + ["y"] * 3, "score": [60.0, 20, 10, 5, 5, 8, 1, 1]})
    weights = capped_weights(frame.lazy(), "score", ["g"], 0.30).collect()["weight"].to_list()
    # x: 60% -> 30%; the other 40 points share 70%: 20 -> 35% > cap -> 30%; 10, 5, 5 share 40%.
    assert weights[:5] == pytest.approx([0.30, 0.30, 0.20, 0.10, 0.10])
    # y: three constituents cannot all stay under 30%, so the cap relaxes to 1/3 each.
    assert weights[5:] == pytest.approx([1 / 3] * 3)


def test_sector_index_levels_by_hand_with_the_cap_binding_drifting_and_reset_at_the_month():
    cfg = SectorIndex(weightings=("equal", "capped"), max_weight=0.30)
    mcfg = Membership(min_history_days=1, min_dollar_volume_usd=0, dollar_volume_window_days=1)
    # Closes Jan 30 .. Feb 2 (days 29-32); dollar volumes, the capped weighting's size: A 70, B/C/D 10.
    # Jan 31: A +10%, B 0, C 0, D -10%. Feb 1: A -20%, the rest +5%. Feb 2: A +10%, the rest 0.
    closes = {"A": (10.0, 11.0, 8.8, 9.68), "B": (1.0, 1.0, 1.05, 1.05), "C": (2.0, 2.0, 2.1, 2.1),
              "D": (5.0, 4.5, 4.725, 4.725)}
    dollar = {"A": 70.0, "B": 10.0, "C": 10.0, "D": 10.0}
    rows = [(f"{t}/USDT", 29 + i, closes[t][i], dollar[t]) for t in closes for i in range(4)]
    universe = tokens(("A", "DeFi"), ("B", "DeFi"), ("C", "DeFi"), ("D", "DeFi"))
    index = sector_index(membership(candles(rows), symbols(rows), mcfg), sector_assignments(universe, cfg), cfg).collect()
    defi = index.filter(pl.col("sector") == "DeFi").sort("weighting", "date")
    # A portfolio bought at the targets and held, bought again at the targets at Jan 31's close.
    # capped targets: A 30%, the rest 70%/3 each (A's 70% is over the cap). equal: 25% each.
    capped_jan31 = [30 * 1.1, 70 / 3, 70 / 3, 70 / 3 * 0.9]  # the holdings' values, from 100
    capped_feb1 = sum(capped_jan31) * (0.30 * 0.8 + 0.70 * 1.05)  # reset to target, not drifted
    capped_feb2 = capped_feb1 * (0.30 * 0.8 * 1.1 + 0.70 * 1.05) / (0.30 * 0.8 + 0.70 * 1.05)  # drifted
    equal_feb1 = 100.0 * (0.25 * 0.8 + 0.75 * 1.05)
    equal_feb2 = equal_feb1 * (0.25 * 0.8 * 1.1 + 0.75 * 1.05) / (0.25 * 0.8 + 0.75 * 1.05)
    capped = [100.0, sum(capped_jan31), capped_feb1, capped_feb2]
    equal = [100.0, 100.0, equal_feb1, equal_feb2]
    expected = pl.DataFrame(
        {
            "weighting": ["capped"] * 4 + ["equal"] * 4,
            "date": [day(29), day(30), day(31), day(32)] * 2,
            "level": capped + equal,
            "ret_1d": [None, *(b / a - 1 for a, b in zip(capped, capped[1:])),
                       None, *(b / a - 1 for a, b in zip(equal, equal[1:]))],
            "n_constituents": pl.Series([4] * 8, dtype=pl.Int32),
        }
    )
    assert_frame_equal(defi.select(expected.columns), expected, abs_tol=1e-12)
    assert capped[1:] == pytest.approx([100.6666667, 98.15, 100.566])  # the same, worked out
    # The alts composite holds all four; BTC/ETH composites only exist when those tokens do.
    assert set(index["sector"]) == {"DeFi", "Alts"}


def test_a_monthly_index_is_a_portfolio_held_between_rebalances_joiners_and_leavers_included():
    """A doubles in January, B in February: each month's level is what the rebalanced holdings are
    worth (daily rebalancing would show 141.7, not 150, on Jan 31). In the alts composite C joins
    mid-January at its target against the others' month-start weights, and leaves in February,
    its weight going to A and B pro rata."""
    cfg = SectorIndex(weightings=("equal", "capped"))
    mcfg = Membership(min_history_days=1, min_dollar_volume_usd=0, dollar_volume_window_days=1)
    a = [1 + min(d, 30) / 30 for d in range(60)]  # 1 -> 2 over Jan 1 .. Jan 31, then flat to Feb 29
    b = [1 + max(d - 30, 0) / 29 for d in range(60)]  # flat in January, 1 -> 2 over February
    rows = [("A/USDT", d, a[d], 1e6) for d in range(60)] + [("B/USDT", d, b[d], 1e6) for d in range(60)]
    rows += [("C/USDT", d, 5.0, 1e6) for d in range(15, 41)]  # Jan 16 .. Feb 10
    universe = tokens(("A", "DeFi"), ("B", "DeFi"), ("C", "AI"))
    members = membership(candles(rows), symbols(rows), mcfg)
    assignments = sector_assignments(universe, cfg)
    index = sector_index(members, assignments, cfg).collect()
    for weighting in ("equal", "capped"):  # with two members the cap relaxes to 1/2: equal targets
        defi = index.filter(pl.col("sector") == "DeFi", pl.col("weighting") == weighting)
        level = dict(zip(defi["date"], defi["level"]))
        assert level[day(30)] == pytest.approx(100 * (0.5 * 2 + 0.5 * 1))
        assert level[day(59)] == pytest.approx(150 * (0.5 * 1 + 0.5 * 2))
    weights = sector_weights(members, assignments, cfg).filter(pl.col("sector") == "Alts", pl.col("weighting") == "equal")
    on = {d: dict(zip(g["symbol"], g["weight"])) for (d,), g in weights.collect().group_by("date")}
    # Jan 17, C's first return: C at 1 against A's growth since Jan 1 (a[15] / a[0]) and B's 1.
    assert on[day(16)] == pytest.approx({"A/USDT": 1.5 / 3.5, "B/USDT": 1 / 3.5, "C/USDT": 1 / 3.5})
    assert on[day(31)] == pytest.approx({"A/USDT": 1 / 3, "B/USDT": 1 / 3, "C/USDT": 1 / 3})  # Feb 1: reset
    # Feb 16: C is gone; A (flat) and B (grown b[44] / b[30] since Feb 1's rebalance) share all of it.
    growth_b = b[44] / b[30]
    assert on[day(45)] == pytest.approx({"A/USDT": 1 / (1 + growth_b), "B/USDT": growth_b / (1 + growth_b)})


def test_capped_targets_are_kept_when_members_leave_or_join_mid_month():
    """A's volume pins it at the 30% cap. When E leaves, its weight goes to the rest pro rata (the
    targets are not re-capped over the smaller set); F, joining, gets its own capped target of its
    first day and the others keep theirs."""
    cfg = SectorIndex(weightings=("equal", "capped"), max_weight=0.30)
    mcfg = Membership(min_history_days=1, min_dollar_volume_usd=0, dollar_volume_window_days=1)
    volume = {"A": 100e6, "B": 1e6, "C": 1e6, "D": 1e6, "E": 1e6, "F": 2e6}
    days = {"A": range(25, 41), "B": range(25, 41), "C": range(25, 41), "D": range(25, 41),
            "E": range(25, 36), "F": range(36, 41)}  # Jan 26 .. Feb 10; E's last day Feb 5, F's first Feb 6
    rows = [(f"{t}/USDT", d, 2.0 if t == "B" and d >= 31 else 1.0, volume[t]) for t in volume for d in days[t]]
    universe = tokens(*((t, "DeFi") for t in volume))
    members = membership(candles(rows), symbols(rows), mcfg)
    weights = sector_weights(members, sector_assignments(universe, cfg), cfg).filter(
        pl.col("sector") == "DeFi", pl.col("weighting") == "capped"
    )
    on = {
        d: {s.split("/")[0]: w for s, w in zip(g["symbol"], g["weight"])}
        for (d,), g in weights.collect().group_by("date")
    }
    # Feb 1 targets: A 30%, B-E 17.5% each. B doubles on Feb 1, so on Feb 2 it holds 35 of 117.5.
    assert on[day(31)] == pytest.approx({"A": 0.30, "B": 0.175, "C": 0.175, "D": 0.175, "E": 0.175})
    assert on[day(32)] == pytest.approx({"A": 0.30 / 1.175, "B": 0.35 / 1.175, "C": 0.175 / 1.175,
                                         "D": 0.175 / 1.175, "E": 0.175 / 1.175})
    # Feb 6: E gone, pro rata (re-capping the four would have pinned B at 30% as well).
    assert on[day(36)] == pytest.approx({"A": 0.30, "B": 0.35, "C": 0.175, "D": 0.175})
    # Feb 7: F's target of the day is 28% of 105M of size (A pinned, 70% over B, C, D 1M and F 2M),
    # the others' are Feb 1's, of 104M; F comes in against those, grown.
    held = {"A": 0.30 * 104, "B": 0.175 * 104 * 2, "C": 0.175 * 104, "D": 0.175 * 104, "F": 0.28 * 105}
    assert on[day(37)] == pytest.approx({t: v / sum(held.values()) for t, v in held.items()})


def test_capped_weights_are_fixed_for_the_month_on_data_known_at_the_rebalance():
    mcfg = Membership(min_history_days=1, min_dollar_volume_usd=0, dollar_volume_window_days=1)
    # B's volume jumps on Jan 15: its weight size moves only at the February rebalance, and to
    # the volume known at Jan 31's close.
    rows = [("A/USDT", d, 1.0, 100.0) for d in range(0, 40)]
    rows += [("B/USDT", d, 1.0, 100.0 if d < 14 else 300.0 + d) for d in range(0, 40)]
    m = membership(candles(rows), symbols(rows), mcfg).collect().filter(pl.col("symbol") == "B/USDT").sort("date")
    january = m.filter(pl.col("date").dt.month() == 1, "in_return")["score_usd"]
    february = m.filter(pl.col("date").dt.month() == 2)["score_usd"]
    assert set(january) == {100.0}
    assert set(february) == {300.0 + 30}  # Jan 31 is day 30


def test_every_sector_gets_the_btc_eth_and_alts_composites_to_compare_against():
    cfg = SectorIndex(weightings=("equal", "capped"))
    universe = tokens(("BTC", "Core"), ("ETH", "Core"), ("SOL", "Layer-1"), ("USDC", "Stable"))
    pairs = set(sector_assignments(universe, cfg).iter_rows())
    assert pairs == {
        ("BTC/USDT", "Core"), ("ETH/USDT", "Core"), ("SOL/USDT", "Layer-1"), ("USDC/USDT", "Stable"),
        ("BTC/USDT", "BTC"), ("ETH/USDT", "ETH"), ("SOL/USDT", "Alts"),
    }


# ------------------------------------------------------------------ relative strength


def rs_index(sector_levels: list[float], btc_levels: list[float]) -> pl.LazyFrame:
    n = len(sector_levels)
    dates = [day(i) for i in range(n)]
    return pl.LazyFrame(
        {
            "sector": ["S"] * n + ["BTC"] * n,
            "date": dates * 2,
            "weighting": ["capped"] * 2 * n,
            "level": sector_levels + btc_levels,
        }
    )


def test_rrg_turns_clockwise_through_all_four_quadrants_on_a_cycling_ratio():
    cfg = RelativeStrength(weighting="capped", smoothing_days=5, ratio_window_days=60, momentum_lookback_days=10)
    n = 600
    ratio = [100 * math.exp(0.1 * math.sin(2 * math.pi * t / 120)) for t in range(n)]
    btc = [100 * 1.002**t for t in range(n)]  # BTC trends up; the sector cycles around it
    rs = relative_strength(rs_index([r * b / 100 for r, b in zip(ratio, btc)], btc), "BTC", cfg).collect()
    assert rs["rs_vs_btc"].to_list() == pytest.approx(ratio)
    quadrants = rs["quadrant"].drop_nulls()
    assert set(quadrants) == set(QUADRANTS)
    # Clockwise: improving -> leading -> weakening -> lagging -> improving.
    clockwise = {("improving", "leading"), ("leading", "weakening"), ("weakening", "lagging"), ("lagging", "improving")}
    changes = {(a, b) for a, b in zip(quadrants[:-1], quadrants[1:]) if a != b}
    assert changes == clockwise
    # Warm-up: no RRG point until the ratio window and then the momentum lookback have filled.
    assert rs["rs_ratio"].null_count() == 59 and rs["rs_momentum"].null_count() == 69


def test_rs_momentum_is_the_rate_of_change_of_rs_ratio_and_momentum_columns_are_calendar_returns():
    cfg = RelativeStrength(weighting="capped", smoothing_days=1, ratio_window_days=3, momentum_lookback_days=2)
    sector = [100.0, 110, 121, 121, 133.1, 146.41, 146.41, 160]
    rs = relative_strength(rs_index(sector, [100.0] * len(sector)), "BTC", cfg).collect()
    ratio = rs["rs_ratio"]
    assert ratio[2] == pytest.approx(100 * 121 / ((100 + 110 + 121) / 3))
    assert rs["rs_momentum"][4] == pytest.approx(100 * ratio[4] / ratio[2])
    assert rs["rs_mom_7d_pct"][7] == pytest.approx(60.0)  # 160 vs 100 seven days earlier
    assert rs["rs_mom_7d_pct"][6] is None


def test_a_day_missing_from_the_index_does_not_shift_the_rrg_windows():
    # A day the quality gate held back is missing from marts.sector_index. The windows
    # still count days: with day 100's ratio equal to day 99's, leaving it out changes no other row.
    cfg = RelativeStrength(weighting="capped", smoothing_days=5, ratio_window_days=30, momentum_lookback_days=10)
    ratio = [100 * (1 + 0.1 * math.sin(t / 7)) for t in range(160)]
    ratio[100] = ratio[99]
    full = relative_strength(rs_index(ratio, [100.0] * len(ratio)), "BTC", cfg).collect()
    gap = relative_strength(rs_index(ratio, [100.0] * len(ratio)).filter(pl.col("date") != day(100)), "BTC", cfg)
    gap = gap.collect()
    assert gap["date"].to_list() == [d for d in full["date"] if d != day(100)]
    # rs_mom_7d_pct compares with the day exactly 7 earlier, which is now absent on day 107.
    rrg = ["rs_vs_btc", "rs_ratio", "rs_momentum", "quadrant"]
    assert_frame_equal(gap.select(rrg), full.filter(pl.col("date") != day(100)).select(rrg))
    assert gap.filter(pl.col("date") == day(107))["rs_mom_7d_pct"].to_list() == [None]


# ------------------------------------------------------------------ altcoin season


def test_altseason_counts_the_eligible_alts_beating_btc_over_the_window():
    cfg = Altseason(window_days=90, min_eligible=10)
    mcfg = Membership(min_history_days=1, min_dollar_volume_usd=0)
    specs = [("BTC", "Core"), ("USDC", "Stable"), ("NEW", "AI")] + [(f"ALT{i}", "DeFi") for i in range(12)]
    rows = [("BTC/USDT", d, 100.0 * (1.1 if d == 90 else 1.0), 1e6) for d in (0, 90)]
    rows += [("USDC/USDT", d, 1.0, 1e6) for d in (0, 90)]  # a stablecoin never counts
    rows += [("NEW/USDT", 90, 1.0, 1e6)]  # listed too recently to have a 90-day return
    rows += [(f"ALT{i}/USDT", d, 1.0 if d == 0 else (1.2 if i < 9 else 1.0), 1e6) for i in range(12) for d in (0, 90)]
    season = altseason(membership(candles(rows), symbols(rows), mcfg), tokens(*specs), cfg, SectorIndex()).collect()
    row = season.filter(pl.col("date") == day(90)).row(0, named=True)
    assert (row["n_eligible"], row["n_outperforming"]) == (12, 9)
    assert row["altseason_index"] == pytest.approx(75.0)
    assert row["season"] == "alt_season"
    assert row["btc_return_pct"] == pytest.approx(10.0)
    fewer = altseason(membership(candles(rows), symbols(rows), mcfg), tokens(*specs), Altseason(min_eligible=13), SectorIndex())
    assert fewer.collect()["altseason_index"].to_list() == [None]


# ------------------------------------------------------------------ funding


def _funding(rows: list[tuple]) -> pl.DataFrame:
    """(symbol, hours after 2024-01-01 00:00 UTC, funding_rate, interval_hours as stored) rows."""
    t0 = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
    return pl.DataFrame(
        [(s, t0 + dt.timedelta(hours=h), rate, stored) for s, h, rate, stored in rows],
        schema={"symbol": pl.String, "funding_time": pl.Datetime("us", "UTC"), "funding_rate": pl.Float64,
                "interval_hours": pl.Int32},
        orient="row",
    ).with_columns(exchange=pl.lit("binanceusdm"))


def test_funding_is_annualised_with_each_symbols_own_interval():
    rows = [("X/USDT:USDT", h, 0.0001, 8) for h in (0, 8, 16)]
    rows += [("Y/USDT:USDT", h, 0.0001, 4) for h in range(0, 20, 4)]
    rows += [("Y/USDT:USDT", 20, None, 4)]  # a settlement with no rate published
    costs = funding_costs(_funding(rows)).collect().sort("symbol")
    assert costs["settlements"].to_list() == [3, 5]
    assert costs["interval_hours"].to_list() == [8, 4]
    assert costs["funding_rate_sum"].to_list() == pytest.approx([0.0003, 0.0005])
    # 0.01% per 8h is 10.95% a year; the same rate every 4h is twice that, also over the 20 hours
    # whose rate Y published (the unpublished one is unknown, not zero).
    assert costs["funding_apr_pct"].to_list() == pytest.approx([10.95, 21.9])
    assert costs["funding_apr_7d_pct"].to_list() == pytest.approx([10.95, 21.9])
    # A day with a settlement but no published rate has no rate (not NaN, which would read as "hot").
    silent = _funding([("Z/USDT:USDT", 0, None, 8)])
    row = funding_costs(silent).collect().row(0, named=True)
    assert (row["settlements"], row["funding_apr_pct"], row["funding_apr_7d_pct"]) == (0, None, None)


def test_funding_intervals_come_from_the_settlements_not_the_stored_interval():
    # A perp that settled every 8h for two days, then moved to 4h; every row was fetched after the
    # move, so all are stored with the current 4h. Day 3 mixes both.
    rows = [("S/USDT:USDT", h, 0.0003, 4) for h in range(0, 48, 8)]  # 32.85% a year
    rows += [("S/USDT:USDT", h, 0.0001, 4) for h in (48, 56, 64, 68)]  # 8h, 8h, then 4h, 4h
    rows += [("S/USDT:USDT", h, 0.0001, 4) for h in range(72, 96, 4)]  # 4h: 21.9% a year
    # 1h perp missing its 05:00 settlement (quarantined): 06:00 still covers one hour, not two.
    rows += [("Q/USDT:USDT", h, 0.00001, 1) for h in range(24) if h != 5]
    costs = funding_costs(_funding(rows)).collect().sort("symbol", "date")
    q = costs.filter(pl.col("symbol") == "Q/USDT:USDT").row(0, named=True)
    assert (q["settlements"], q["interval_hours"]) == (23, 1)
    assert q["funding_apr_pct"] == pytest.approx(8.76)  # 0.001% an hour
    s = costs.filter(pl.col("symbol") == "S/USDT:USDT")
    assert s["interval_hours"].to_list() == [8, 8, 8, 4]
    # Day 1: the symbol's first settlement takes the stored 4h (nothing earlier tells), so 20 hours.
    # Day 3's settlements pay 4e-4 for the 28 hours from 40:00 to 68:00 (averaged per settlement
    # at their stored 4h it would read 43.8%).
    apr = [9e-4 / 20 * 876_000, 32.85, 4e-4 / 28 * 876_000, 21.9]
    assert s["funding_apr_pct"].to_list() == pytest.approx(apr)
    # The week, by time: the rates paid over the 20 + 24 + 28 + 24 hours.
    assert s["funding_apr_7d_pct"][-1] == pytest.approx(2.8e-3 / 96 * 876_000)


def test_funding_gaps_jitter_and_a_restored_interval_and_no_look_ahead():
    ms = 1 / 3_600_000  # an hour's fraction: exchanges stamp settlements a few ms late
    # 4h perp, stored 4h, with jitter, missing 04:00 and 12:00 of day 2: its four settlements
    # cover 16 hours, not 24 (each gap stretches only the spacing, not the interval).
    rows = [("G/USDT:USDT", h + (h % 5) * ms, 0.0001, 4) for h in range(0, 48, 4) if h not in (28, 36)]
    # 1h for a day, then back to the 8h it is stored with (exchanges shorten, then restore); from
    # 23:00 the day before, as a symbol's first settlement takes the stored interval.
    rows += [("R/USDT:USDT", h, 0.00001, 8) for h in range(-1, 25)] + [("R/USDT:USDT", h, 0.00008, 8) for h in (32, 40)]
    costs = funding_costs(_funding(rows)).collect().sort("symbol", "date")
    g = costs.filter(pl.col("symbol") == "G/USDT:USDT")
    assert g["interval_hours"].to_list() == [4, 4]
    assert g["funding_apr_pct"][1] == pytest.approx(21.9)
    r = costs.filter(pl.col("symbol") == "R/USDT:USDT")
    assert r["interval_hours"].to_list() == [8, 1, 8]
    # Day 2: 00:00 covers the last hour of day 1, 08:00 and 16:00 eight hours each: 0.001% an hour.
    assert r["funding_apr_pct"][1:].to_list() == pytest.approx([8.76, 8.76])
    # A day's figures read no settlement after it.
    for cut in (10, 24, 30, 33):
        cut_day = (dt.datetime(2024, 1, 1) + dt.timedelta(hours=cut)).date()
        early = funding_costs(_funding([x for x in rows if x[1] < cut])).collect()
        assert_frame_equal(
            early.filter(pl.col("date") < cut_day).sort("symbol", "date"), costs.filter(pl.col("date") < cut_day)
        )


# ------------------------------------------------------------------ market phase


EVIDENCE_DEFAULTS = dict(
    btc_trend_pct=10.0, btc_momentum_pct=2.0, btc_volatility_pct=40.0, btc_dominance_pct=55.0,
    btc_dominance_trend=0.0, altseason_index=50.0, alts_vs_btc_pct=0.0, platform_lead_pct=0.0,
    tvl_growth_30d=0.0, btc_funding_apr_pct=10.0,
)
MARKETS = {
    "bear": dict(btc_trend_pct=-15.0, btc_momentum_pct=-12.0, btc_funding_apr_pct=-5.0),
    "peak_consolidation": dict(btc_trend_pct=20.0, btc_volatility_pct=85.0, alts_vs_btc_pct=1.0),
    "altcoin_surge": dict(alts_vs_btc_pct=15.0, altseason_index=85.0, platform_lead_pct=6.0, btc_funding_apr_pct=45.0),
    "narrative_rotation": dict(alts_vs_btc_pct=9.0, altseason_index=80.0, platform_lead_pct=-12.0),
    "btc_dominance": dict(btc_trend_pct=-5.0, btc_momentum_pct=6.0, alts_vs_btc_pct=-9.0, btc_dominance_trend=2.5,
                          altseason_index=15.0),
}


def features(days: list[dict]) -> pl.LazyFrame:
    rows = [{"date": day(i), **EVIDENCE_DEFAULTS, **d, "leading_sector": None, "missing_inputs": ""}
            for i, d in enumerate(days)]
    return pl.LazyFrame(rows, schema_overrides={"leading_sector": pl.String})


@pytest.mark.parametrize("phase", list(MARKETS))
def test_each_phase_is_reached_on_a_market_built_for_it(phase):
    cfg = Regime(confirm_days=3)
    regime = market_regime(features([MARKETS[phase]] * 4), cfg).collect()
    assert regime["raw_phase"].to_list() == [phase] * 4
    assert regime["phase"].to_list() == [None, None, phase, phase]  # confirmed on the 3rd day
    assert regime["days_in_phase"].to_list() == [None, None, 1, 2]
    assert regime["risk_mode"][-1] == ("risk_off" if phase in ("bear", "peak_consolidation") else "risk_on")


def test_btc_below_trend_with_defi_tvl_draining_is_a_bear_even_before_price_momentum_turns():
    draining = dict(btc_trend_pct=-3.0, btc_momentum_pct=1.0, btc_funding_apr_pct=8.0, tvl_growth_30d=-0.18)
    holding = dict(draining, tvl_growth_30d=-0.02)
    regime = market_regime(features([draining, holding]), Regime(confirm_days=1)).collect()
    assert regime["raw_phase"].to_list() == ["bear", "btc_dominance"]


def test_alts_winning_below_btcs_trend_is_a_bear_rally_not_an_alt_season():
    """2022 read narrative_rotation and altcoin_surge with BTC 20-50% below its 200-day average; the
    playbook went long alts into the next leg down (issue 23). Alts winning counts only above the trend."""
    surge = MARKETS["altcoin_surge"]
    rally = dict(surge, btc_trend_pct=-25.0, btc_momentum_pct=8.0)  # a bounce far below the trend
    rotation_rally = dict(MARKETS["narrative_rotation"], btc_trend_pct=-0.5)
    regime = market_regime(features([surge, rally, rotation_rally, dict(rally, btc_trend_pct=0.0)]),
                           Regime(confirm_days=1)).collect()
    assert regime["raw_phase"].to_list() == ["altcoin_surge", "btc_dominance", "btc_dominance", "altcoin_surge"]


def test_a_new_phase_needs_confirm_days_in_a_row_so_noise_does_not_flip_it():
    raw = ["bear"] * 6 + ["altcoin_surge"] * 4 + ["bear"] * 2 + ["altcoin_surge"] * 5
    phase = pl.DataFrame({"raw": raw}).select(with_hysteresis(pl.col("raw"), 5))["raw"].to_list()
    assert phase == [None] * 4 + ["bear"] * 12 + ["altcoin_surge"]


def test_confirmation_and_days_in_phase_count_days_across_a_day_missing_from_the_inputs():
    cfg = Regime(confirm_days=3)
    market = features([MARKETS["bear"]] * 8)
    full = market_regime(market, cfg).collect()
    gap = market_regime(market.filter(pl.col("date") != day(1)), cfg).collect()
    assert full["phase"].to_list() == [None, None] + ["bear"] * 6
    # Day 1 is absent; day 2 is still the third day of the bear and its fifth day is day 6.
    assert_frame_equal(gap, full.filter(pl.col("date") != day(1)))
    assert gap.filter(pl.col("date") == day(6))["days_in_phase"].to_list() == [5]


def test_missing_evidence_is_named_and_does_not_block_the_phase():
    day_without = dict(MARKETS["bear"], btc_funding_apr_pct=None, tvl_growth_30d=None)
    regime = market_regime(features([day_without] * 5), Regime(confirm_days=1)).collect()
    assert regime["phase"].to_list() == ["bear"] * 5
    assert regime["funding_regime"].to_list() == [None] * 5


def test_a_day_missing_from_the_btc_index_does_not_shift_its_trend_and_volatility_windows():
    cfg = Regime(btc_trend_days=20, btc_volatility_days=10, btc_momentum_days=5)
    level = [100 * math.exp(0.01 * t + 0.05 * math.sin(t / 3)) for t in range(60)]
    level[40] = level[39]  # so that leaving day 40 out changes nothing the windows see

    def evidence(btc: pl.DataFrame) -> pl.DataFrame:
        none = {"date": pl.Date}
        return market_features(
            btc_level=btc.lazy(),
            dominance=pl.LazyFrame(schema={**none, "btc_dominance_pct": pl.Float64}),
            altseason=pl.LazyFrame(schema={**none, "altseason_index": pl.Float64}),
            relative_strength=pl.LazyFrame(schema={"sector": pl.String, **none, "rs_mom_30d_pct": pl.Float64}),
            tvl=pl.LazyFrame(schema={"scope": pl.String, "name": pl.String, **none, "tvl_usd": pl.Float64}),
            btc_funding=pl.LazyFrame(schema={**none, "funding_apr_pct": pl.Float64}),
            alts_sector="Alts",
            cfg=cfg,
        ).collect()

    btc = pl.DataFrame({"date": [day(t) for t in range(60)], "level": level})
    full, gap = evidence(btc), evidence(btc.filter(pl.col("date") != day(40)))
    windows = ["date", "btc_trend_pct", "btc_volatility_pct"]
    assert_frame_equal(gap.select(windows), full.filter(pl.col("date") != day(40)).select(windows))
    assert full["btc_trend_pct"].null_count() == 19 and full["btc_volatility_pct"].null_count() == 10
    # Momentum compares with the day exactly 5 earlier, which day 45 no longer has.
    assert gap.filter(pl.col("date") == day(45))["btc_momentum_pct"].to_list() == [None]


def test_config_overrides_come_from_yaml_and_bad_values_are_named(tmp_path):
    good = tmp_path / "analytics.yaml"
    good.write_text("regime:\n  confirm_days: 9\nmembership:\n  min_history_days: 60\n")
    cfg = load_analytics_config(good)
    assert (cfg.regime.confirm_days, cfg.membership.min_history_days) == (9, 60)
    assert cfg.sector_index == AnalyticsConfig().sector_index  # the rest keeps its defaults
    bad = tmp_path / "bad.yaml"
    bad.write_text("sector_index:\n  max_weight: 1.5\n")
    with pytest.raises(AnalyticsConfigError, match=r"bad.yaml: sector_index.max_weight"):
        load_analytics_config(bad)
    typo = tmp_path / "typo.yaml"
    typo.write_text("regime:\n  confirm_dayz: 3\n")
    with pytest.raises(AnalyticsConfigError, match="confirm_dayz"):
        load_analytics_config(typo)
