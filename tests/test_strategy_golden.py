"""The source articles' worked examples, reproduced through the strategy engine (pipeline/strategy/).

The articles get two things wrong, and the engine does not copy them:
- Notional vs margin: one article calls a $5,000 hedge at 5x "a $25,000 position". Leverage sets the
  margin, not the size: $5,000 of notional on $1,000 of margin.
- The funding sign: one article says a short hedge pays a positive funding rate. A positive rate is
  paid by longs to shorts; the short hedge receives it.
"""

from __future__ import annotations

import pytest

from pipeline.strategy.hedges import LeverageError, Perp, hedge, sector_hedge, tactical_long
from pipeline.strategy.playbook import Hedging, Playbook, PlaybookError, load_playbook
from pipeline.strategy.rotation import bucket_bands, rotate

PLAYBOOK = Playbook()


def test_the_10000_sector_hedge():
    """$10,000 of sector spot hedged with 15-20% of it in BTC perps: $1,500-2,000 short. When both
    fall 10%, the spot loses $1,000 and the 1x hedge makes $150-200."""
    rules = PLAYBOOK.hedging
    low, high = (sector_hedge(10_000, rules, fraction=f) for f in (0.15, 0.20))
    assert (low.side, low.instrument, low.leverage) == ("short", "BTC/USDT:USDT", 1.0)
    assert (low.notional_usd, high.notional_usd) == pytest.approx((1_500, 2_000))
    assert 1_500 <= sector_hedge(10_000, rules).notional_usd <= 2_000  # the default sits inside
    spot_loss = 10_000 * -0.10
    assert spot_loss == pytest.approx(-1_000)
    assert (low.pnl_usd(-0.10), high.pnl_usd(-0.10)) == pytest.approx((150, 200))
    assert low.margin_usd == pytest.approx(1_500)  # at 1x the margin is the whole notional
    with pytest.raises(ValueError, match="15%-20% of the spot, got 30%"):
        sector_hedge(10_000, rules, fraction=0.30)


def test_long_beta_hedge_major():
    """Narrative rotation: core 30%, L1/DeFi 50%, speculative 20%, and BTC perps short for 10%."""
    posture = PLAYBOOK.postures["narrative_rotation"]
    assert posture.strategy == "long beta, hedge major"
    assert (posture.core.target, posture.mid.target, posture.speculative.target) == pytest.approx((0.30, 0.50, 0.20))
    assert posture.btc_short == pytest.approx(0.10)
    short = hedge("BTC/USDT:USDT", 100_000 * posture.btc_short, PLAYBOOK.hedging)
    assert (short.notional_usd, short.margin_usd, short.leverage) == pytest.approx((10_000, 10_000, 1.0))


def test_bear():
    """Bear: core 70%, alts cut, BTC perps short for 30-50% of the portfolio."""
    bands = bucket_bands("bear", PLAYBOOK)
    assert bands["core"].target == pytest.approx(0.70) and bands["core"].low == pytest.approx(0.70)
    alts = {phase: 1 - PLAYBOOK.postures[phase].core.target for phase in PLAYBOOK.postures}
    assert alts["bear"] == pytest.approx(0.30) and alts["bear"] == min(alts.values())  # alts cut
    posture = PLAYBOOK.postures["bear"]
    assert (posture.btc_short, posture.btc_short_max) == pytest.approx((0.30, 0.50))


def test_the_100000_rotation_from_infrastructure_to_defi():
    """$100,000 held as DeFi 35% / Infrastructure 65%; rotate 20% of it from Infrastructure to DeFi:
    sell $15,000 of Infrastructure spot (into DeFi) and hedge the $5,000 still to sell with a short of
    the sector's perp: $5,000 notional on $1,000 margin at the article's 5x, which the playbook must
    allow explicitly (its default cap is 3x). Not the article's "$25,000 position"."""
    holdings = {"DeFi": 35_000.0, "Infrastructure": 65_000.0}
    article = PLAYBOOK.model_copy(update={"hedging": Hedging(max_leverage=5.0)})
    rotation = rotate(holdings, "Infrastructure", "DeFi", 0.20, "LINK/USDT:USDT", article, leverage=5.0)
    sells = [o for o in rotation.spot if o.side == "sell"]
    buys = [o for o in rotation.spot if o.side == "buy"]
    assert [(o.sector, o.usd) for o in sells] == [("Infrastructure", pytest.approx(15_000))]
    assert [(o.sector, o.usd) for o in buys] == [("DeFi", pytest.approx(15_000))]
    short = rotation.hedge
    assert (short.instrument, short.side) == ("LINK/USDT:USDT", "short")
    assert (short.notional_usd, short.margin_usd, short.leverage) == pytest.approx((5_000, 1_000, 5.0))
    assert rotation.weights_after(holdings) == pytest.approx({"DeFi": 0.50, "Infrastructure": 0.50})
    # On a further 10% drop of the sector, the hedge offsets the unsold $5,000 exactly.
    assert short.pnl_usd(-0.10) == pytest.approx(500)
    with pytest.raises(LeverageError, match="5.0x is above the playbook's 3.0x cap"):
        rotate(holdings, "Infrastructure", "DeFi", 0.20, "LINK/USDT:USDT", PLAYBOOK, leverage=5.0)


def test_funding_is_paid_by_longs_and_received_by_shorts():
    short = Perp("BTC/USDT:USDT", "short", 10_000, 1.0)
    long = Perp("BTC/USDT:USDT", "long", 10_000, 1.0)
    # 10.95% APR over 30 days on $10,000: $90.
    assert short.funding_usd(10.95, 30) == pytest.approx(90.0)
    assert long.funding_usd(10.95, 30) == pytest.approx(-90.0)
    assert short.funding_usd(-10.95, 30) == pytest.approx(-90.0)  # negative rate: the short pays


def test_tactical_longs_stay_small_and_at_3_to_5x():
    rules = PLAYBOOK.hedging
    long = tactical_long("SOL/USDT:USDT", 100_000, 0.05, 4.0, rules)
    assert (long.notional_usd, long.margin_usd) == pytest.approx((5_000, 1_250))
    with pytest.raises(ValueError, match="at most 5% of the portfolio"):
        tactical_long("SOL/USDT:USDT", 100_000, 0.08, 4.0, rules)
    with pytest.raises(LeverageError, match="3-5x, got 10x"):
        tactical_long("SOL/USDT:USDT", 100_000, 0.05, 10.0, rules)


def test_every_phase_has_a_feasible_posture_and_the_file_is_validated(tmp_path):
    from pipeline.transforms.market_regime import PHASES

    for phase in PHASES:
        bands = bucket_bands(phase, PLAYBOOK)
        assert sum(b.target for b in bands.values()) == pytest.approx(1.0)
        assert sum(b.low for b in bands.values()) <= 1 + 1e-9 <= sum(b.high for b in bands.values()) + 2e-9
    assert load_playbook() == PLAYBOOK  # the shipped file keeps the defaults
    bad = tmp_path / "playbook.yaml"
    bad.write_text("hedging:\n  leverage: 4\n")
    with pytest.raises(PlaybookError, match=r"playbook.yaml: hedging: .*leverage 4.0 is above max_leverage 3.0"):
        load_playbook(bad)
    bad.write_text("hedging:\n  levrage: 2\n")
    with pytest.raises(PlaybookError, match=r"hedging.levrage: Extra inputs are not permitted"):
        load_playbook(bad)


def test_the_portfolio_file_is_checked_against_the_universe(tmp_path):
    from pipeline.strategy.portfolio import EXAMPLE_PORTFOLIO, PortfolioError, load_portfolio
    from pipeline.universe import load_universe

    universe = load_universe()
    example = load_portfolio(EXAMPLE_PORTFOLIO, universe)
    closes = {"UNI": 8.757, "AAVE": 249.45, "LINK": 15.65}  # ../shared/data/real, 2025-08-02
    value = {t: q * closes[t] for t, q in example.holdings.items()}
    total = sum(value.values())
    assert total == pytest.approx(100_000, rel=0.001)
    assert (value["UNI"] + value["AAVE"]) / total == pytest.approx(0.35, abs=0.001)  # DeFi
    assert value["LINK"] / total == pytest.approx(0.65, abs=0.001)  # Infrastructure

    bad = tmp_path / "portfolio.yaml"
    for text, error in [
        ("holdings: {DOGGO: 5}\n", r"portfolio.yaml: holdings.DOGGO: unknown token"),
        ("holdings: {UNI: -3}\n", r"holdings.UNI: quantity must be >= 0, got -3"),
        ("holdings: {UNI: .nan}\n", r"holdings.UNI: quantity must be >= 0, got nan"),
        ("cash_usd: -1\n", r"cash_usd: Input should be greater than or equal to 0"),
        ("perps: [{instrument: FOO/USDT:USDT, side: short, notional_usd: 100}]\n", r"perps\[0\].instrument: 'FOO"),
        ("perps: [{instrument: BTC/USDT:USDT, side: sideways, notional_usd: 100}]\n", r"perps.0.side"),
        ("holding: {UNI: 1}\n", r"holding: Extra inputs are not permitted"),
    ]:
        bad.write_text(text)
        with pytest.raises(PortfolioError, match=error):
            load_portfolio(bad, universe)
