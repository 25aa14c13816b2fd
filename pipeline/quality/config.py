"""Thresholds and the per-expectation policy of the quality gate, with defaults; a validated pydantic
model so a typo in an override fails loudly instead of silently loosening a check."""

from __future__ import annotations

import datetime as dt
from functools import cache
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from pipeline.config_file import ConfigError, load_model, read_yaml

DEFAULT_QUALITY = Path(__file__).resolve().parents[1] / "quality.yaml"
Action = Literal["block", "warn"]

# The shipped policy: isolated one-row defects that can be dropped safely only quarantine and warn;
# every other failed expectation blocks (the default for names not listed).
SHIPPED_POLICY: dict[str, Action] = {
    "raw.btc_dominance.one_day_spike": "warn",  # a vendor glitch that reverts the next day
    "raw.ohlcv_1d.stale_symbol": "warn",  # membership drops it from the day's universe anyway
    # a close (or open) the prices around it contradict: a glitch the table is better without; a
    # newest candle's big move is held until the next day
    "raw.ohlcv_1d.price_spike": "warn",
    "raw.ohlcv_1d.open_spike": "warn",
    "raw.ohlcv_1d.unconfirmed_jump": "warn",
    # the vendor's rank, as it was: CoinMarketCap's are off its own caps by a few places now and then
    "raw.market_caps.rank_follows_cap": "warn",
}


class QualityConfigError(ConfigError):
    """The quality config file is missing, not YAML, or has a bad field; the message names which."""


class AcceptedGap(BaseModel):
    """Days a person checked and accepted as missing at the exchange (e.g. a trading halt)."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    symbol: str
    first: dt.date
    last: dt.date
    reason: str = Field(min_length=1)


class QualityConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    # A funding rate is a fraction per interval; 3% per interval is already far outside what
    # exchanges cap funding at, while a unit slip (0.5 = 50%, percent read as fraction) is caught.
    funding_rate_max_abs: float = Field(0.03, gt=0)
    # Largest plausible one-day move of BTC dominance, in percentage points. The real CoinGecko
    # history's largest genuine moves are <= 5 pp (2018-12-24: 4.96 pp), its known glitches are
    # 6.1-7.5 pp (2018-01-16/17, 2020-05-10/11), so 5.5 pp separates them; 8 pp would pass both.
    dominance_jump_max_pp: float = Field(5.5, gt=0)
    # A close more than this factor away from both neighbouring closes, which agree with each other
    # within it, is a spike: a glitch. In the real history (ohlcv_1d and ohlcv_1d_delisted, 167k
    # candles, 2020-2025) no day that reverts the next moves more than x1.68 each way (SUSHI
    # 2020-09-05); decimal and unit slips are x10 and more. LUNA's collapse (x16 and x3365 down on
    # 2022-05-11/12) never reverts, so it is no spike. An open is a spike by the same factor between
    # the close before it and its own close: real opens are within 2.4% of the close before (HIVE
    # 2021-05-20, consecutive days). The same factor holds a series' newest candle
    # (no next day yet to confirm it) when it moves further from the close before: of the 167k real
    # candles 5 would wait a night (DOGE x4.9 up 2021-01-28, OM x6.2 down 2025-04-13, LUNA's three
    # collapse days), none longer.
    candle_spike_max_factor: float = Field(3.0, gt=1)
    # Consecutive daily candles of one symbol may be at most this many days apart.
    candle_gap_max_days: int = Field(1, ge=1)
    accepted_gaps: tuple[AcceptedGap, ...] = ()
    # More accepted gaps, each file a YAML list of {symbol, first, last, reason}, relative to this
    # file: a long list generated from a recording stays out of the file a user edits.
    accepted_gaps_files: tuple[str, ...] = ()
    # Freshness: a series whose newest row is older than the validated day minus this is stale...
    stale_after_days: int = Field(2, ge=0)
    # ...if it had a row within this many days (older series are gone: delisted, not stale).
    freshness_lookback_days: int = Field(14, ge=1)
    # A sector index moves at most this factor in a day, either way (ret_1d in [1/f - 1, f - 1]). The
    # real history's largest index days are +392% (Memes 2021-01-28, DOGE its one constituent) and
    # -40%; the synthetic market's +28% / -22%. A x1000 glitch in a constituent is far beyond.
    index_day_max_factor: float = Field(10.0, gt=1)
    # The alts composite against BTC over the leadership window (market_regime.alts_vs_btc_pct) moves
    # at most this factor either way: the real history spans -44% .. +110% (2021's alt season),
    # the synthetic market -28% .. +57%.
    alts_vs_btc_max_factor: float = Field(10.0, gt=1)
    # A vendor's rank at most this many places from the coin's place by market cap in its snapshot:
    # CoinMarketCap's recorded history has 3 rows further off than 20 (Edelcoin 184 places, WAX 23,
    # MediBloc 21), 18 beyond 5; a rank and cap that belong to different coins are far beyond.
    market_cap_rank_max_offset: int = Field(20, ge=0)
    # How many failing rows each failure carries as examples (all failing rows are always indexed).
    example_rows: int = Field(5, ge=0)
    # "<table>.<expectation name>" -> block | warn; unlisted names block.
    policy: dict[str, Action] = Field(default_factory=lambda: dict(SHIPPED_POLICY))

    @model_validator(mode="after")
    def _lookback_covers_staleness(self) -> QualityConfig:
        if self.freshness_lookback_days <= self.stale_after_days:
            raise ValueError("freshness_lookback_days must be above stale_after_days")
        return self

    def __hash__(self) -> int:  # the policy is a dict; the suites are cached per config
        return hash(self.model_dump_json())

    def action(self, name: str) -> Action:
        return self.policy.get(name, "block")

    def every_block(self) -> QualityConfig:
        """The same thresholds with every expectation blocking (what the defect tests run with)."""
        return self.model_copy(update={"policy": {}})


def load_quality_config(path: str | Path | None = None) -> QualityConfig:
    return _load_cached(Path(path or DEFAULT_QUALITY).resolve())


@cache
def _load_cached(path: Path) -> QualityConfig:
    config = load_model(path, QualityConfig, QualityConfigError, "quality")
    gaps = list(config.accepted_gaps)
    for name in config.accepted_gaps_files:
        listed = read_yaml(path.parent / name, QualityConfigError, "accepted gaps")
        if not isinstance(listed, list):
            raise QualityConfigError(f"{path.parent / name}: expected a list of {{symbol, first, last, reason}}")
        try:
            gaps += [AcceptedGap(**entry) for entry in listed]
        except (TypeError, ValidationError) as exc:
            raise QualityConfigError(f"{path.parent / name}: {exc}") from None
    config = config.model_copy(update={"accepted_gaps": tuple(gaps)})
    from pipeline.quality.validate import expectation_names  # the suites import this module

    unknown = sorted(set(config.policy) - expectation_names(config))
    if unknown:
        raise QualityConfigError(f"{path}: policy: unknown expectation(s) {unknown}; known: {sorted(expectation_names(config))}")
    return config
