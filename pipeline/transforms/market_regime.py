"""Market phase per day (`marts.market_regime`): where the cycle is, from the evidence the seeds use.

Evidence, each a column of the mart (null where its input has no data yet, and then named in
`missing_inputs`): BTC trend (price vs its long moving average), momentum and realised volatility;
the BTC dominance trend; breadth (altcoin-season index); the alts composite's strength vs BTC;
which sectors lead (Layer-1/L2/infrastructure vs the narratives, by relative-strength momentum);
DeFi TVL growth; and the BTC funding regime.

Rules, first match wins (thresholds in the `Regime` config):
1. bear: BTC below its trend average and either falling (momentum <= bear_momentum_pct), or with
   shorts paying funding, or with DeFi TVL draining (30-day growth <= tvl_outflow_30d).
2. peak_consolidation: BTC above its trend but whipsawing (volatility >= peak_volatility_pct).
3. alts winning (alts composite beats BTC by alts_outperform_pct, or breadth >= breadth_wide) with
   BTC above its trend: altcoin_surge when the platform sectors lead, narrative_rotation when a
   narrative leads. Below its trend, alts winning is a bear-market rally (2022 had two), not an
   alt season: rules 4-5 read it (btc_dominance).
4. btc_dominance: alts losing (composite trails BTC by alts_underperform_pct, or dominance rising
   by dominance_rising_pp).
5. peak_consolidation when BTC is still above its trend (alts no longer winning, not yet losing);
   else btc_dominance (BTC recovering below its trend, alts not keeping up).
Hysteresis: a new raw phase becomes the phase only after `confirm_days` days in a row (calendar
days: a day missing from the inputs carries the day before's raw phase).
"""

from __future__ import annotations

import math

import polars as pl

from pipeline.transforms.config import Regime
from pipeline.transforms.relative_strength import with_missing_days

PHASES = ("btc_dominance", "altcoin_surge", "narrative_rotation", "peak_consolidation", "bear")
EVIDENCE = (
    "btc_trend_pct",
    "btc_momentum_pct",
    "btc_volatility_pct",
    "btc_dominance_pct",
    "btc_dominance_trend",
    "altseason_index",
    "alts_vs_btc_pct",
    "platform_lead_pct",
    "tvl_growth_30d",
    "btc_funding_apr_pct",
)


def lagged(frame: pl.LazyFrame, keys: list[str], column: str, days: int, alias: str) -> pl.LazyFrame:
    """Adds `alias`: `column`'s value exactly `days` calendar days earlier (null if that day is absent)."""
    past = frame.select(*keys, pl.col("date") + pl.duration(days=days), pl.col(column).alias(alias))
    return frame.join(past, on=[*keys, "date"], how="left", maintain_order="left")


def tvl_growth(tvl: pl.LazyFrame | pl.DataFrame, days: int) -> pl.LazyFrame:
    """date, tvl_growth: all-chain TVL growth over `days` where DefiLlama's total exists, else the
    growth of the summed chains that have a value on both days (so a chain's launch is no growth)."""
    series = tvl.lazy().filter(pl.col("scope").is_in(["total", "chain"])).select("scope", "name", "date", "tvl_usd")
    paired = lagged(series, ["scope", "name"], "tvl_usd", days, "_past").filter(pl.col("_past").is_not_null())
    return (
        paired.group_by("date", "scope")
        .agg(growth=pl.col("tvl_usd").sum() / pl.col("_past").sum() - 1)
        .group_by("date")
        .agg(tvl_growth=pl.col("growth").sort_by(pl.col("scope") != "total").first())
    )


def leadership(relative_strength: pl.LazyFrame, alts_sector: str, cfg: Regime) -> pl.LazyFrame:
    """date, alts_vs_btc_pct, platform_lead_pct (mean platform minus mean narrative RS momentum),
    leading_sector (the platform or narrative sector with the strongest RS momentum)."""
    momentum = pl.col(f"rs_mom_{cfg.leadership_days}d_pct")
    sector = pl.col("sector")
    contenders = sector.is_in([*cfg.platform_sectors, *cfg.narrative_sectors]) & momentum.is_not_null()
    return (
        relative_strength.lazy()
        .group_by("date")
        .agg(
            alts_vs_btc_pct=momentum.filter(sector == alts_sector).first(),
            _platform=momentum.filter(sector.is_in(cfg.platform_sectors)).mean(),
            _narrative=momentum.filter(sector.is_in(cfg.narrative_sectors)).mean(),
            # equal momenta: the first name, not whichever row came first
            leading_sector=sector.filter(contenders)
            .sort_by(momentum.filter(contenders), sector.filter(contenders), descending=[True, False])
            .first(),
        )
        .with_columns(platform_lead_pct=pl.col("_platform") - pl.col("_narrative"))
        .drop("_platform", "_narrative")
    )


def market_features(
    btc_level: pl.LazyFrame,
    dominance: pl.LazyFrame,
    altseason: pl.LazyFrame,
    relative_strength: pl.LazyFrame,
    tvl: pl.LazyFrame,
    btc_funding: pl.LazyFrame,
    alts_sector: str,
    cfg: Regime,
) -> pl.LazyFrame:
    """One row per BTC index day with every piece of evidence (see EVIDENCE).

    btc_level: date, level (the BTC index, a daily calendar). dominance: date, btc_dominance_pct.
    altseason: the mart. relative_strength: the mart. tvl: raw.defi_tvl rows. btc_funding: date,
    funding_apr_pct (trailing, annualised).
    """
    level = pl.col("level").forward_fill()  # a day missing from the index carries the day before's level
    btc = (
        with_missing_days(btc_level.lazy().select("date", "level"), [])
        .with_columns(
            btc_trend_pct=100.0
            * (pl.col("level") / level.rolling_mean(cfg.btc_trend_days, min_samples=cfg.btc_trend_days) - 1),
            btc_volatility_pct=100.0
            * math.sqrt(365)
            * level.log().diff().rolling_std(cfg.btc_volatility_days, min_samples=cfg.btc_volatility_days),
            # null where the day `btc_momentum_days` back is missing (its row has no level)
            btc_momentum_pct=100.0 * (pl.col("level") / pl.col("level").shift(cfg.btc_momentum_days) - 1),
        )
        .filter("_observed")
        .drop("_observed")
    )
    dom = lagged(
        dominance.lazy().select("date", "btc_dominance_pct"), [], "btc_dominance_pct", cfg.dominance_trend_days, "_past"
    ).select("date", "btc_dominance_pct", btc_dominance_trend=pl.col("btc_dominance_pct") - pl.col("_past"))
    frame = (
        btc.join(dom, on="date", how="left")
        .join(altseason.lazy().select("date", "altseason_index"), on="date", how="left")
        .join(leadership(relative_strength, alts_sector, cfg), on="date", how="left")
        .join(tvl_growth(tvl, cfg.tvl_growth_days).select("date", tvl_growth_30d="tvl_growth"), on="date", how="left")
        .join(btc_funding.lazy().select("date", btc_funding_apr_pct="funding_apr_pct"), on="date", how="left")
    )
    missing = pl.concat_list([pl.when(pl.col(c).is_null()).then(pl.lit(c)) for c in EVIDENCE]).list.drop_nulls()
    return frame.with_columns(missing_inputs=missing.list.join(",")).sort("date")


def raw_phase(cfg: Regime) -> pl.Expr:
    """Each day's phase before hysteresis; null until BTC's trend and momentum windows have filled.

    Missing secondary evidence (funding, breadth, dominance, sector RS) does not block a phase:
    the rule that needs it simply does not fire.
    """
    trend, momentum = pl.col("btc_trend_pct"), pl.col("btc_momentum_pct")
    above_trend = trend >= 0
    shorts_pay = pl.col("btc_funding_apr_pct") < cfg.funding_negative_apr_pct
    draining = pl.col("tvl_growth_30d") <= cfg.tvl_outflow_30d
    bear = ~above_trend & (
        (momentum <= cfg.bear_momentum_pct) | shorts_pay.fill_null(False) | draining.fill_null(False)
    )
    whipsaw = above_trend & (pl.col("btc_volatility_pct") >= cfg.peak_volatility_pct).fill_null(False)
    alts = pl.col("alts_vs_btc_pct")
    winning = above_trend & ((alts >= cfg.alts_outperform_pct) | (pl.col("altseason_index") >= cfg.breadth_wide)).fill_null(False)
    losing = ((alts <= cfg.alts_underperform_pct) | (pl.col("btc_dominance_trend") >= cfg.dominance_rising_pp)).fill_null(
        False
    )
    platform_leads = (pl.col("platform_lead_pct") >= 0).fill_null(True)
    return (
        pl.when(trend.is_null() | momentum.is_null())
        .then(None)
        .when(bear)
        .then(pl.lit("bear"))
        .when(whipsaw)
        .then(pl.lit("peak_consolidation"))
        .when(winning & platform_leads)
        .then(pl.lit("altcoin_surge"))
        .when(winning)
        .then(pl.lit("narrative_rotation"))
        .when(losing)
        .then(pl.lit("btc_dominance"))
        .when(above_trend)
        .then(pl.lit("peak_consolidation"))
        .otherwise(pl.lit("btc_dominance"))
    )


def with_hysteresis(raw: pl.Expr, confirm_days: int) -> pl.Expr:
    """The confirmed phase: a raw phase takes over once it has held `confirm_days` days in a row;
    until then the previous confirmed phase stands (null before the first confirmation)."""
    run = (raw != raw.shift(1)).fill_null(True).cum_sum()
    held = pl.int_range(pl.len()).over(run) + 1
    return pl.when(held >= confirm_days).then(raw).forward_fill()


def _run_length(column: str) -> pl.Expr:
    run = (pl.col(column) != pl.col(column).shift(1)).fill_null(True).cum_sum()
    return (pl.int_range(pl.len()).over(run) + 1).cast(pl.Int32)


def market_regime(features: pl.LazyFrame, cfg: Regime) -> pl.LazyFrame:
    """date, phase, risk_mode, raw_phase, days_in_phase, funding_regime, leading_sector, the evidence."""
    funding = pl.col("btc_funding_apr_pct")
    # Confirmation and days_in_phase count calendar days: a day missing from the BTC index carries
    # the day before's raw phase.
    carried = pl.when("_observed").then(pl.col("raw_phase")).otherwise(pl.col("raw_phase").forward_fill())
    return (
        with_missing_days(features.lazy().with_columns(raw_phase=raw_phase(cfg)), [])
        .with_columns(phase=with_hysteresis(carried, cfg.confirm_days))
        .with_columns(
            days_in_phase=pl.when(pl.col("phase").is_not_null()).then(_run_length("phase")),
            risk_mode=pl.when(pl.col("phase").is_null())
            .then(None)
            .when(pl.col("phase").is_in(cfg.risk_off_phases))
            .then(pl.lit("risk_off"))
            .otherwise(pl.lit("risk_on")),
            funding_regime=pl.when(funding.is_null())
            .then(None)
            .when(funding < cfg.funding_negative_apr_pct)
            .then(pl.lit("negative"))
            .when(funding > cfg.funding_hot_apr_pct)
            .then(pl.lit("hot"))
            .otherwise(pl.lit("normal")),
        )
        .filter("_observed")
        .select(
            "date", "phase", "risk_mode", "raw_phase", "days_in_phase", "funding_regime", "leading_sector",
            *EVIDENCE, "missing_inputs",
        )
    )
