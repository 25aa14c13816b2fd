"""A deterministic synthetic crypto market, written as a replay dataset folder (see `dataset.py`).

The pipeline has to be run and judged on years of history without the network and without
depending on what the real market happened to do. Here a seeded factor model (market + sector +
idiosyncratic returns, with sector betas) is driven by a sequence of market regimes that follows
the crypto cycle, and every series the replay serves (spot candles, perp funding, chain and
protocol TVL, BTC dominance) is derived from the same price paths, so the series agree with each
other. `regimes_1d.parquet` records each day's true regime, for judging what the pipeline infers.
A life cycle rides on top: CoinMarketCap-like monthly market-cap rankings (`market_caps_monthly`,
with stablecoins, wrapped coins and small untraded coins filling out the top 200) and tokens with
real dead coins' identities that collapse or are delisted (`ohlcv_1d_delisted`), as in the real
bundle. It draws from a stream of its own, so the files above do not move because of it.
Same (as_of, seed, universe) -> byte-identical files. The numbers are NOT real prices.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl

from pipeline.universe import Universe, load_universe

SYNTHETIC_LABEL = "synthetic"
# The embedded market the README's figures on it are of (seed 7, ending on this day). A market made
# for another day is the same path shifted against the calendar, and its results differ (listings,
# month ends): figures that are to be compared or checked use this one.
REFERENCE_AS_OF = dt.date(2026, 11, 21)
GENERATOR = "pipeline.sources.replay.synthetic v3"  # v2: market caps and dead tokens; v3: LUNA listed as LUNC
SPOT_EXCHANGE = "binance"
PERP_EXCHANGE = "binanceusdm"

# The crypto cycle, in order: each phase normally hands over to the next, bear back to the first.
PHASES = ("btc_dominance", "altcoin_surge", "narrative_rotation", "peak_consolidation", "bear")
NARRATIVE_ROTATION = PHASES.index("narrative_rotation")
PEAK_CONSOLIDATION = PHASES.index("peak_consolidation")
BLOCK_DAYS = (45, 150)
DAYS_PER_BLOCK = 95
RELAPSE = 0.25  # chance a peak_consolidation falls back into a second narrative_rotation
TWO_LEADERS = 0.4  # chance a narrative_rotation block has two leaders in turn instead of one

CORE_SECTOR = "Core"
PLATFORM_SECTORS = ("Layer-1", "Layer-2", "Infrastructure")
MEME_SECTOR = "Memes"

# Per phase, in PHASES order. BTC is the market factor itself.
BTC_DRIFT = np.array([0.0025, 0.0025, 0.001, 0.0, -0.0035])
BTC_VOL = np.array([0.022, 0.028, 0.030, 0.040, 0.032])
# Sector drift on top of beta * market. Columns: core (ETH), platform, narrative, narrative leader.
CORE, PLATFORM, NARRATIVE, LEADER = range(4)
SECTOR_DRIFT = np.array(
    [
        [-0.003, -0.005, -0.005, -0.005],
        [0.003, 0.007, 0.002, 0.002],
        [0.001, 0.002, 0.003, 0.012],
        [-0.001, -0.001, -0.0015, -0.0015],
        [-0.002, -0.004, -0.0045, -0.0045],
    ]
)
SECTOR_VOL = np.array([0.012, 0.015, 0.020, 0.025, 0.015])
# Daily pull of each random component's cumulative level back to 0, so the regimes, not a random
# walk, shape the paths: BTC stays near its regime trend, alts/BTC and dominance stay bounded.
MARKET_REVERSION = 0.03
SECTOR_REVERSION = 0.003
IDIO_REVERSION = 0.004
IDIO_SCALE = np.array([0.9, 1.1, 1.2, 1.4, 1.1])  # idiosyncratic volatility: choppiest at the peak
ACTIVITY = np.array([0.9, 1.4, 1.3, 1.2, 0.8])  # traded volume relative to normal
FUNDING_BASE_8H = np.array([0.0001, 0.0004, 0.0003, 0.0001, -0.0001])
FUNDING_MOMENTUM = 0.004  # funding per unit of 7-day log return: crowded longs pay more
FUNDING_CLIP = 0.003
TVL_DRIFT = np.array([0.0, 0.0015, 0.001, 0.0, -0.0015])

# Per bucket (core, mid, speculative): market beta, idiosyncratic daily vol, log10 start mcap, turnover.
BUCKETS = ("core", "mid", "speculative")
BETA = {"core": (1.0, 1.2), "mid": (1.1, 1.5), "speculative": (1.3, 1.9)}
IDIO_VOL = {"core": 0.012, "mid": 0.025, "speculative": 0.04}
LOG10_MCAP = {"core": (11.2, 11.5), "mid": (8.8, 10.5), "speculative": (8.0, 9.6)}
LOG10_TURNOVER = {"core": (-2.7, -2.4), "mid": (-2.4, -1.8), "speculative": (-2.2, -1.5)}
BTC_SUPPLY = 19.5e6
START_DOMINANCE = (50.0, 58.0)
COVERAGE = 0.85  # share of the whole market's cap the universe holds
LATE_LISTED_SHARE = 1 / 3
LATE_LISTING_WEIGHT = {CORE_SECTOR: 0.0, "Layer-1": 0.15, "DeFi": 0.3}  # other sectors: 1
SPECULATIVE_LATE_LISTING = 1.5  # and speculative tokens list late more often still
UNIVERSE_DELISTED = 2
DELIST_DAYS_BEFORE_AS_OF = (150, 301)
FOUR_HOUR_PERPS = 2

# The life cycle. Its draws come from a second stream (seed, LIFE_CYCLE_STREAM): adding it moved none of
# the other files, and the README's figures on the reference market stay put.
LIFE_CYCLE_STREAM = 1
RANKED = 200  # coins per monthly snapshot, as CoinMarketCap's top 200
FILLERS = 200  # small untraded coins that fill out the ranking
LOG10_FILLER_SHARE = (-4.9, -3.8)  # a filler's cap as a share of the whole market's: below the mids
LOG10_DEAD_TURNOVER = (-1.9, -1.5)  # daily volume / cap of the dead tokens before they die
DEAD_IDIO_VOL = 0.035  # a dead token's own daily volatility, before the phase's scale
NO_SECTOR_BETA = 1.2  # a dead token in no sector (an exchange token, a CeFi lender's) moves with BTC times this
VOLUME_SURGE_MOVE = 0.4  # volume surges with a day's move up to this log move: a crash is not 1e5 x volume
POST_CRASH_DRIFT, POST_CRASH_VOL = -0.01, 0.08  # daily log drift and volatility of a collapsed token
DEAD_DRIFT = -0.03  # daily log drift of a price once its candles stop: it slides down and out of the ranking
OFF_EXCHANGE_TURNOVER = 0.003  # daily volume / cap of a coin trading only elsewhere
# CoinMarketCap's names of the universe's tokens (its latest snapshots in the real bundle); a token not
# here is named by its ticker.
CMC_NAMES = {
    "BTC": "Bitcoin", "ETH": "Ethereum", "SOL": "Solana", "BNB": "BNB", "XRP": "XRP", "ADA": "Cardano",
    "AVAX": "Avalanche", "DOT": "Polkadot", "NEAR": "NEAR Protocol", "ATOM": "Cosmos", "TRX": "TRON",
    "LTC": "Litecoin", "BCH": "Bitcoin Cash", "SUI": "Sui", "APT": "Aptos", "ALGO": "Algorand",
    "XLM": "Stellar", "HBAR": "Hedera", "ICP": "Internet Computer", "ETC": "Ethereum Classic",
    "ARB": "Arbitrum", "OP": "Optimism", "POL": "POL (prev. MATIC)", "STX": "Stacks", "UNI": "Uniswap",
    "AAVE": "Aave", "MKR": "Maker", "INJ": "Injective", "SNX": "Synthetix", "ENA": "Ethena",
    "LINK": "Chainlink", "PYTH": "Pyth Network", "GRT": "The Graph", "FIL": "Filecoin", "TIA": "Celestia",
    "ZRO": "LayerZero", "FET": "Artificial Superintelligence Alliance", "TAO": "Bittensor",
    "WLD": "Worldcoin", "RENDER": "Render", "VIRTUAL": "Virtuals Protocol", "AXS": "Axie Infinity",
    "IMX": "Immutable", "THETA": "Theta Network", "SAND": "The Sandbox", "DOGE": "Dogecoin",
    "SHIB": "Shiba Inu", "PEPE": "Pepe", "BONK": "Bonk",
}
MARKET_CAP_COLUMNS = {
    "snapshot_date": pl.Date, "rank": pl.Int32, "symbol": pl.String, "name": pl.String,
    "market_cap_usd": pl.Float64, "price_usd": pl.Float64, "circulating_supply": pl.Float64,
    "volume_24h_usd": pl.Float64, "coingecko_id": pl.String,
}


@dataclass(frozen=True)
class DeadToken:
    """A token that collapses or is delisted within the history, under a real dead coin's CoinMarketCap
    ticker and name (so that a taxonomy of real coins covers it). Days are fractions of the history."""

    symbol: str
    name: str
    coingecko: str
    follows: str | None  # the universe sector whose average move it shares; None: BTC's (a token in no sector)
    share: tuple[float, float]  # its cap on its listing day, as a share of the whole market's
    listed: float = 0.0  # its listing day (0: trading from the first day)
    crash: float = 0.0  # its fall over the crash days (0.999: -99.9%); 0: none
    crash_in: tuple[float, float] | None = None  # the crash starts in this window, on a bear day if any
    crash_with: str | None = None  # or after the crash of this (earlier) token starts ...
    crash_lag: tuple[int, int] = (0, 2)  # ... by this many days (upper bound excluded)
    crash_days: int = 4
    trades_after_crash: tuple[int, int] | None = None  # days of candles after the crash; None: to the as-of
    delisted_in: tuple[float, float] | None = None  # a plain delisting: last candle mid-month in this window
    spot: bool = True  # has Binance spot candles (Celsius never had)
    # CoinMarketCap's (ticker, name) when not (symbol, name): LUNA's pair is Terra Classic, which CMC
    # lists as LUNC, while its "LUNA, Terra" means Terra 2.0 from October 2022 on, inside this calendar
    listed_as: tuple[str, str] | None = None

    @property
    def pair(self) -> str:
        return f"{self.symbol}/USDT"

    @property
    def ticker(self) -> str:
        return self.listed_as[0] if self.listed_as else self.symbol

    @property
    def cmc_name(self) -> str:
        return self.listed_as[1] if self.listed_as else self.name


DEAD_TOKENS = (
    DeadToken("LUNA", "Terra", "terra-luna", "Layer-1", (0.015, 0.025), crash=0.999, crash_in=(0.3, 0.6),
              trades_after_crash=(2, 5), listed_as=("LUNC", "Terra Classic")),
    DeadToken("MIR", "Mirror Protocol", "mirror-protocol", "DeFi", (0.0002, 0.0004), listed=0.1, crash=0.98,
              crash_with="LUNA", crash_days=5, trades_after_crash=(60, 100)),
    DeadToken("CEL", "Celsius", "celsius-degree-token", None, (0.0004, 0.0008), crash=0.95, crash_with="LUNA",
              crash_lag=(20, 40), crash_days=10, spot=False),
    DeadToken("FTT", "FTX Token", "ftx-token", None, (0.003, 0.005), crash=0.95, crash_in=(0.6, 0.85),
              crash_days=3),
    DeadToken("SRM", "Serum", "serum", "DeFi", (0.0003, 0.0006), listed=0.15, crash=0.95, crash_with="FTT",
              crash_days=5, trades_after_crash=(60, 120)),
    DeadToken("REN", "Ren", "republic-protocol", "Infrastructure", (0.0003, 0.0006), crash=0.93, crash_with="FTT",
              crash_lag=(0, 5), crash_days=10, trades_after_crash=(90, 150)),
    DeadToken("WAVES", "Waves", "waves", "Layer-1", (0.001, 0.002), delisted_in=(0.5, 0.8)),
    DeadToken("OMG", "OMG Network", "omisego", "Layer-2", (0.0003, 0.0006), delisted_in=(0.35, 0.7)),
    DeadToken("HNT", "Helium", "helium", "Infrastructure", (0.0005, 0.001), listed=0.3, delisted_in=(0.75, 0.9)),
)
# What the life cycle's spot pairs do, for tests: each collapse's fall over its crash days (its fall from
# peak is about as deep, over 90%); the pairs whose candles stop before the as-of day; the pairs listed
# after the first day.
COLLAPSES = {t.pair: t.crash for t in DEAD_TOKENS if t.spot and t.crash}
DELISTED = tuple(t.pair for t in DEAD_TOKENS if t.spot and (t.trades_after_crash or t.delisted_in))
LISTED_LATE = tuple(t.pair for t in DEAD_TOKENS if t.spot and t.listed > 0)


@dataclass(frozen=True)
class Untraded:
    """A coin CoinMarketCap ranks that has no candles here: a stablecoin, a wrapped or staked coin, an
    exchange token."""

    symbol: str
    name: str
    coingecko: str
    peg: str | None  # "USD"; the universe token it wraps ("BTC", "ETH"); None: a price of its own
    size: float  # share of the whole market's cap (USD: of its slow average; own price: on the first day);
    #              wrapped: share of the token's supply
    growth: float  # supply growth per year (wrapped coins)
    turnover: float  # daily volume / cap


UNTRADED = (
    Untraded("USDT", "Tether USDt", "tether", "USD", 0.03, 0.0, 0.8),
    Untraded("USDC", "USDC", "usd-coin", "USD", 0.013, 0.0, 0.3),
    Untraded("DAI", "Dai", "dai", "USD", 0.0045, 0.0, 0.1),
    Untraded("WBTC", "Wrapped Bitcoin", "wrapped-bitcoin", "BTC", 0.006, 0.0, 0.02),
    Untraded("STETH", "Lido Staked Ether", "staked-ether", "ETH", 0.03, 0.1, 0.01),
    Untraded("LEO", "UNUS SED LEO", "leo-token", None, 0.002, 0.0, 0.0005),
)
STABLE_SUPPLY_REVERSION = 0.005  # a stablecoin's supply follows the whole market's cap this slowly (a day)


@dataclass(frozen=True)
class _Market:
    """Daily paths of every token over the whole history, before listing windows are applied."""

    dates: pl.Series
    phase: np.ndarray  # (days,) index into PHASES
    log_close: np.ndarray  # (days + 1, tokens): row 0 is the close before the first day
    log_return: np.ndarray  # (days, tokens)
    day_vol: np.ndarray  # (days, tokens) expected daily volatility, for wicks
    supply: np.ndarray  # (tokens,)
    first_day: np.ndarray  # (tokens,) listing day index
    end_day: np.ndarray  # (tokens,) first day index with no trading (days when never delisted)


def generate(
    path: Path,
    as_of: dt.date,
    seed: int = 7,
    years: float = 3.5,
    universe: Universe | None = None,
) -> Path:
    """Write the dataset folder at `path` (atomically: build in a temp sibling dir, then rename).

    Returns path. Readers never see a half-written folder under the final name, even if this fails.
    """
    path = Path(path)
    universe = universe or load_universe()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.tmp-", dir=path.parent))
    try:
        frames, meta = _build(universe, as_of, seed, years)
        for name, frame in frames.items():
            frame.write_parquet(tmp / f"{name}.parquet")
        (tmp / "dataset.json").write_text(json.dumps(meta, indent=2) + "\n")
        _publish(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return path


def ensure_synthetic(cache_dir: Path, as_of: dt.date | None = None, seed: int = 7) -> Path:
    """Made on first use: return cache_dir/f"synthetic-{as_of}-seed{seed}", generating it if absent.

    as_of defaults to yesterday (UTC), the last complete day a live run would see.
    A folder an older generator made (its dataset.json names another GENERATOR) lacks files this one
    writes: it is made again, not reused.
    """
    as_of = as_of or dt.datetime.now(dt.UTC).date() - dt.timedelta(days=1)
    path = Path(cache_dir) / f"synthetic-{as_of}-seed{seed}"
    if not _made_by_this_generator(path):
        try:
            generate(path, as_of, seed=seed)
        except OSError:
            if not _made_by_this_generator(path):  # else another process published the same dataset first
                raise
    return path


def _made_by_this_generator(path: Path) -> bool:
    try:
        return json.loads((path / "dataset.json").read_text()).get("generator") == GENERATOR
    except (OSError, ValueError, AttributeError):
        return False


def _publish(tmp: Path, path: Path) -> None:
    """Rename the finished folder into place, so a reader sees the old dataset or the new one, never half."""
    if not path.exists():
        os.replace(tmp, path)
        return
    old = path.with_name(f".{path.name}.old-{os.getpid()}")
    os.replace(path, old)
    os.replace(tmp, path)
    shutil.rmtree(old)


def _build(
    universe: Universe, as_of: dt.date, seed: int, years: float
) -> tuple[dict[str, pl.DataFrame], dict]:
    """Every file's frame and dataset.json, drawn from one seeded generator in a fixed order; the life
    cycle (dead tokens, market caps) from a second stream of the same seed."""
    rng = np.random.default_rng(seed)
    tokens = universe.tokens
    names = [t.name for t in tokens]
    if "BTC" not in names:
        raise ValueError("the synthetic market needs a token named BTC in the universe")
    taken = sorted(set(names) & {t.symbol for t in DEAD_TOKENS + UNTRADED})
    if taken:
        raise ValueError(f"the synthetic market's life cycle has its own {taken}: leave them out of the universe")
    start = as_of - dt.timedelta(days=round(years * 365))
    dates = pl.date_range(start, as_of, "1d", eager=True).alias("date")
    narratives = [s for s in universe.sectors if s != CORE_SECTOR and s not in PLATFORM_SECTORS]
    phase, leader = _regimes(rng, dates.len(), len(narratives))
    market = _simulate(rng, universe, dates, phase, leader, narratives)
    four_hour = _four_hour_perps(universe)
    frames = {
        "ohlcv_1d": _ohlcv(rng, universe, market),
        "funding_8h": _funding(rng, universe, market, four_hour),
        **_tvl(rng, universe, market),
        "btc_dominance_1d": _dominance(market, names.index("BTC")),
        "regimes_1d": pl.DataFrame({"date": dates, "phase": np.asarray(PHASES)[phase]}),
    }
    frames |= _life_cycle(np.random.default_rng([seed, LIFE_CYCLE_STREAM]), universe, market, frames["ohlcv_1d"])
    meta = {
        "label": SYNTHETIC_LABEL,
        "as_of": as_of.isoformat(),
        "seed": seed,
        "generator": GENERATOR,
        "funding_interval_hours": {symbol: 4 for symbol in four_hour},
        "start": start.isoformat(),
        "description": "Deterministic synthetic market; NOT real prices.",
    }
    return frames, meta


def _regimes(rng: np.random.Generator, days: int, narratives: int) -> tuple[np.ndarray, np.ndarray]:
    """Each day's phase, and during narrative_rotation the leading narrative (index, else -1).

    Blocks walk the cycle from a random phase, with an occasional relapse from the peak into a
    second (never a third) narrative rotation; long histories hold every phase at least twice.
    """
    blocks = max(1, round(days / DAYS_PER_BLOCK))
    sequence = [int(rng.integers(len(PHASES)))]
    while len(sequence) < blocks or (
        blocks >= 2 * len(PHASES) and min(sequence.count(p) for p in range(len(PHASES))) < 2
    ):
        last = sequence[-1]
        relapsed = sequence[-3:-2] == [PEAK_CONSOLIDATION]  # the current rotation is itself a relapse
        relapse = last == PEAK_CONSOLIDATION and not relapsed and rng.random() < RELAPSE
        sequence.append(NARRATIVE_ROTATION if relapse else (last + 1) % len(PHASES))
    weights = rng.uniform(*BLOCK_DAYS, size=len(sequence))
    lengths = np.floor(weights / weights.sum() * days).astype(int)
    lengths[: days - lengths.sum()] += 1
    phase = np.repeat(sequence, lengths)
    leader = np.full(days, -1)
    if narratives:
        rotation = rng.permutation(narratives)
        turn = 0
        block_starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
        for block, first, length in zip(sequence, block_starts, lengths, strict=True):
            if block != NARRATIVE_ROTATION:
                continue
            leaders = 2 if narratives > 1 and rng.random() < TWO_LEADERS else 1
            for k, part in enumerate(np.array_split(np.arange(first, first + length), leaders)):
                leader[part] = rotation[(turn + k) % narratives]
            turn += leaders
    return phase, leader


def _simulate(
    rng: np.random.Generator,
    universe: Universe,
    dates: pl.Series,
    phase: np.ndarray,
    leader: np.ndarray,
    narratives: list[str],
) -> _Market:
    """Log price paths from market + sector + idiosyncratic returns, plus listing windows."""
    tokens = universe.tokens
    days, count = dates.len(), len(tokens)
    btc = np.array([t.name == "BTC" for t in tokens])
    bucket = np.array([BUCKETS.index(t.bucket) for t in tokens])
    lows, highs = (np.array([BETA[b][i] for b in BUCKETS])[bucket] for i in (0, 1))
    beta = np.where(btc, 1.0, rng.uniform(lows, highs))
    idio = np.where(btc, 0.0, np.array([IDIO_VOL[b] for b in BUCKETS])[bucket])

    sectors = list(universe.sectors)
    group = np.array(
        [CORE if s == CORE_SECTOR else PLATFORM if s in PLATFORM_SECTORS else NARRATIVE for s in sectors]
    )
    sector = np.array([sectors.index(t.sector) for t in tokens])
    exposure = (~btc).astype(float)
    drift = SECTOR_DRIFT[phase][:, group]
    narrative_sector = np.array([sectors.index(s) for s in narratives], dtype=int)
    led = leader >= 0
    drift[np.flatnonzero(led), narrative_sector[leader[led]]] = SECTOR_DRIFT[phase[led], LEADER]
    sector_return = _reverting(
        drift + SECTOR_VOL[phase][:, None] * rng.standard_normal((days, len(sectors))), SECTOR_REVERSION
    )
    market = BTC_DRIFT[phase] + _reverting(BTC_VOL[phase] * rng.standard_normal(days), MARKET_REVERSION)
    idio_scale = IDIO_SCALE[phase][:, None] * idio
    log_return = (
        market[:, None] * beta
        + sector_return[:, sector] * exposure
        + _reverting(idio_scale * rng.standard_normal((days, count)), IDIO_REVERSION)
    )
    day_vol = np.sqrt(
        (BTC_VOL[phase][:, None] * beta) ** 2 + (SECTOR_VOL[phase][:, None] * exposure) ** 2 + idio_scale**2
    )

    btc_price = rng.uniform(20_000, 40_000)
    log10_price = np.select(
        [btc, bucket == BUCKETS.index("core"), np.array([t.sector == MEME_SECTOR for t in tokens])],
        [np.log10(btc_price), rng.uniform(3.0, 3.4, count), rng.uniform(-6.5, -1.5, count)],
        rng.uniform(-1.3, 2.5, count),
    )
    mcap_lows, mcap_highs = (np.array([LOG10_MCAP[b][i] for b in BUCKETS])[bucket] for i in (0, 1))
    others = np.where(btc, 0.0, 10 ** rng.uniform(mcap_lows, mcap_highs))
    # Scale the others' caps so that the first day's dominance lands in START_DOMINANCE.
    btc_cap = BTC_SUPPLY * btc_price
    others *= (btc_cap / (rng.uniform(*START_DOMINANCE) / 100) * COVERAGE - btc_cap) / others.sum()
    supply = np.where(btc, BTC_SUPPLY, others / 10**log10_price)
    log_close = np.log(10.0) * log10_price + np.vstack([np.zeros(count), np.cumsum(log_return, axis=0)])

    first_day, end_day = _listing_windows(rng, universe, days)
    return _Market(dates, phase, log_close, log_return, day_vol, supply, first_day, end_day)


def _reverting(shocks: np.ndarray, reversion: float) -> np.ndarray:
    """Daily changes of a level that accumulates `shocks` (per day, first axis) and decays by `reversion`."""
    level = np.zeros((shocks.shape[0] + 1, *shocks.shape[1:]))
    for t in range(shocks.shape[0]):
        level[t + 1] = level[t] * (1 - reversion) + shocks[t]
    return np.diff(level, axis=0)


def _listing_windows(
    rng: np.random.Generator, universe: Universe, days: int
) -> tuple[np.ndarray, np.ndarray]:
    """First and end (exclusive) trading day per token: about a third of the alts list after the start,
    spread through the history, and two speculative tokens delist 150-300 days before as_of.

    Young sectors and speculative tokens list late far more often than Layer-1s and DeFi blue chips.
    """
    tokens = universe.tokens
    count = len(tokens)
    weight = np.array(
        [
            LATE_LISTING_WEIGHT.get(t.sector, 1.0)
            * (SPECULATIVE_LATE_LISTING if t.bucket == "speculative" else 1.0)
            for t in tokens
        ]
    )
    late_count = round(np.count_nonzero(weight) * LATE_LISTED_SHARE)
    late = rng.choice(count, size=late_count, replace=False, p=weight / weight.sum())
    spread = (np.arange(late.size) + rng.uniform(0.1, 0.9, late.size)) / max(late.size, 1)
    first_day = np.zeros(count, dtype=int)
    first_day[rng.permutation(late)] = (days * (0.05 + 0.8 * spread)).astype(int)

    end_day = np.full(count, days)
    candidates = [i for i, t in enumerate(tokens) if t.bucket == "speculative" and first_day[i] == 0]
    delisted = rng.choice(candidates, size=min(UNIVERSE_DELISTED, len(candidates)), replace=False)
    days_before_as_of = rng.integers(*DELIST_DAYS_BEFORE_AS_OF, size=delisted.size)
    end_day[delisted] = np.maximum(days - days_before_as_of, days // 2)
    return first_day, end_day


def _ohlcv(rng: np.random.Generator, universe: Universe, market: _Market) -> pl.DataFrame:
    """The universe's daily candles."""
    bucket = np.array([BUCKETS.index(t.bucket) for t in universe.tokens])
    lows, highs = (np.array([LOG10_TURNOVER[b][i] for b in BUCKETS])[bucket] for i in (0, 1))
    return _candles(
        rng, [t.spot for t in universe.tokens], market.dates, market.phase, market.log_close,
        market.log_return, market.day_vol, market.supply, (lows, highs), market.first_day, market.end_day,
    )


def _candles(
    rng: np.random.Generator,
    symbols: list[str],
    dates: pl.Series,
    phase: np.ndarray,
    log_close: np.ndarray,
    move: np.ndarray,
    day_vol: np.ndarray,
    supply: np.ndarray,
    log10_turnover: tuple[np.ndarray, np.ndarray],
    first_day: np.ndarray,
    end_day: np.ndarray,
) -> pl.DataFrame:
    """Daily candles: open is the previous close, wicks scale with the day's volatility, volume with cap.

    `move` is the day's log move that volume surges with (big moves trade more).
    """
    days, count = move.shape
    close = np.exp(log_close[1:])
    open_ = np.exp(log_close[:-1])
    wick = 0.5 * day_vol
    high = np.maximum(open_, close) * np.exp(wick * np.abs(rng.standard_normal((days, count))))
    low = np.minimum(open_, close) * np.exp(-wick * np.abs(rng.standard_normal((days, count))))
    turnover = 10 ** rng.uniform(*log10_turnover)
    surprise = np.exp(0.3 * rng.standard_normal((days, count)) + 6 * np.abs(move))
    dollar_volume = supply * close * turnover * ACTIVITY[phase][:, None] * surprise
    day = np.arange(days)[:, None]
    trading = (day >= first_day) & (day < end_day)
    rows, cols = np.nonzero(trading.T)  # token-major: each symbol's days in order
    return pl.DataFrame(
        {
            "exchange": pl.Series([SPOT_EXCHANGE] * rows.size, dtype=pl.String),
            "symbol": np.array(symbols)[rows],
            "date": dates.gather(cols),
            "open": open_[cols, rows],
            "high": high[cols, rows],
            "low": low[cols, rows],
            "close": close[cols, rows],
            "volume": (dollar_volume / close)[cols, rows],
        }
    )


def _four_hour_perps(universe: Universe) -> list[str]:
    """Binance settles some hot meme perps every 4 hours: pick memes first, then other speculative perps."""
    perps = [t for t in universe.tokens if t.perp]
    ranked = sorted(perps, key=lambda t: (t.sector != MEME_SECTOR, t.bucket != "speculative"))
    return [t.perp for t in ranked[:FOUR_HOUR_PERPS]]


def _contract_size(spot: str, perp: str) -> int:
    """Units of spot per perp contract, e.g. 1000 for 1000PEPE/USDT:USDT against PEPE/USDT."""
    base = spot.split("/")[0]
    match = re.fullmatch(rf"(\d+){re.escape(base)}", perp.split("/")[0])
    return int(match[1]) if match else 1


def _funding(
    rng: np.random.Generator, universe: Universe, market: _Market, four_hour: list[str]
) -> pl.DataFrame:
    """Funding per interval: the regime's base rate plus a premium for the token's 7-day run, clipped."""
    days = market.log_return.shape[0]
    momentum = market.log_close[1:] - market.log_close[np.maximum(np.arange(days) + 1 - 7, 0)]
    rate_8h = FUNDING_BASE_8H[market.phase][:, None] + FUNDING_MOMENTUM * momentum
    day_ns = market.dates.cast(pl.Datetime("ns")).cast(pl.Int64).to_numpy()
    parts = []
    for i, token in enumerate(universe.tokens):
        if not token.perp:
            continue
        lag = int(rng.integers(0, 30)) if market.first_day[i] > 0 else 0
        interval = 4 if token.perp in four_hour else 8
        per_day = 24 // interval
        first, end = min(market.first_day[i] + lag, market.end_day[i]), market.end_day[i]
        day = np.repeat(np.arange(first, end), per_day)
        hour = np.tile(np.arange(0, 24, interval), day.size // per_day)
        noise = 0.00005 * rng.standard_normal(day.size)
        rate = np.clip((rate_8h[day, i] + noise) * interval / 8, -FUNDING_CLIP, FUNDING_CLIP)
        fraction = hour / 24
        log_mark = (1 - fraction) * market.log_close[day, i] + fraction * market.log_close[day + 1, i]
        parts.append(
            pl.DataFrame(
                {
                    "exchange": pl.Series([PERP_EXCHANGE] * day.size, dtype=pl.String),
                    "symbol": pl.Series([token.perp] * day.size, dtype=pl.String),
                    "ts": pl.Series(day_ns[day] + hour * 3_600_000_000_000, dtype=pl.Int64)
                    .cast(pl.Datetime("ns"))
                    .dt.replace_time_zone("UTC"),
                    "funding_rate": np.round(rate, 8),
                    "mark_price": np.exp(log_mark) * _contract_size(token.spot, token.perp),
                }
            )
        )
    return pl.concat(parts)


def _tvl_path(
    rng: np.random.Generator, market: _Market, token: int, log10_start: tuple[float, float], elasticity: float
) -> np.ndarray:
    """TVL follows its token's price (deposits are priced in it) and the regime's inflows/outflows."""
    days = market.phase.size
    flows = np.cumsum(TVL_DRIFT[market.phase] + 0.006 * rng.standard_normal(days))
    price = market.log_close[1:, token] - market.log_close[0, token]
    return 10 ** rng.uniform(*log10_start) * np.exp(elasticity * price + flows)


def _tvl(rng: np.random.Generator, universe: Universe, market: _Market) -> dict[str, pl.DataFrame]:
    """Chain TVL (from the chain token's listing), total TVL (incl. untracked chains), protocol TVL."""
    chains: dict[str, np.ndarray] = {}
    chain_start: dict[str, int] = {}
    protocols: dict[str, np.ndarray] = {}
    protocol_start: dict[str, int] = {}
    for i, token in enumerate(universe.tokens):
        if token.defillama_chain and token.defillama_chain.lower() not in chains:
            log10_start = (10.3, 10.7) if token.bucket == "core" else (8.7, 9.9)
            chains[token.defillama_chain.lower()] = _tvl_path(rng, market, i, log10_start, 0.6)
            chain_start[token.defillama_chain.lower()] = int(market.first_day[i])
        if token.defillama and token.defillama not in protocols:
            protocols[token.defillama] = _tvl_path(rng, market, i, (8.5, 10.2), 0.5)
            protocol_start[token.defillama] = int(market.first_day[i])
    untracked = rng.uniform(1.25, 1.45)
    total = untracked * np.sum(list(chains.values()), axis=0)
    return {
        "chain_tvl_1d": _long(market.dates, "chain", chains, chain_start),
        "total_tvl_1d": pl.DataFrame({"date": market.dates, "tvl_usd": np.round(total).astype(np.int64)}),
        "protocol_tvl_1d": _long(market.dates, "protocol", protocols, protocol_start),
    }


def _long(dates: pl.Series, key: str, paths: dict[str, np.ndarray], start: dict[str, int]) -> pl.DataFrame:
    return pl.concat(
        [
            pl.DataFrame(
                {
                    "date": dates[start[name] :],
                    key: pl.Series([name] * (dates.len() - start[name]), dtype=pl.String),
                    "tvl_usd": np.round(path[start[name] :]).astype(np.int64),
                }
            )
            for name, path in paths.items()
        ]
    )


def _dominance(market: _Market, btc: int) -> pl.DataFrame:
    """BTC's share of the whole market's cap; the universe holds COVERAGE of that market."""
    market_cap = market.supply * np.exp(market.log_close[1:])
    total = _whole_market_cap(market)
    return pl.DataFrame(
        {
            "date": market.dates,
            "btc_dominance_pct": 100 * market_cap[:, btc] / total,
            "total_market_cap_usd": total,
        }
    )


@dataclass(frozen=True)
class _Caps:
    """Daily figures of coins CoinMarketCap ranks: (days, coins) arrays, and who the coins are."""

    symbol: list[str]
    name: list[str]
    coingecko: list[str]
    price: np.ndarray  # USD close
    supply: np.ndarray  # circulating supply
    volume_usd: np.ndarray  # traded in the day
    listed: np.ndarray  # (coins,) first day it is ranked


@dataclass(frozen=True)
class _DeadPaths:
    """The dead tokens' daily paths (DEAD_TOKENS order), priced on after their candles stop."""

    log_close: np.ndarray  # (days + 1, tokens)
    log_return: np.ndarray  # (days, tokens)
    day_vol: np.ndarray  # (days, tokens)
    supply: np.ndarray  # (tokens,)
    first_day: np.ndarray  # (tokens,)
    end_day: np.ndarray  # (tokens,) first day without candles (days: trades to the as-of)


def _life_cycle(
    rng: np.random.Generator, universe: Universe, market: _Market, ohlcv: pl.DataFrame
) -> dict[str, pl.DataFrame]:
    """The dead tokens' candles and the monthly market-cap ranking of every coin."""
    total = _whole_market_cap(market)
    dead = _dead_paths(rng, universe, market, total)
    spot = np.array([t.spot for t in DEAD_TOKENS])
    pairs = [t.pair for t in DEAD_TOKENS if t.spot]
    turnover = (np.full(len(pairs), LOG10_DEAD_TURNOVER[0]), np.full(len(pairs), LOG10_DEAD_TURNOVER[1]))
    delisted = _candles(
        rng, pairs, market.dates, market.phase, dead.log_close[:, spot],
        np.clip(dead.log_return[:, spot], -VOLUME_SURGE_MOVE, VOLUME_SURGE_MOVE), dead.day_vol[:, spot],
        dead.supply[spot], turnover, dead.first_day[spot], dead.end_day[spot],
    )
    caps = [
        _universe_caps(universe, market, ohlcv),
        _dead_caps(dead, delisted, market.dates),
        _untraded_caps(rng, universe, market, total),
        _filler_caps(rng, total),
    ]
    return {"ohlcv_1d_delisted": delisted, "market_caps_monthly": _ranking(caps, market.dates)}


def _whole_market_cap(market: _Market) -> np.ndarray:
    """The whole market's cap per day (BTC dominance's denominator): the universe holds COVERAGE of it."""
    return (market.supply * np.exp(market.log_close[1:])).sum(axis=1) / COVERAGE


def _dead_paths(rng: np.random.Generator, universe: Universe, market: _Market, total: np.ndarray) -> _DeadPaths:
    """Each dead token moves with its sector's average plus a reverting move of its own, crashes where it
    has a crash and bleeds on after it; once its candles stop it slides on elsewhere, out of the ranking."""
    days, count = market.phase.size, len(DEAD_TOKENS)
    tokens = universe.tokens
    btc = [t.name for t in tokens].index("BTC")
    base = np.empty((days, count))
    base_vol = np.empty((days, count))
    for j, dead in enumerate(DEAD_TOKENS):
        peers = [i for i, t in enumerate(tokens) if t.sector == dead.follows]
        if peers:
            base[:, j] = market.log_return[:, peers].mean(axis=1)
            base_vol[:, j] = market.day_vol[:, peers].mean(axis=1)
        else:
            base[:, j] = NO_SECTOR_BETA * market.log_return[:, btc]
            base_vol[:, j] = NO_SECTOR_BETA * market.day_vol[:, btc]
    idio = DEAD_IDIO_VOL * IDIO_SCALE[market.phase][:, None]
    log_return = base + _reverting(idio * rng.standard_normal((days, count)), IDIO_REVERSION)
    day_vol = np.sqrt(base_vol**2 + idio**2)

    first_day = np.array([int(t.listed * days) for t in DEAD_TOKENS])
    crash_day, end_day = _fates(rng, market, first_day)
    day = np.arange(days)
    for j, dead in enumerate(DEAD_TOKENS):
        if crash_day[j] >= 0:
            crash = slice(crash_day[j], min(crash_day[j] + dead.crash_days, days))
            steps = crash.stop - crash.start
            log_return[crash, j] += np.log1p(-dead.crash) * rng.dirichlet(np.ones(steps))
            after = day >= crash.stop
            log_return[after, j] += POST_CRASH_DRIFT + POST_CRASH_VOL * rng.standard_normal(after.sum())
            day_vol[crash.start :, j] = np.maximum(day_vol[crash.start :, j], POST_CRASH_VOL)
            day_vol[crash, j] = np.maximum(day_vol[crash, j], np.abs(log_return[crash, j]))
        log_return[day >= end_day[j], j] += DEAD_DRIFT

    listing_price = 10 ** rng.uniform(-0.5, 1.5, count)
    level = np.vstack([np.zeros(count), np.cumsum(log_return, axis=0)])
    log_close = level - level[first_day, np.arange(count)] + np.log(listing_price)
    share = rng.uniform(*np.array([t.share for t in DEAD_TOKENS]).T)
    supply = share * total[first_day] / listing_price
    return _DeadPaths(log_close, log_return, day_vol, supply, first_day, end_day)


def _fates(rng: np.random.Generator, market: _Market, first_day: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each dead token's crash day (-1: none) and end day (exclusive; days: it trades to the as-of).

    A short history squeezes the fates in: every crash and every last candle still falls before the as-of.
    """
    days = market.phase.size
    symbols = [t.symbol for t in DEAD_TOKENS]
    day_of_month = market.dates.dt.day().to_numpy()
    crash_day = np.full(len(DEAD_TOKENS), -1)
    end_day = np.full(len(DEAD_TOKENS), days)

    def window(span: tuple[float, float]) -> np.ndarray:
        return np.arange(int(span[0] * days), max(int(span[1] * days), int(span[0] * days) + 1))

    for j, dead in enumerate(DEAD_TOKENS):
        if dead.crash_in:
            span = window(dead.crash_in)
            bear = span[market.phase[span] == PHASES.index("bear")]
            crash_day[j] = rng.choice(bear if bear.size else span)
        elif dead.crash_with:
            crash_day[j] = crash_day[symbols.index(dead.crash_with)] + rng.integers(*dead.crash_lag)
        if crash_day[j] >= 0:
            crash_day[j] = min(max(crash_day[j], first_day[j] + 1), days - dead.crash_days - 2)
        if dead.trades_after_crash:
            end_day[j] = min(crash_day[j] + dead.crash_days + rng.integers(*dead.trades_after_crash), days - 1)
        elif dead.delisted_in:
            span = window(dead.delisted_in)
            mid_month = span[(day_of_month[span] >= 8) & (day_of_month[span] <= 22)]
            end_day[j] = min(rng.choice(mid_month if mid_month.size else span) + 1, days - 1)
    return crash_day, end_day


def _daily_dollar_volume(candles: pl.DataFrame, symbols: list[str], dates: pl.Series) -> np.ndarray:
    """Each symbol's close x volume per day, as a (days, symbols) array; NaN where it has no candle."""
    out = np.full((dates.len(), len(symbols)), np.nan)
    column = candles["symbol"].replace_strict({s: i for i, s in enumerate(symbols)}, return_dtype=pl.Int64)
    day = (candles["date"] - dates[0]).dt.total_days()
    out[day.to_numpy(), column.to_numpy()] = (candles["close"] * candles["volume"]).to_numpy()
    return out


def _priced_on(log_close: np.ndarray, end_day: np.ndarray) -> np.ndarray:
    """Daily closes, continued after a token's last candle with DEAD_DRIFT a day (it trades on elsewhere)."""
    days = log_close.shape[0] - 1
    gone = np.maximum(np.arange(days)[:, None] - end_day + 1, 0)
    return np.exp(log_close[1:] + DEAD_DRIFT * gone)


def _universe_caps(universe: Universe, market: _Market, ohlcv: pl.DataFrame) -> _Caps:
    """The universe's caps: fixed supply x close (a delisted token's slides on), ranked from its listing."""
    tokens = universe.tokens
    price = _priced_on(market.log_close, market.end_day)
    supply = np.broadcast_to(market.supply, price.shape)
    volume = _daily_dollar_volume(ohlcv, [t.spot for t in tokens], market.dates)
    return _Caps(
        [t.name for t in tokens], [CMC_NAMES.get(t.name, t.name) for t in tokens], [t.coingecko for t in tokens],
        price, supply, np.where(np.isnan(volume), price * supply * OFF_EXCHANGE_TURNOVER, volume), market.first_day,
    )


def _dead_caps(dead: _DeadPaths, candles: pl.DataFrame, dates: pl.Series) -> _Caps:
    """The dead tokens' caps: the price their log_close already carries on after the last candle."""
    price = np.exp(dead.log_close[1:])
    supply = np.broadcast_to(dead.supply, price.shape)
    volume = _daily_dollar_volume(candles, [t.pair for t in DEAD_TOKENS], dates)
    return _Caps(
        [t.ticker for t in DEAD_TOKENS], [t.cmc_name for t in DEAD_TOKENS], [t.coingecko for t in DEAD_TOKENS],
        price, supply, np.where(np.isnan(volume), price * supply * OFF_EXCHANGE_TURNOVER, volume), dead.first_day,
    )


def _untraded_caps(rng: np.random.Generator, universe: Universe, market: _Market, total: np.ndarray) -> _Caps:
    """Stablecoins at about $1 with a supply that follows the whole market's cap slowly, wrapped and
    staked coins at their token's close, an exchange token on a quiet walk of its own. A wrapper of a
    token the universe lacks is left out."""
    days = market.phase.size
    names = [t.name for t in universe.tokens]
    close = np.exp(market.log_close[1:])
    coins = [c for c in UNTRADED if c.peg in (None, "USD") or c.peg in names]
    growth = np.exp(np.arange(days)[:, None] / 365 * np.array([c.growth for c in coins]))
    price = np.empty((days, len(coins)))
    base_supply = np.empty(len(coins))
    for j, coin in enumerate(coins):
        if coin.peg == "USD":
            price[:, j] = 1 + np.clip(0.0005 * rng.standard_normal(days), -0.003, 0.003)
            base_supply[j] = coin.size
        elif coin.peg is None:
            start = 10 ** rng.uniform(0.0, 1.0)
            price[:, j] = start * np.exp(np.cumsum(_reverting(0.01 * rng.standard_normal(days), 0.01)))
            base_supply[j] = coin.size * total[0] / start
        else:
            token = names.index(coin.peg)
            price[:, j] = close[:, token] * (1 + 0.001 * rng.standard_normal(days))
            base_supply[j] = coin.size * market.supply[token]
    usd = np.array([c.peg == "USD" for c in coins])
    supply = base_supply * np.where(usd, _slow(total, STABLE_SUPPLY_REVERSION)[:, None], growth)
    turnover = np.array([c.turnover for c in coins]) * np.exp(0.3 * rng.standard_normal((days, len(coins))))
    return _Caps(
        [c.symbol for c in coins], [c.name for c in coins], [c.coingecko for c in coins],
        price, supply, price * supply * turnover, np.zeros(len(coins), dtype=int),
    )


def _slow(series: np.ndarray, reversion: float) -> np.ndarray:
    """An exponential moving average that closes `reversion` of its gap to `series` a day."""
    out = np.empty_like(series)
    out[0] = series[0]
    for t in range(1, series.size):
        out[t] = out[t - 1] + reversion * (series[t] - out[t - 1])
    return out


def _filler_caps(rng: np.random.Generator, total: np.ndarray) -> _Caps:
    """Small untraded coins (SYN001.. "Synthetic Filler 1"..): a share of the whole market below the
    universe's mids, on a reverting walk of its own, so that every snapshot has RANKED coins."""
    days = total.size
    share = 10 ** rng.uniform(*LOG10_FILLER_SHARE, FILLERS)
    walk = np.cumsum(_reverting(0.03 * rng.standard_normal((days, FILLERS)), 0.01), axis=0)
    cap = share * total[:, None] * np.exp(walk)
    supply = cap[0] / 10 ** rng.uniform(-3.0, 1.5, FILLERS)
    turnover = 10 ** rng.uniform(-2.2, -1.3, FILLERS) * np.exp(0.3 * rng.standard_normal((days, FILLERS)))
    numbers = range(1, FILLERS + 1)
    return _Caps(
        [f"SYN{n:03d}" for n in numbers], [f"Synthetic Filler {n}" for n in numbers],
        [f"synthetic-filler-{n}" for n in numbers],
        cap / supply, np.broadcast_to(supply, cap.shape), cap * turnover, np.zeros(FILLERS, dtype=int),
    )


def _ranking(parts: list[_Caps], dates: pl.Series) -> pl.DataFrame:
    """The top RANKED coins by cap on the first of each month before the as-of day (the last date): a
    snapshot dated D is D's close, known from D+1. Ranks run 1..n by cap, ties by symbol."""
    snapshot = np.flatnonzero(dates.dt.day().to_numpy() == 1)
    snapshot = snapshot[snapshot < dates.len() - 1]
    frames = []
    for part in parts:
        at, coin = np.nonzero(snapshot[:, None] >= part.listed)
        day = snapshot[at]
        price, supply = part.price[day, coin], part.supply[day, coin]
        frames.append(
            pl.DataFrame(
                {
                    "snapshot_date": dates.gather(day),
                    "symbol": np.array(part.symbol, dtype=object)[coin],
                    "name": np.array(part.name, dtype=object)[coin],
                    "market_cap_usd": supply * price,
                    "price_usd": price,
                    "circulating_supply": supply,
                    "volume_24h_usd": part.volume_usd[day, coin],
                    "coingecko_id": np.array(part.coingecko, dtype=object)[coin],
                },
                schema_overrides={"symbol": pl.String, "name": pl.String, "coingecko_id": pl.String},
            )
        )
    return (
        pl.concat(frames)
        .sort(["snapshot_date", "market_cap_usd", "symbol"], descending=[False, True, False])
        .with_columns(rank=pl.int_range(1, pl.len() + 1, dtype=pl.Int32).over("snapshot_date"))
        .filter(pl.col("rank") <= RANKED)
        .select(pl.col(name).cast(dtype) for name, dtype in MARKET_CAP_COLUMNS.items())
    )
