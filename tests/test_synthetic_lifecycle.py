"""The synthetic market's life cycle: monthly market-cap rankings like CoinMarketCap's, and tokens with
real dead coins' identities that collapse, are delisted or list late, as in the real bundle."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import polars as pl
import pytest

from pipeline.sources.replay.synthetic import (
    COLLAPSES,
    DEAD_TOKENS,
    DELISTED,
    LISTED_LATE,
    UNTRADED,
    generate,
)
from pipeline.taxonomy import load_taxonomy
from pipeline.universe import load_universe

AS_OF = dt.date(2025, 8, 2)
# The real bundle's columns and dtypes (../shared/data/real/README.md), plus the CoinGecko id.
MARKET_CAPS_SCHEMA = {
    "snapshot_date": pl.Date, "rank": pl.Int32, "symbol": pl.String, "name": pl.String,
    "market_cap_usd": pl.Float64, "price_usd": pl.Float64, "circulating_supply": pl.Float64,
    "volume_24h_usd": pl.Float64, "coingecko_id": pl.String,
}
OHLCV_SCHEMA = {
    "exchange": pl.String, "symbol": pl.String, "date": pl.Date, "open": pl.Float64, "high": pl.Float64,
    "low": pl.Float64, "close": pl.Float64, "volume": pl.Float64,
}
LIFE_CYCLE_PAIRS = {t.pair for t in DEAD_TOKENS}


@pytest.fixture(scope="module")
def market(tmp_path_factory) -> Path:
    return generate(tmp_path_factory.mktemp("lifecycle") / "synthetic", AS_OF, seed=7)


def _read(path: Path, name: str) -> pl.DataFrame:
    return pl.read_parquet(path / f"{name}.parquet")


def _firsts_of_months(path: Path) -> list[dt.date]:
    """Every first of a month from the history's first day to the day before the as-of."""
    start = _read(path, "ohlcv_1d")["date"].min()
    days = pl.date_range(start, AS_OF - dt.timedelta(days=1), "1d", eager=True)
    return days.filter(days.dt.day() == 1).to_list()


def _spans(candles: pl.DataFrame) -> pl.DataFrame:
    return candles.group_by("symbol").agg(first=pl.col("date").min(), last=pl.col("date").max(), days=pl.len())


def test_the_files_have_the_real_bundles_schema(market):
    assert dict(_read(market, "market_caps_monthly").schema) == MARKET_CAPS_SCHEMA
    assert dict(_read(market, "ohlcv_1d_delisted").schema) == OHLCV_SCHEMA == dict(_read(market, "ohlcv_1d").schema)


def test_every_snapshot_is_a_top_200_ranked_by_cap_with_btc_first(market):
    caps = _read(market, "market_caps_monthly")
    per_snapshot = caps.group_by("snapshot_date").agg(
        rows=pl.len(),
        ranks=pl.col("rank").sort(),
        by_cap=pl.col("rank").sort_by("market_cap_usd", descending=True),
        symbols=pl.col("symbol").n_unique(),
        first=pl.col("symbol").sort_by("rank").first(),
    )
    assert sorted(per_snapshot["snapshot_date"]) == _firsts_of_months(market)
    for row in per_snapshot.iter_rows(named=True):
        assert row["rows"] == row["symbols"] == 200
        assert row["ranks"] == row["by_cap"] == list(range(1, 201))
        assert row["first"] == "BTC"
    eth = caps.filter(pl.col("symbol") == "ETH")["rank"]
    assert eth.len() == per_snapshot.height and eth.max() <= 3


def test_snapshots_are_firsts_of_months_known_before_the_as_of(market):
    dates = _read(market, "market_caps_monthly")["snapshot_date"].unique().sort()
    assert dates.to_list() == _firsts_of_months(market)
    assert dates.max() == dt.date(2025, 8, 1) < AS_OF
    # A snapshot dated on the as-of day would describe a close not yet known: none is written.
    on_a_first = generate(market.parent / "on-a-first", dt.date(2025, 8, 1), seed=7)
    assert _read(on_a_first, "market_caps_monthly")["snapshot_date"].max() == dt.date(2025, 7, 1)


def test_caps_are_supply_times_the_snapshot_days_close(market):
    caps = _read(market, "market_caps_monthly").with_columns(pair=pl.col("symbol") + "/USDT")
    candles = pl.concat([_read(market, "ohlcv_1d"), _read(market, "ohlcv_1d_delisted")])
    traded = caps.join(candles, left_on=["pair", "snapshot_date"], right_on=["symbol", "date"])
    assert traded.height > 40 * len(_firsts_of_months(market))
    assert ((traded["price_usd"] / traded["close"] - 1).abs() < 1e-12).all()
    implied = traded["circulating_supply"] * traded["close"]
    assert ((traded["market_cap_usd"] / implied - 1).abs() < 1e-9).all()
    assert ((traded["volume_24h_usd"] / (traded["close"] * traded["volume"]) - 1).abs() < 1e-9).all()


def test_names_and_ids_are_coinmarketcaps_and_the_universes(market):
    caps = _read(market, "market_caps_monthly")
    names = dict(caps.select("symbol", "name").unique().iter_rows())
    ids = dict(caps.select("symbol", "coingecko_id").unique().iter_rows())
    assert len(names) == len(ids) == caps["symbol"].n_unique()
    assert names["BTC"] == "Bitcoin" and names["BNB"] == "BNB" and names["POL"] == "POL (prev. MATIC)"
    for token in load_universe().tokens:
        assert ids.get(token.name, token.coingecko) == token.coingecko
    assert (names["LUNC"], ids["LUNC"]) == ("Terra Classic", "terra-luna")  # LUNA/USDT: CMC lists Terra Classic so
    assert (names["FTT"], ids["FTT"]) == ("FTX Token", "ftx-token")
    fillers = [symbol for symbol in names if symbol.startswith("SYN")]
    assert len(fillers) > 100
    for symbol in fillers:
        number = int(symbol.removeprefix("SYN"))
        assert (names[symbol], ids[symbol]) == (f"Synthetic Filler {number}", f"synthetic-filler-{number}")


def test_the_taxonomy_knows_the_dead_coins_and_classifies_them_as_they_move():
    coins = {row["coin"]: row for row in load_taxonomy().coins_frame().iter_rows(named=True)}
    for token in DEAD_TOKENS:
        coin = coins[token.coingecko]
        assert coin["sector"] == token.follows, token.symbol
        assert (coin["exclude"] is None) == (token.follows is not None), token.symbol
    for coin in UNTRADED:
        if coin.coingecko in coins:
            assert coins[coin.coingecko]["exclude"] in ("stablecoin", "wrapped", "exchange_token"), coin.symbol


def test_stablecoins_and_wrapped_coins_rank_like_real_ones(market):
    caps = _read(market, "market_caps_monthly")
    snapshots = len(_firsts_of_months(market))
    ranks = caps.group_by("symbol").agg(pl.col("rank").max(), pl.len())
    worst = dict(ranks.select("symbol", "rank").iter_rows())
    assert worst["USDT"] <= 10 and worst["USDC"] <= 20 and worst["DAI"] <= 40
    for coin in UNTRADED:
        assert ranks.filter(pl.col("symbol") == coin.symbol)["len"][0] == snapshots, coin.symbol
    stable = caps.filter(pl.col("symbol").is_in(["USDT", "USDC", "DAI"]))["price_usd"]
    assert ((stable - 1).abs() < 0.005).all()
    btc = caps.filter(pl.col("symbol") == "BTC").select("snapshot_date", btc="price_usd")
    wbtc = caps.filter(pl.col("symbol") == "WBTC").join(btc, on="snapshot_date")
    assert wbtc.height == snapshots and ((wbtc["price_usd"] / wbtc["btc"] - 1).abs() < 0.01).all()


def test_the_ranking_fits_inside_the_whole_markets_cap(market):
    share = (
        _read(market, "market_caps_monthly")
        .group_by("snapshot_date")
        .agg(pl.col("market_cap_usd").sum())
        .join(_read(market, "btc_dominance_1d"), left_on="snapshot_date", right_on="date")
        .select(share=pl.col("market_cap_usd") / pl.col("total_market_cap_usd"))["share"]
    )
    assert share.len() == len(_firsts_of_months(market)) and 0.85 < share.min() and share.max() < 1


def test_collapses_fall_over_90_percent_and_keep_printing_tiny_closes(market):
    candles = _read(market, "ohlcv_1d_delisted").sort("symbol", "date")
    assert len(COLLAPSES) >= 4 and min(COLLAPSES.values()) > 0.9
    in_sectors = [t for t in DEAD_TOKENS if t.pair in COLLAPSES and t.follows]
    assert len(in_sectors) >= 3
    for pair in COLLAPSES:
        closes = candles.filter(pl.col("symbol") == pair)["close"]
        assert 1 - (closes / closes.cum_max()).min() > 0.9, pair
        after_peak = closes.slice(closes.arg_max())
        assert after_peak.len() > 3 and after_peak.n_unique() == after_peak.len(), pair  # the close keeps moving
    luna = candles.filter(pl.col("symbol") == "LUNA/USDT")
    assert 1 - luna["close"].min() / luna["close"].max() > 0.999


def test_delisted_tokens_stop_before_the_as_of_and_leave_the_ranking(market):
    spans = _spans(_read(market, "ohlcv_1d_delisted"))
    assert len(DELISTED) >= 6 and len(set(DELISTED) - set(COLLAPSES)) >= 3
    caps = _read(market, "market_caps_monthly")
    last_snapshot = caps.filter(pl.col("snapshot_date") == pl.col("snapshot_date").max())
    for pair in DELISTED:
        first, last, days = spans.filter(pl.col("symbol") == pair).select("first", "last", "days").row(0)
        assert last < AS_OF - dt.timedelta(days=30), pair
        assert days == (last - first).days + 1, pair  # no gap, and nothing after its last day
        assert pair.split("/")[0] not in last_snapshot["symbol"], pair
    for pair in set(DELISTED) - set(COLLAPSES):
        assert 8 <= spans.filter(pl.col("symbol") == pair)["last"][0].day <= 22, pair  # mid-month
    ftt = spans.filter(pl.col("symbol") == "FTT/USDT")
    assert ftt["last"][0] == AS_OF  # collapsed, still trading


def test_late_listings_appear_in_candles_and_rankings_only_from_their_first_day(market):
    spans = _spans(_read(market, "ohlcv_1d_delisted"))
    start = _read(market, "ohlcv_1d")["date"].min()
    late = spans.filter(pl.col("first") > start)
    assert len(LISTED_LATE) >= 3 and set(late["symbol"]) == set(LISTED_LATE)
    caps = _read(market, "market_caps_monthly")
    for pair, first in late.select("symbol", "first").iter_rows():
        ranked = caps.filter(pl.col("symbol") == pair.split("/")[0])["snapshot_date"]
        assert ranked.len() > 0 and ranked.min() >= first, pair


def test_dead_tokens_trade_over_a_million_dollars_a_day_before_they_die(market):
    candles = _read(market, "ohlcv_1d_delisted").sort("symbol", "date")
    for token in DEAD_TOKENS:
        if not token.spot:
            continue
        days = candles.filter(pl.col("symbol") == token.pair)
        alive = days.filter(~(pl.col("close") < 0.1 * pl.col("close").cum_max()).cum_max())  # before its collapse
        assert 100 < alive.height <= days.height, token.pair
        assert (alive["close"] * alive["volume"]).median() > 1e6, token.pair
    assert candles.filter(
        (pl.col("low") <= 0)
        | (pl.col("high") < pl.max_horizontal("open", "close"))
        | (pl.col("low") > pl.min_horizontal("open", "close"))
    ).is_empty()


def test_the_life_cycle_stays_out_of_the_universes_files_and_is_deterministic(market, tmp_path):
    assert not set(_read(market, "ohlcv_1d")["symbol"]) & LIFE_CYCLE_PAIRS
    perps = {s.split(":")[0] for s in _read(market, "funding_8h")["symbol"]}
    assert not perps & LIFE_CYCLE_PAIRS
    again = generate(tmp_path / "again", AS_OF, seed=7)
    for name in ("market_caps_monthly", "ohlcv_1d_delisted", "ohlcv_1d", "funding_8h"):
        assert (again / f"{name}.parquet").read_bytes() == (market / f"{name}.parquet").read_bytes(), name


def test_a_short_history_still_sees_every_death_before_its_as_of(tmp_path):
    short = generate(tmp_path / "short", AS_OF, seed=3, years=0.3)
    candles = _read(short, "ohlcv_1d_delisted").sort("symbol", "date")
    spans = _spans(candles)
    for pair in DELISTED:
        assert spans.filter(pl.col("symbol") == pair)["last"][0] < AS_OF, pair
    for pair in COLLAPSES:
        closes = candles.filter(pl.col("symbol") == pair)["close"]
        assert 1 - (closes / closes.cum_max()).min() > 0.9, pair
    per_snapshot = _read(short, "market_caps_monthly").group_by("snapshot_date").len()
    assert per_snapshot.height == 4 and (per_snapshot["len"] == 200).all()  # 2025-05-01 .. 2025-08-01


def test_a_universe_holding_a_life_cycle_coin_is_refused(tmp_path):
    universe = load_universe()
    luna = universe.tokens[-1].model_copy(update={"name": "LUNA", "spot": "LUNA/USDT", "perp": None})
    clash = universe.model_copy(update={"tokens": (*universe.tokens, luna)})
    with pytest.raises(ValueError, match="LUNA"):
        generate(tmp_path / "clash", AS_OF, universe=clash)
    assert not (tmp_path / "clash").exists()
