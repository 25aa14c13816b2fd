"""The coin taxonomy: the shipped file covers the recorded market history and agrees with the
universe, and a bad entry fails naming the coin."""

from __future__ import annotations

import datetime as dt
import textwrap

import polars as pl
import pytest

from pipeline.taxonomy import DEFAULT_TAXONOMY, EXCLUDE_REASONS, TaxonomyError, load_taxonomy, parse_taxonomy
from pipeline.universe import load_universe
from tests.conftest import REAL_DATA


@pytest.fixture
def caps(real_data) -> pl.DataFrame:
    """CoinMarketCap's monthly top 200 (the test skips, naming why, when ../shared is absent)."""
    return pl.read_parquet(real_data / "market_caps_monthly.parquet")


def _matches(caps: pl.DataFrame) -> pl.DataFrame:
    """Each snapshot row with the coins whose alias covers it (one row per match; coin null if none)."""
    aliases = load_taxonomy().aliases_frame()
    joined = caps.join(aliases, on=["symbol", "name"], how="left")
    covered = (pl.col("since").is_null() | (pl.col("snapshot_date") >= pl.col("since"))) & (
        pl.col("until").is_null() | (pl.col("snapshot_date") <= pl.col("until")))
    return joined.filter(pl.col("coin").is_null() | covered)


def test_every_top_150_snapshot_row_is_exactly_one_coin(caps):
    matched = _matches(caps.filter(pl.col("rank") <= 150))
    per_row = matched.group_by("snapshot_date", "symbol", "name").agg(
        pl.col("coin").drop_nulls().n_unique().alias("coins"))
    assert per_row.height == caps.filter(pl.col("rank") <= 150).height
    assert per_row.filter(pl.col("coins") != 1).rows() == []


def test_one_ticker_two_coins_is_resolved_by_date(caps):
    """The README's cases: LUNA, BTT, ONE, STRK, ACA and BNX each name two coins."""
    coin = {(r["snapshot_date"], r["symbol"], r["name"]): r["coin"] for r in _matches(caps).iter_rows(named=True)}
    assert coin[(dt.date(2022, 4, 1), "LUNA", "Terra")] == "terra-luna"
    assert coin[(dt.date(2022, 10, 1), "LUNA", "Terra")] == "terra-luna-2"
    assert coin[(dt.date(2022, 10, 1), "LUNC", "Terra Classic")] == "terra-luna"
    assert coin[(dt.date(2022, 1, 1), "BTT", "BitTorrent")] != coin[(dt.date(2022, 2, 1), "BTT", "BitTorrent (New)")]
    assert coin[(dt.date(2020, 3, 1), "ONE", "BigONE Token")] != coin[(dt.date(2021, 3, 1), "ONE", "Harmony")]
    assert coin[(dt.date(2023, 3, 1), "BNX", "BinaryX (old)")] == coin[(dt.date(2022, 12, 1), "BNX", "BinaryX")]
    assert coin[(dt.date(2023, 3, 1), "BNX", "BinaryX (old)")] != coin[(dt.date(2023, 3, 1), "BNX", "BinaryX")]
    assert coin[(dt.date(2024, 1, 1), "1000SATS", "SATS")] == coin[(dt.date(2025, 1, 1), "SATS", "SATS (Ordinals)")]
    assert coin[(dt.date(2021, 2, 1), "MATIC", "Matic Network")] == coin[(dt.date(2025, 8, 1), "POL", "POL (prev. MATIC)")]


def test_every_spot_pair_is_recorded_or_in_the_universe(caps):
    recorded = set(pl.read_parquet(REAL_DATA / "ohlcv_1d.parquet")["symbol"]) | set(
        pl.read_parquet(REAL_DATA / "ohlcv_1d_delisted.parquet")["symbol"])
    known = recorded | set(load_universe().spot_symbols)
    pairs = load_taxonomy().spot_frame()
    assert set(pairs["symbol"]) - known == set()
    # BNX/USDT spans BinaryX's 2023 migration (two coins), so it is the one recorded pair left unmapped
    assert recorded - set(pairs["symbol"]) == {"BNX/USDT"}
    owner = {pair: coin for coin, pair in pairs.iter_rows()}
    assert owner["LUNA/USDT"] == owner["LUNC/USDT"] == "terra-luna"
    assert owner["MATIC/USDT"] == owner["POL/USDT"]
    assert owner["RNDR/USDT"] == owner["RENDER/USDT"]
    assert owner["FTM/USDT"] == owner["S/USDT"]
    assert owner["EOS/USDT"] == owner["A/USDT"]
    assert owner["PAX/USDT"] == owner["USDP/USDT"]


def test_every_universe_token_keeps_its_sector():
    taxonomy = load_taxonomy()
    universe = load_universe()
    assert taxonomy.sectors == universe.sectors
    sector = {pair: s for pair, s in taxonomy.spot_frame().join(taxonomy.coins_frame(), on="coin")
              .select("symbol", "sector").iter_rows()}
    assert {t.name: sector.get(t.spot) for t in universe.tokens} == {t.name: t.sector for t in universe.tokens}


def test_core_is_bitcoin_and_ether_only_and_every_coin_is_classified_once():
    coins = load_taxonomy().coins_frame()
    assert sorted(coins.filter(pl.col("sector") == "Core")["coin"]) == ["bitcoin", "ethereum"]
    assert coins.filter(pl.col("sector").is_null() == pl.col("exclude").is_null()).height == 0
    assert set(coins["exclude"].drop_nulls()) <= set(EXCLUDE_REASONS)
    assert coins["coin"].is_unique().all()
    by_coin = dict(coins.select("coin", pl.coalesce("sector", "exclude")).iter_rows())
    assert by_coin["binancecoin"] == "Layer-1"
    assert by_coin["tether"] == "stablecoin"
    assert by_coin["wrapped-bitcoin"] == "wrapped"
    assert by_coin["ftx-token"] == "exchange_token"
    assert by_coin["monero"] == "privacy"
    assert by_coin["pax-gold"] == "other"


def test_categories_pick_by_file_order_and_exclusions_win():
    taxonomy = load_taxonomy()
    assert taxonomy.sector_for_categories(["Stablecoins"]) == (None, "stablecoin")
    assert taxonomy.sector_for_categories(["Solana Ecosystem", "USD Stablecoin", "Meme"]) == (None, "stablecoin")
    # the coin's own order does not matter, the file's does: Meme comes before Layer 1 (L1)
    assert taxonomy.sector_for_categories(["Layer 1 (L1)", "Meme"]) == ("Memes", None)
    assert taxonomy.sector_for_categories(["Decentralized Finance (DeFi)", "Oracle"]) == ("Infrastructure", None)
    assert taxonomy.sector_for_categories(["Solana Ecosystem"]) == (None, None)
    assert taxonomy.sector_for_categories([]) == (None, None)

    raw = {"sectors": ["DeFi", "Memes"], "coins": {"x": {"sector": "DeFi"}},
           "categories": [{"category": "Meme", "sector": "Memes"}, {"category": "DEX", "sector": "DeFi"}]}
    assert parse_taxonomy(raw).sector_for_categories(["DEX", "Meme"]) == ("Memes", None)
    raw["categories"].reverse()
    assert parse_taxonomy(raw).sector_for_categories(["DEX", "Meme"]) == ("DeFi", None)


def test_the_frames_have_the_documented_columns():
    taxonomy = load_taxonomy()
    assert taxonomy.coins_frame().schema == {"coin": pl.String, "sector": pl.String, "exclude": pl.String,
                                             "note": pl.String}
    aliases = taxonomy.aliases_frame()
    assert aliases.schema == {"coin": pl.String, "symbol": pl.String, "name": pl.String, "since": pl.Date,
                              "until": pl.Date}
    luna = aliases.filter(pl.col("symbol") == "LUNA").sort("coin")
    assert luna.rows() == [("terra-luna", "LUNA", "Terra", None, dt.date(2022, 9, 30)),
                           ("terra-luna-2", "LUNA", "Terra", dt.date(2022, 10, 1), None)]
    spot = taxonomy.spot_frame()
    assert spot.schema == {"coin": pl.String, "symbol": pl.String}
    assert spot["symbol"].is_unique().all()


GOOD = """\
sectors: [Layer-1, DeFi]
categories:
  - {category: Stablecoins, exclude: stablecoin}
coins:
  terra-luna:
    sector: Layer-1
    cmc: [{symbol: LUNA, name: Terra, until: 2022-09-30}]
    spot: [LUNA/USDT]
  terra-luna-2:
    sector: Layer-1
    cmc: [{symbol: LUNA, name: Terra, since: 2022-10-01}]
"""


def _load(tmp_path, text: str):
    path = tmp_path / "taxonomy.yaml"
    path.write_text(textwrap.dedent(text))
    return load_taxonomy(path), path


def test_a_good_inline_file_loads(tmp_path):
    taxonomy, _ = _load(tmp_path, GOOD)
    assert taxonomy.sectors == ("Layer-1", "DeFi")
    assert taxonomy.spot_frame().rows() == [("terra-luna", "LUNA/USDT")]


@pytest.mark.parametrize(
    ("coin", "message"),
    [
        ("  curve: {sector: Casino}", "sector 'Casino' is not one of"),
        ("  curve: {sector: DeFi, exclude: other}", "exactly one of 'sector' or 'exclude'"),
        ("  curve: {note: forgot}", "exactly one of 'sector' or 'exclude'"),
        ("  curve: {exclude: boring}", "exclude"),
        ("  curve: {sector: DeFi, spot: [LUNA/USDT]}", "spot pair 'LUNA/USDT' is already used by coin 'terra-luna'"),
        ("  curve: {sector: DeFi, spot: [crvusdt]}", "spot pair 'crvusdt' is not in ccxt spot form"),
        ("  curve: {sector: DeFi, cmc: [{symbol: LUNA, name: Terra, since: 2022-09-01}]}",
         "LUNA / Terra (from 2022-09-01) overlaps coin 'terra-luna' (until 2022-09-30)"),
        ("  curve: {sector: DeFi, cmc: [{symbol: CRV, name: Curve}, {symbol: CRV, name: Curve}]}",
         "overlaps its own other alias"),
        ("  curve: {sector: DeFi, cmc: [{symbol: CRV, name: Curve, since: 2022-13-01}]}",
         "line 12: '2022-13-01' is not a date like 2022-10-01"),
        ("  curve: {sector: DeFi, cmc: [{symbol: CRV, name: Curve, since: 2023-01-01, until: 2022-01-01}]}",
         "since 2023-01-01 is after until 2022-01-01"),
        ("  curve: {sector: DeFi, cmc: [{symbol: CRV, name: Curve, until: 2022-01-01 10:00:00}]}",
         "is a time: give a date"),
        ("  curve: {sector: DeFi, cmc: [{symbol: CRV, name: Curve, until: 20220101}]}",
         "20220101 is not a date"),
        ("  curve: {sector: DeFi, cmc: [{symbol: CRV}]}", "cmc.0.name"),
        ("  curve: {sector: DeFi, colour: blue}", "colour"),
        ("  Curve-DAO: {sector: DeFi}", "the key must be a CoinGecko id"),
    ],
)
def test_a_bad_coin_is_refused_naming_it(tmp_path, coin, message):
    path = tmp_path / "taxonomy.yaml"
    path.write_text(GOOD + coin + "\n")
    with pytest.raises(TaxonomyError) as err:
        load_taxonomy(path)
    text = str(err.value)
    assert text.startswith(f"{path}: coin '")
    assert "'curve'" in text or "'Curve-DAO'" in text
    assert message in text


@pytest.mark.parametrize(
    ("categories", "message"),
    [
        ("  - {category: Meme, sector: Memes}", "categories[1] ('Meme'): sector 'Memes' is not one of"),
        ("  - {category: Meme}", "categories[1] ('Meme'): give exactly one of 'sector' or 'exclude'"),
        ("  - {category: Meme, exclude: funny}", "categories[1] ('Meme'): exclude"),
        ("  - {category: stablecoins, sector: DeFi}", "categories[1] ('stablecoins'): category listed twice"),
    ],
)
def test_a_bad_category_is_refused_naming_it(tmp_path, categories, message):
    text = GOOD.replace("coins:\n", categories + "\ncoins:\n")
    with pytest.raises(TaxonomyError, match="taxonomy.yaml: ") as err:
        _load(tmp_path, text)
    assert message in str(err.value)


def test_a_bad_document_is_named(tmp_path):
    with pytest.raises(TaxonomyError, match="non-empty 'coins' mapping"):
        parse_taxonomy({"sectors": ["DeFi"], "coins": {}}, origin="t.yaml")
    with pytest.raises(TaxonomyError, match="unknown top-level key"):
        parse_taxonomy({"sectors": ["DeFi"], "coins": {"x": {"sector": "DeFi"}}, "tokens": {}})
    with pytest.raises(TaxonomyError, match="listed more than once"):
        parse_taxonomy({"sectors": ["DeFi", "DeFi"], "coins": {"x": {"sector": "DeFi"}}})
    bad = tmp_path / "taxonomy.yaml"
    bad.write_text("coins: [unclosed")
    with pytest.raises(TaxonomyError, match=str(bad)):
        load_taxonomy(bad)
    twice = tmp_path / "twice.yaml"
    twice.write_text(GOOD + "  terra-luna: {sector: DeFi}\n")
    with pytest.raises(TaxonomyError, match="duplicate key 'terra-luna'"):
        load_taxonomy(twice)


def test_loading_is_cached_per_path():
    assert load_taxonomy() is load_taxonomy(str(DEFAULT_TAXONOMY))
