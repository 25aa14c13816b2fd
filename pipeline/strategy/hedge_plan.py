"""The day's perp positions for the model portfolio: the posture's BTC short, the hedge of a sector
being exited or turning weak, and a tactical long on the leader, each sized by the playbook and
checked against funding.

Sizes are percentages of the portfolio (10 = 10%). Funding follows the one convention of
`hedges.py`: a positive rate is paid by longs to shorts, so a short hedge earns it.
"""

from __future__ import annotations

from dataclasses import dataclass

from pipeline.strategy.allocation import Allocation, Evidence
from pipeline.strategy.hedges import Perp, hedge, sector_hedge, tactical_long
from pipeline.strategy.playbook import Playbook


@dataclass(frozen=True)
class HedgeLine:
    instrument: str
    side: str  # long | short
    notional_pct: float  # of the portfolio, in % (0 when the funding rule cut it)
    leverage: float
    funding_apr_pct: float | None  # the perp's trailing 7-day funding, annualised (positive: longs pay)
    strategy: str
    rationale: str

    @property
    def margin_pct(self) -> float:
        return self.notional_pct / self.leverage

    def funding_pct(self, days: int) -> float | None:
        """Funding over `days` as % of the portfolio: positive is income, negative a cost."""
        if self.funding_apr_pct is None:
            return None
        perp = Perp(self.instrument, self.side, self.notional_pct, self.leverage)
        return perp.funding_usd(self.funding_apr_pct, days) + 0.0  # + 0.0: a cut (0%) line shows 0.00, not -0.00


def _funded_short(perp: Perp, strategy: str, why: str, apr: float | None, playbook: Playbook) -> HedgeLine:
    """A short hedge (`hedges.hedge` or `hedges.sector_hedge`, notional in % of the portfolio); sized
    down when it would pay an excessive rate."""
    pct, rules = perp.notional_usd, playbook.funding
    if apr is not None and -apr > rules.excessive_apr_pct:
        why += (f"; sized down to {rules.hedge_cut:.0%}: shorts pay {-apr:.1f}% APR here "
                f"(limit {rules.excessive_apr_pct:.0f}%)")
        pct *= rules.hedge_cut
    return HedgeLine(perp.instrument, "short", pct, perp.leverage, apr, strategy, why)


def plan_hedges(
    ev: Evidence, alloc: Allocation, playbook: Playbook, main_perp: dict[str, str], btc_perp: str,
    funding_apr: dict[str, float],
) -> list[HedgeLine]:
    """The day's hedge lines, one per instrument. `main_perp`: sector -> its main token's perp (sectors
    without one are hedged with `btc_perp`); `funding_apr`: perp -> trailing 7-day APR in %."""
    posture = playbook.postures[alloc.posture]
    rules = playbook.hedging
    lines: list[HedgeLine] = []

    if posture.btc_short > 0:
        pct, why = posture.btc_short, f"{alloc.posture} posture: short BTC for {posture.btc_short:.0%} of the portfolio"
        deep = ev.btc_trend_pct is not None and ev.btc_trend_pct <= rules.bear_deep_trend_pct
        if posture.btc_short_max is not None and deep:
            pct = posture.btc_short_max
            why = (f"{alloc.posture} posture, BTC {ev.btc_trend_pct:+.1f}% from its 200-day average "
                   f"(the range's top at {rules.bear_deep_trend_pct:+.0f}% or below): short BTC for {pct:.0%}")
        lines.append(_funded_short(hedge(btc_perp, pct * 100, rules), posture.strategy, why, funding_apr.get(btc_perp),
                                   playbook))

    for sector, weight in alloc.weights.items():
        if sector == playbook.core_sector:
            continue
        perp = main_perp.get(sector, btc_perp)
        signal = ev.sectors.get(sector)
        sold = (alloc.before_posture or {}).get(sector, 0.0) - weight
        if alloc.posture == "peak_consolidation" and sold > 1e-9 and rules.exit_hedge > 0:
            why = (f"{sector} cut from {alloc.before_posture[sector]:.0%} to {weight:.0%} since {alloc.posture_since}: "
                   f"short {perp} for {rules.exit_hedge:.0%} of the {sold:.0%} sold")
            lines.append(_funded_short(hedge(perp, sold * rules.exit_hedge * 100, rules), "hedge the exited sector", why,
                                       funding_apr.get(perp), playbook))
        elif weight > 1e-9 and signal is not None and signal.quadrant == "weakening" and not (
            perp == btc_perp and posture.btc_short > 0  # the posture's BTC short already covers it
        ):
            mom = "" if signal.rs_mom_30d_pct is None else f", RS mom 30d {signal.rs_mom_30d_pct:+.1f}%"
            why = (f"{sector} is weakening{mom}; {weight:.0%} held: short {perp} for "
                   f"{rules.sector_hedge:.1%} of it")
            lines.append(_funded_short(sector_hedge(weight * 100, rules, instrument=perp), "sector hedge", why,
                                       funding_apr.get(perp), playbook))

    leader = ev.leading_sector
    if (rules.tactical_long > 0 and alloc.posture in ("altcoin_surge", "narrative_rotation") and ev.risk_mode == "risk_on"
            and leader in main_perp and leader != playbook.core_sector
            and getattr(ev.sectors.get(leader), "quadrant", None) == "leading"):
        perp, apr = main_perp[leader], funding_apr.get(main_perp[leader])
        long = tactical_long(perp, 100.0, rules.tactical_long, rules.tactical_leverage_min, rules)  # % of the portfolio
        why = f"{leader} leads ({ev.sectors[leader].quadrant}) in {alloc.posture}, risk on: tactical long {perp} at {long.leverage:g}x"
        pct = long.notional_usd
        if apr is not None and apr > playbook.funding.excessive_apr_pct:
            why += f"; cut: longs pay {apr:.1f}% APR (limit {playbook.funding.excessive_apr_pct:.0f}%)"
            pct = 0.0
        lines.append(HedgeLine(perp, "long", pct, long.leverage, apr, "tactical long", why))
    return merge(lines)


def merge(lines: list[HedgeLine]) -> list[HedgeLine]:
    """One line per instrument: shorts and longs on the same perp net out."""
    out: dict[str, HedgeLine] = {}
    for line in lines:
        held = out.get(line.instrument)
        if held is None:
            out[line.instrument] = line
            continue
        signed = (held.notional_pct if held.side == "long" else -held.notional_pct) + (
            line.notional_pct if line.side == "long" else -line.notional_pct)
        out[line.instrument] = HedgeLine(
            line.instrument, "long" if signed > 0 else "short", abs(signed), max(held.leverage, line.leverage),
            held.funding_apr_pct, f"{held.strategy} + {line.strategy}", f"{held.rationale}; {line.rationale}",
        )
    return sorted(out.values(), key=lambda h: h.instrument)
