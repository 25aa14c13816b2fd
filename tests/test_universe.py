"""The universe file: the shipped one is valid, and a bad entry fails naming the token."""

import pytest

from pipeline.universe import UniverseError, load_universe, parse_universe

GOOD = {"sector": "DeFi", "bucket": "mid", "spot": "UNI/USDT", "coingecko": "uniswap"}


def test_shipped_universe_covers_the_seeds_sectors_and_buckets():
    universe = load_universe()
    sectors = {t.sector for t in universe.tokens}
    assert {"Layer-1", "DeFi", "Infrastructure", "AI", "Gaming"} <= sectors
    assert {t.name for t in universe.tokens if t.bucket == "core"} == {"BTC", "ETH"}
    assert len([t for t in universe.tokens if t.name not in ("BTC", "ETH")]) >= 30
    assert "BTC/USDT:USDT" in universe.perp_symbols


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ({**GOOD, "bucket": "moonshot"}, "bucket"),
        ({**GOOD, "spot": "uniusdt"}, "spot symbol 'uniusdt'"),
        ({**GOOD, "perp": "UNI/USDT"}, "perp symbol 'UNI/USDT'"),
        ({**GOOD, "sector": "Casino"}, "sector 'Casino'"),
        ({**GOOD, "colour": "blue"}, "colour"),
        ({k: v for k, v in GOOD.items() if k != "coingecko"}, "coingecko"),
    ],
)
def test_a_bad_entry_is_named(entry, message):
    raw = {"sectors": ["DeFi"], "tokens": {"UNI": entry}}
    with pytest.raises(UniverseError, match="token 'UNI'") as err:
        parse_universe(raw, origin="u.yaml")
    assert message in str(err.value)
    assert "u.yaml" in str(err.value)


def test_a_symbol_used_twice_is_refused():
    raw = {"sectors": ["DeFi"], "tokens": {"UNI": GOOD, "UNI2": {**GOOD, "coingecko": "x"}}}
    with pytest.raises(UniverseError, match="token 'UNI2'.*already used by 'UNI'"):
        parse_universe(raw)


def test_an_unreadable_file_is_named(tmp_path):
    bad = tmp_path / "universe.yaml"
    bad.write_text("tokens: [unclosed")
    with pytest.raises(UniverseError, match=str(bad)):
        load_universe(bad)
