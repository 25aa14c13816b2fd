"""Thresholds of the quality suites, with defaults; a validated pydantic model so a typo in an
override fails loudly instead of silently loosening a check."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class QualityConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    # A funding rate is a fraction per interval; 3% per interval is already far outside what
    # exchanges cap funding at, while a unit slip (0.5 = 50%, percent read as fraction) is caught.
    funding_rate_max_abs: float = Field(0.03, gt=0)
    # Largest plausible one-day move of BTC dominance, in percentage points. The real CoinGecko
    # history's largest genuine moves are <= 5 pp (2018-12-24: 4.96 pp), its known glitches are
    # 6.1-7.5 pp (2018-01-16/17, 2020-05-10/11), so 5.5 pp separates them; 8 pp would pass both.
    dominance_jump_max_pp: float = Field(5.5, gt=0)
    # Consecutive daily candles of one symbol may be at most this many days apart.
    candle_gap_max_days: int = Field(1, ge=1)
    # How many failing rows each failure carries as examples (all failing rows are always indexed).
    example_rows: int = Field(5, ge=0)
