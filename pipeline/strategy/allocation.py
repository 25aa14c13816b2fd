"""The model portfolio's sector weights, day by day: the phase's bucket bands, tilted in 5 pp steps
toward the sectors that lead on relative strength, held between the cadence's review days.

A day's weights are built in three moves, each written down as evidence:
1. The posture of the phase sets each bucket's target; a bucket's target is split equally among
   its sectors that have an index that day (a bucket with none leaves its share to core).
2. Each sector gets a score: +1 leading or improving, -1 weakening or lagging, plus the posture's
   favours (altcoin surge: Layer-1) and the risk mode's (risk-off: Infrastructure over DeFi;
   risk-on with DeFi TVL rising: DeFi over Infrastructure). Every point below zero is a 5 pp step
   out of that sector, every point above zero a step into it; steps go from the weakest to the
   strongest sector, to or from core when one side has no partner, and only where both buckets
   stay inside their bands. A sector up `profit_take_30d_pct` in 30 days gives a step to core first.
3. Cadence: the posture may change once per period (monthly by default), the tilts once per
   period (weekly); between, yesterday's weights hold. A new posture re-tilts at once, and so does
   a profit-take or a sector that lost its index.

Everything here reads only the day's evidence and the days before it: no look-ahead by construction.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from pipeline.strategy.playbook import BUCKETS, PERIOD_DAYS, Bucket, Playbook

EPS = 1e-12


@dataclass(frozen=True)
class SectorSignal:
    """What the analytics say about one sector on one day (None: not known yet, e.g. warm-up)."""

    quadrant: str | None = None
    rs_mom_30d_pct: float | None = None
    ret_30d_pct: float | None = None  # the sector index's own 30-day return, in %


@dataclass(frozen=True)
class Evidence:
    """One day's inputs. `sectors` holds the sectors that have an index (members) that day."""

    date: dt.date
    phase: str
    risk_mode: str
    sectors: dict[str, SectorSignal]
    tvl_growth_30d: float | None = None  # fraction
    btc_trend_pct: float | None = None
    btc_funding_apr_pct: float | None = None
    leading_sector: str | None = None


@dataclass(frozen=True)
class Move:
    source: str
    target: str
    weight: float  # fraction of the portfolio
    why: str


@dataclass(frozen=True)
class Allocation:
    """The model portfolio's weights on `date`, and how they came about."""

    date: dt.date
    posture: str  # the phase whose posture is in effect (may lag the day's phase: cadence)
    posture_since: dt.date
    weights: dict[str, float]
    previous: dict[str, float] | None  # yesterday's weights (None on the first day)
    before_posture: dict[str, float] | None  # the weights held before the current posture began
    scores: dict[str, int]
    moves: tuple[Move, ...]  # the tilts in effect (made on `tilted_on`)
    tilted_on: dt.date
    notes: dict[str, list[str]] = field(default_factory=dict)  # per sector: why it holds, bands, ...


def bucket_total(weights: dict[str, float], bucket: Bucket, playbook: Playbook) -> float:
    return sum(w for s, w in weights.items() if playbook.sector_buckets.get(s) == bucket)


def scores(ev: Evidence, posture: str, playbook: Playbook) -> dict[str, int]:
    """Each non-core sector's score: quadrant, the posture's favours, the risk mode's preferences."""
    prefs = playbook.preferences
    extra: dict[str, int] = dict(playbook.postures[posture].favour)
    if ev.risk_mode == "risk_off":
        mode = prefs.risk_off
    elif ev.tvl_growth_30d is not None and ev.tvl_growth_30d > 0:
        mode = prefs.risk_on_rising_tvl
    else:
        mode = {}
    for sector, points in mode.items():
        extra[sector] = extra.get(sector, 0) + points
    out = {}
    for sector, signal in ev.sectors.items():
        if sector == playbook.core_sector or sector not in playbook.sector_buckets:
            continue
        out[sector] = prefs.quadrant_score.get(signal.quadrant or "", 0) + extra.get(sector, 0)
    return out


def base_weights(ev: Evidence, posture: str, playbook: Playbook) -> tuple[dict[str, float], dict[str, list[str]]]:
    """Bucket targets of the posture, split equally among the bucket's sectors with an index today."""
    core = playbook.core_sector
    weights = {core: 0.0}
    notes: dict[str, list[str]] = {}
    for bucket in BUCKETS:
        target = playbook.postures[posture].band(bucket).target
        if bucket == "core":
            weights[core] += target
            continue
        present = [s for s in playbook.sectors(bucket) if s in ev.sectors]
        if not present:
            weights[core] += target
            notes.setdefault(core, []).append(f"holds the {bucket} bucket's {target:.0%}: no {bucket} sector has an index")
        for sector in present:
            weights[sector] = target / len(present)
    return weights, notes


def tilt(ev: Evidence, posture: str, playbook: Playbook) -> tuple[dict[str, float], dict[str, int], list[Move], dict[str, list[str]]]:
    """The day's fresh weights: the posture's base, then 5 pp steps by score (see the module doc)."""
    weights, notes = base_weights(ev, posture, playbook)
    score = scores(ev, posture, playbook)
    core = playbook.core_sector
    bands = {b: playbook.postures[posture].band(b) for b in BUCKETS}
    bucket_of = playbook.sector_buckets.get
    moves: list[Move] = []

    def move(source: str, target: str, why: str) -> bool:
        amount = min(playbook.step, weights[source])
        if amount <= EPS:
            return False
        src_b, dst_b = bucket_of(source), bucket_of(target)
        if src_b != dst_b:
            if bucket_total(weights, src_b, playbook) - amount < bands[src_b].low - EPS:
                return False
            if bucket_total(weights, dst_b, playbook) + amount > bands[dst_b].high + EPS:
                return False
        weights[source] -= amount
        weights[target] += amount
        moves.append(Move(source, target, amount, why))
        return True

    def describe(sector: str) -> str:
        signal = ev.sectors.get(sector, SectorSignal())
        mom = "" if signal.rs_mom_30d_pct is None else f", RS mom 30d {signal.rs_mom_30d_pct:+.1f}%"
        return f"{sector} ({signal.quadrant or 'no quadrant'}{mom})"

    # Profit-taking first: a sector up `profit_take_30d_pct` in 30 days gives a step to core, or,
    # when core is full, to the weakest sector of its own bucket.
    for sector, signal in ev.sectors.items():
        if sector not in score or signal.ret_30d_pct is None or signal.ret_30d_pct < playbook.profit_take_30d_pct:
            continue
        why = f"profit-take: {sector} up {signal.ret_30d_pct:.0f}% in 30 days (mark {playbook.profit_take_30d_pct:.0f}%)"
        if not move(sector, core, why):
            peers = sorted((s for s in score if bucket_of(s) == bucket_of(sector) and s != sector), key=lambda s: (score[s], s))
            any(move(sector, peer, why) for peer in peers)

    def momentum(sector: str) -> float:
        value = ev.sectors.get(sector, SectorSignal()).rs_mom_30d_pct
        return 0.0 if value is None else value

    # ties (equal score and momentum) go by name, not by the order the sectors came in
    givers = [s for s in sorted(score, key=lambda s: (score[s], momentum(s), s)) for _ in range(max(0, -score[s]))]
    takers = [s for s in sorted(score, key=lambda s: (-score[s], -momentum(s), s)) for _ in range(max(0, score[s]))]
    for giver in givers:
        for i, taker in enumerate(takers):
            if move(giver, taker, f"{describe(giver)} -> {describe(taker)}"):
                del takers[i]
                break
        else:
            move(giver, core, f"{describe(giver)} -> core (no stronger sector has room)")
    for taker in takers:
        move(core, taker, f"core -> {describe(taker)}")
    return weights, score, moves, notes


def _same(a: dict[str, float], b: dict[str, float]) -> bool:
    return a.keys() == b.keys() and all(abs(a[k] - b[k]) < 1e-9 for k in a)


def allocate(days: Iterable[Evidence], playbook: Playbook, after: Allocation | None = None) -> Iterator[Allocation]:
    """The allocation of each day in `days` (in date order), with the cadence's holds; `after`: the
    allocation of the day before the first of `days` (a run resuming from it)."""
    cadence = playbook.cadence
    posture: str | None = None
    posture_since = tilted_on = dt.date.min
    weights: dict[str, float] | None = None
    before_posture: dict[str, float] | None = None
    moves: tuple[Move, ...] = ()
    score: dict[str, int] = {}
    if after is not None:
        posture, posture_since, tilted_on = after.posture, after.posture_since, after.tilted_on
        weights, before_posture, moves, score = dict(after.weights), after.before_posture, after.moves, dict(after.scores)
    for ev in days:
        notes: dict[str, list[str]] = {}
        new_posture = posture is None or (
            ev.phase != posture and (ev.date - posture_since).days >= PERIOD_DAYS[cadence.posture]
        )
        if new_posture:
            before_posture, posture, posture_since = weights, ev.phase, ev.date
        elif ev.phase != posture:
            next_review = posture_since + dt.timedelta(days=PERIOD_DAYS[cadence.posture])
            notes.setdefault("*", []).append(
                f"market phase is {ev.phase}; the {posture} posture holds until {next_review} ({cadence.posture} review)"
            )
        fresh, fresh_score, fresh_moves, fresh_notes = tilt(ev, posture, playbook)
        profit_take = any(m.why.startswith("profit-take") for m in fresh_moves)
        lost = weights is not None and any(w > EPS and s not in fresh for s, w in weights.items())
        due = (ev.date - tilted_on).days >= PERIOD_DAYS[cadence.tilts]
        previous = weights
        if weights is None or new_posture or profit_take or lost or (due and not _same(fresh, weights)):
            weights, score, moves, tilted_on = fresh, fresh_score, tuple(fresh_moves), ev.date
            for sector, lines in fresh_notes.items():
                notes.setdefault(sector, []).extend(lines)
        elif not _same(fresh, weights):
            next_review = tilted_on + dt.timedelta(days=PERIOD_DAYS[cadence.tilts])
            notes.setdefault("*", []).append(f"tilts held since {tilted_on} until {next_review} ({cadence.tilts} review)")
        yield Allocation(
            date=ev.date, posture=posture, posture_since=posture_since, weights=dict(weights),
            previous=None if previous is None else dict(previous), before_posture=before_posture,
            scores=dict(score), moves=moves, tilted_on=tilted_on, notes=notes,
        )
