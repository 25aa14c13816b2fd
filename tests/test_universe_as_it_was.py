"""The universe as it was: selection by market-cap rank with a buffer, point-in-time membership with
the coins that died, and no look-ahead; through the functions the assets call (`ranking`,
`membership`, `universe_membership`, `compute_marts`)."""

from __future__ import annotations

import datetime as dt

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from pipeline.sources.replay.synthetic import COLLAPSES, DELISTED, LISTED_LATE
from pipeline.taxonomy import parse_taxonomy
from pipeline.transforms.chain import compute_marts
from pipeline.transforms.config import AnalyticsConfig, Membership
from pipeline.transforms.membership import membership
from pipeline.transforms.ranking import coin_ranks, point_in_time, symbol_ranks
from pipeline.transforms.universe_membership import universe_membership
from tests.conftest import raw_frames, ranked_universe

SECTORS = ["Core", "Layer-1", "Layer-2", "DeFi", "Infrastructure", "AI", "Gaming", "Memes"]
FIRSTS = [dt.date(2024, m, 1) for m in range(1, 8)]


def _taxonomy(coins: dict) -> object:
    return parse_taxonomy({"sectors": SECTORS, "categories": [{"category": "Meme", "sector": "Memes"}],
                           "coins": coins})


def _caps(rows: list[tuple[dt.date, str, float]]) -> pl.DataFrame:
    """raw.market_caps rows of CoinMarketCap: (day, ticker, cap); the ticker is the name and the slug."""
    return pl.DataFrame(
        [("coinmarketcap", d, t.lower(), t, t, 0, cap) for d, t, cap in rows],
        schema={"source": pl.String, "date": pl.Date, "coin": pl.String, "symbol": pl.String, "name": pl.String,
                "rank": pl.Int32, "market_cap_usd": pl.Float64},
        orient="row",
    )


NO_CATEGORIES = pl.DataFrame(schema={"source": pl.String, "coin": pl.String, "category": pl.String})
NONE_CATEGORISED = pl.DataFrame(schema={"coin": pl.String, "sector": pl.String, "exclude": pl.String})


def test_a_coin_enters_at_the_top_n_and_leaves_only_past_the_exit_rank():
    """top_n 3, exit_rank 4: X at ranks 3, 4, 5, 4, 3 then absent is in, in (buffer), out, still out
    (it must climb back to 3), in, out (a row with no rank where it dropped out of the snapshot)."""
    place = [3, 4, 5, 4, 3, None]
    rows = []
    for day, p in zip(FIRSTS, place, strict=False):
        others = [f"F{i}" for i in range(1, 7)]
        if p is not None:
            others.insert(p - 1, "X")
        rows += [(day, t, 1000.0 - 10 * i) for i, t in enumerate(others)]
    taxonomy = _taxonomy({"x": {"sector": "DeFi", "cmc": [{"symbol": "X", "name": "X"}], "spot": ["X/USDT"]}})
    ranks = coin_ranks(_caps(rows), taxonomy.aliases_frame(), taxonomy.coins_frame(), NONE_CATEGORISED, "bitcoin",
                       Membership(top_n=3, exit_rank=4))
    x = ranks.filter(pl.col("coin") == "x").sort("date")
    assert x["date"].to_list() == FIRSTS[:6]
    assert x["rank"].to_list() == [3, 4, 5, 4, 3, None]
    assert x["ranked_in"].to_list() == [True, True, False, False, True, False]
    # the others are unknown to the taxonomy: keyed by the vendor's id, no sector
    assert ranks.filter(pl.col("coin") == "coinmarketcap:f1")["sector"].null_count() == 6


def _candles(symbol: str, first: dt.date, last: dt.date, price: float = 1.0) -> pl.DataFrame:
    days = pl.date_range(first, last, "1d", eager=True)
    return pl.DataFrame({"exchange": "binance", "symbol": symbol, "date": days, "open": price, "high": price,
                         "low": price, "close": price, "volume": 1e7})


def test_membership_follows_the_rank_and_a_mid_month_delisting_leaves_at_its_last_close():
    """Y ranks in from January; Z is delisted on March 17 (its ranking still holds it on April 1, as a
    vendor's does for a while). Y and Z are members from the listing age on; Z's last member day is
    its last candle, and it has no row after it but the snapshot's `no candle`. W, ranked 40th of
    30 selected, never enters; its rows say `not_ranked`."""
    cfg = Membership(top_n=30, exit_rank=35, min_history_days=10, min_dollar_volume_usd=1e6)
    taxonomy = _taxonomy({c: {"sector": "DeFi", "cmc": [{"symbol": c.upper(), "name": c.upper()}],
                              "spot": [f"{c.upper()}/USDT"]} for c in ("y", "z", "w")})
    rows = []
    for day in FIRSTS[:4]:
        filler = [(day, f"F{i}", 5000.0 - i) for i in range(1, 40)]
        rows += [*filler, (day, "Y", 9000.0), (day, "Z", 8000.0), (day, "W", 4000.0 - 40)]
    ranks = coin_ranks(_caps(rows), taxonomy.aliases_frame(), taxonomy.coins_frame(), NONE_CATEGORISED, "bitcoin", cfg)
    symbols = symbol_ranks(ranks, taxonomy.spot_frame())
    candles = pl.concat([
        _candles("Y/USDT", dt.date(2024, 1, 1), dt.date(2024, 4, 30)),
        _candles("Z/USDT", dt.date(2024, 1, 1), dt.date(2024, 3, 17)),
        _candles("W/USDT", dt.date(2024, 1, 1), dt.date(2024, 4, 30)),
    ])
    members = membership(candles, ["W/USDT", "Y/USDT", "Z/USDT"], cfg, symbols).collect()
    tokens = pl.DataFrame({"token": ["W", "Y", "Z"], "symbol": ["W/USDT", "Y/USDT", "Z/USDT"], "sector": "DeFi",
                           "bucket": "speculative", "perp": None, "coin": ["w", "y", "z"]},
                          schema_overrides={"perp": pl.String})
    rows = universe_membership(members, tokens, ranks, ["BTC", "ETH"], cfg)
    member = rows.filter(pl.col("member"))
    assert member.filter(pl.col("coin") == "y")["date"].min() == dt.date(2024, 1, 10)  # listing age 10 days
    assert member.filter(pl.col("coin") == "z")["date"].max() == dt.date(2024, 3, 17)  # its last close
    after = rows.filter((pl.col("coin") == "z") & (pl.col("date") > dt.date(2024, 3, 17)))
    assert after["reason"].to_list() == ["no candle"] and after["date"].to_list() == [dt.date(2024, 4, 1)]
    w = rows.filter(pl.col("coin") == "w")
    assert not w["member"].any() and set(w.filter(pl.col("date") >= dt.date(2024, 1, 10))["reason"]) == {"not_ranked"}
    assert w["rank"].drop_nulls().unique().to_list() == [42]  # 39 fillers, Y and Z above it


def test_a_coin_outside_the_taxonomy_gets_its_sector_from_its_categories_or_none():
    """Two coins the taxonomy does not list reach the ranking through CoinGecko: one whose recorded
    categories map to a sector becomes a token (its pair guessed from its ticker), one with none is
    ranked with no sector and is never a member."""
    taxonomy = _taxonomy({"bitcoin": {"sector": "Core", "cmc": [{"symbol": "BTC", "name": "Bitcoin"}],
                                      "spot": ["BTC/USDT"]}})
    caps = pl.DataFrame(
        [("coingecko", FIRSTS[0], "bitcoin", "BTC", "Bitcoin", 1, 1e12),
         ("coingecko", FIRSTS[0], "newdog", "NEWDOG", "New Dog", 2, 1e9),
         ("coingecko", FIRSTS[0], "mystery", "MYS", "Mystery", 3, 5e8)],
        schema={"source": pl.String, "date": pl.Date, "coin": pl.String, "symbol": pl.String, "name": pl.String,
                "rank": pl.Int32, "market_cap_usd": pl.Float64}, orient="row")
    categories = pl.DataFrame({"source": ["coingecko"], "coin": ["newdog"], "category": ["Meme"]})
    fixed = pl.DataFrame({"token": ["BTC"], "symbol": ["BTC/USDT"], "sector": ["Core"], "bucket": ["core"],
                          "perp": [None]}, schema_overrides={"perp": pl.String})
    pit = point_in_time(caps, categories, fixed, taxonomy, AnalyticsConfig())
    assert pit.fallback is None
    newdog = pit.tokens.filter(pl.col("coin") == "coingecko:newdog").row(0, named=True)
    assert (newdog["token"], newdog["symbol"], newdog["sector"]) == ("NEWDOG", "NEWDOG/USDT", "Memes")
    mystery = pit.ranks.filter(pl.col("coin") == "coingecko:mystery").row(0, named=True)
    assert mystery["sector"] is None and mystery["ranked_in"]
    assert "coingecko:mystery" not in pit.tokens["coin"].to_list()
    cfg = pit.config.membership
    members = membership(pl.concat([_candles("BTC/USDT", FIRSTS[0], FIRSTS[1]), _candles("NEWDOG/USDT", FIRSTS[0], FIRSTS[1])]),
                         pit.tokens["symbol"], cfg, pit.symbol_ranks).collect()
    rows = universe_membership(members, pit.tokens, pit.ranks, ["BTC", "ETH"], cfg)
    assert rows.filter(pl.col("coin") == "coingecko:mystery")["reason"].to_list() == ["no sector"]
    assert rows.filter(pl.col("coin") == "coingecko:newdog")["sector"].unique().to_list() == ["Memes"]


def test_without_market_caps_the_fixed_list_is_the_universe_and_says_why():
    fixed = pl.DataFrame({"token": ["BTC"], "symbol": ["BTC/USDT"], "sector": ["Core"], "bucket": ["core"],
                          "perp": [None]}, schema_overrides={"perp": pl.String})
    taxonomy = _taxonomy({"bitcoin": {"sector": "Core", "cmc": [{"symbol": "BTC", "name": "Bitcoin"}], "spot": ["BTC/USDT"]}})
    pit = point_in_time(_caps([]), NO_CATEGORIES, fixed, taxonomy, AnalyticsConfig())
    assert pit.ranks is None and pit.symbol_ranks is None and "no market caps" in pit.fallback
    assert pit.tokens["symbol"].to_list() == ["BTC/USDT"]
    assert "mcap_capped" not in pit.config.sector_index.weightings and pit.config.relative_strength.weighting == "capped"


@pytest.fixture(scope="module")
def reference_marts(reference_market):
    from pipeline.sources.replay.dataset import load_dataset

    dataset = load_dataset(reference_market)
    pit = ranked_universe(dataset)
    return dataset, pit, compute_marts(raw_frames(dataset), pit.tokens, pit.config, pit.symbol_ranks, pit.ranks)


def test_the_synthetic_markets_dead_coins_count_while_they_trade_and_leave_at_their_last_close(reference_marts):
    dataset, pit, marts = reference_marts
    universe = marts["marts.universe_membership"]
    candles = pl.concat([dataset.ohlcv, dataset.ohlcv_delisted])
    in_sectors = set(pit.tokens["symbol"])
    left_at_last_close = 0
    for pair in DELISTED:
        last = candles.filter(pl.col("symbol") == pair)["date"].max()
        rows = universe.filter(pl.col("symbol") == pair).sort("date")
        assert rows.filter(pl.col("date") > last)["reason"].is_in(["no candle"]).all(), pair
        if pair not in in_sectors:  # (FTT: an exchange token, in no sector)
            continue
        left = rows.filter(pl.col("member"))["date"].max()
        if left == last:
            left_at_last_close += 1
        else:  # a collapsed coin falls out of the ranking (or below the volume floor) before it stops trading
            assert left < last and rows.filter(pl.col("date") > left)["reason"].is_in(["not_ranked", "low_volume"]).all(), pair
    assert left_at_last_close >= 3
    # a collapse stays in its index's history: LUNA (and most of the others) is a member on the day
    # its close first falls below a tenth of its peak (a small one may have left the ranking before)
    crashed_as_member = []
    for pair in COLLAPSES:
        if pair not in in_sectors:
            continue
        closes = candles.filter(pl.col("symbol") == pair).sort("date")
        crashed = closes.filter(pl.col("close") < closes["close"].max() * 0.1)["date"].min()
        if universe.filter((pl.col("symbol") == pair) & (pl.col("date") == crashed))["member"].item():
            crashed_as_member.append(pair)
    assert "LUNA/USDT" in crashed_as_member and len(crashed_as_member) >= 2


def test_coins_listed_later_enter_after_their_listing_age_and_only_ranked(reference_marts):
    dataset, pit, marts = reference_marts
    universe, cfg = marts["marts.universe_membership"], pit.config.membership
    candles = pl.concat([dataset.ohlcv, dataset.ohlcv_delisted])
    for pair in LISTED_LATE:
        listed = candles.filter(pl.col("symbol") == pair)["date"].min()
        joined = universe.filter((pl.col("symbol") == pair) & pl.col("member"))
        assert listed > dataset.first_date, pair
        assert joined["date"].min() >= listed + dt.timedelta(days=cfg.min_history_days - 1), pair
    members = universe.filter(pl.col("member"))
    assert members["rank"].max() <= cfg.exit_rank and members["rank"].null_count() == 0
    assert set(members["bucket"]) == {"core", "mid", "speculative"}
    assert members.filter(pl.col("bucket") == "mid")["rank"].max() <= cfg.mid_max_rank


def test_the_market_cap_index_and_the_altcoin_season_use_the_ranking(reference_marts):
    _, pit, marts = reference_marts
    index = marts["marts.sector_index"]
    assert set(index["weighting"]) == {"equal", "capped", "mcap_capped"}
    season = marts["marts.altseason"].drop_nulls("altseason_index")
    assert season.height > 300 and season["n_eligible"].max() <= pit.config.altseason.top_n


@pytest.fixture(scope="module")
def real_marts(real):
    pit = ranked_universe(real)
    return compute_marts(raw_frames(real), pit.tokens, pit.config, pit.symbol_ranks, pit.ranks)


def test_on_the_real_history_2022_01_01_counts_the_coins_that_died_and_none_after_its_last_trade(real, real_marts):
    """The README's query for 2022-01-01: each sector's members with rank and cap, LUNA (rank 9) and
    WAVES among them; and no coin is a member on a day after its last recorded candle."""
    universe = real_marts["marts.universe_membership"]
    day = universe.filter((pl.col("date") == dt.date(2022, 1, 1)) & pl.col("member"))
    luna = day.filter(pl.col("coin") == "terra-luna").row(0, named=True)
    assert (luna["sector"], luna["symbol"], luna["rank"], luna["bucket"]) == ("Layer-1", "LUNA/USDT", 9, "mid")
    assert {"waves", "matic-network"} <= set(day["coin"]) and day["market_cap_usd"].null_count() == 0
    assert set(day["sector"]) == {"Core", "Layer-1", "Layer-2", "DeFi", "Infrastructure", "AI", "Gaming", "Memes"}
    last = pl.concat([real.ohlcv, real.ohlcv_delisted]).group_by("symbol").agg(pl.col("date").max().alias("last"))
    late = universe.filter(pl.col("member")).join(last, on="symbol").filter(pl.col("date") > pl.col("last"))
    assert late.is_empty()
    assert universe.filter((pl.col("coin") == "terra-luna") & pl.col("member") & (pl.col("symbol") == "LUNA/USDT"))[
        "date"].max() == dt.date(2022, 5, 13)  # the collapse's last recorded candle


@pytest.mark.parametrize("cutoff", [dt.date(2022, 6, 30)])
def test_no_look_ahead_the_universe_indices_and_altseason_up_to_a_day(real, real_marts, cutoff):
    """Computed from the market caps and candles up to `cutoff`, and from all of them: membership,
    the market-cap index and the altcoin season up to `cutoff` are the same."""
    full = real_marts
    early_pit = ranked_universe(real, until=cutoff)
    early = compute_marts(raw_frames(real, until=cutoff), early_pit.tokens, early_pit.config,
                          early_pit.symbol_ranks, early_pit.ranks)
    for table in ("marts.universe_membership", "marts.sector_index", "marts.altseason"):
        key = {"marts.universe_membership": ["date", "coin"], "marts.sector_index": ["sector", "date", "weighting"],
               "marts.altseason": ["date"]}[table]
        want = full[table].filter(pl.col("date") <= cutoff).sort(key)
        assert want.height > 600, table
        assert_frame_equal(early[table].sort(key), want, rel_tol=1e-12)


def test_a_fixed_list_token_the_taxonomy_lacks_is_ranked_under_its_ticker():
    """A user adds NEWL to universe.yaml before the taxonomy knows it: the vendors' rows of its ticker
    (any name) rank it, in the sector the fixed list gives it, so that it can be a member."""
    taxonomy = _taxonomy({"bitcoin": {"sector": "Core", "cmc": [{"symbol": "BTC", "name": "Bitcoin"}],
                                      "spot": ["BTC/USDT"]}})
    fixed = pl.DataFrame({"token": ["BTC", "NEWL"], "symbol": ["BTC/USDT", "NEWL/USDT"], "sector": ["Core", "AI"],
                          "bucket": ["core", "speculative"], "perp": [None, None], "coingecko": ["bitcoin", "new-l"]},
                         schema_overrides={"perp": pl.String})
    caps = _caps([(FIRSTS[0], "BTC", 1e12), (FIRSTS[0], "NEWL", 1e9)]).with_columns(
        name=pl.when(pl.col("symbol") == "BTC").then(pl.lit("Bitcoin")).otherwise(pl.lit("New L Protocol")))
    pit = point_in_time(caps, NO_CATEGORIES, fixed, taxonomy, AnalyticsConfig())
    newl = pit.ranks.filter(pl.col("coin") == "new-l").row(0, named=True)
    assert (newl["rank"], newl["sector"], newl["ranked_in"]) == (2, "AI", True)
    assert pit.symbol_ranks.filter(pl.col("symbol") == "NEWL/USDT")["coin"].to_list() == ["new-l"]
