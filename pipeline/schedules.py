"""The schedules: the nightly run, which also catches up missed nights, and the freshness checks
in between.

A night is done when `warehouse/read_snapshot` (the graph's last asset) has been materialised as of
it (its `last_day` metadata): ingest, checks and marts passed, and readers have the new copy. The
nightly tick asks for the raw months holding every day after the newest done night up to yesterday
(UTC) in ONE run (the assets' single-run backfill policy), so a night the machine was off, or a run
a blocking check stopped, is redone by the next tick rather than skipped.
"""

from __future__ import annotations

import datetime as dt

import dagster as dg

from assets.partitions import month_key
from assets.publish import LAST_DAY
from pipeline.settings import Settings

DONE_MARKER = dg.AssetKey(["warehouse", "read_snapshot"])
RANGE_START, RANGE_END = "dagster/asset_partition_range_start", "dagster/asset_partition_range_end"
IN_FLIGHT = [
    dg.DagsterRunStatus.QUEUED, dg.DagsterRunStatus.NOT_STARTED, dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED,
]


def nights_to_run(newest: dt.date | None, start: dt.date, yesterday: dt.date) -> tuple[dt.date, dt.date] | None:
    """First and last day the nightly run should cover: from the day after the newest done night
    (from `start` when none is) to yesterday; None when yesterday is done."""
    first = start if newest is None else newest + dt.timedelta(days=1)
    return None if first > yesterday else (first, yesterday)


def latest_publication(instance: dg.DagsterInstance) -> tuple[str, dt.date] | None:
    """(run id, the night) of the snapshot's newest publication (None before the first)."""
    event = instance.get_latest_materialization_event(DONE_MARKER)
    day = event.asset_materialization.metadata.get(LAST_DAY) if event and event.asset_materialization else None
    return (event.run_id, dt.date.fromisoformat(day.value)) if day is not None else None


def newest_published(instance: dg.DagsterInstance) -> dt.date | None:
    """The newest night the snapshot was published as of (None before the first)."""
    published = latest_publication(instance)
    return published[1] if published else None


def nightly_schedule(job: dg.UnresolvedAssetJobDefinition, settings: Settings) -> dg.ScheduleDefinition:
    @dg.schedule(
        name="nightly_schedule",
        job=job,
        cron_schedule=settings.schedule_cron,
        execution_timezone=settings.schedule_timezone,
        default_status=dg.DefaultScheduleStatus.RUNNING,
        description="Every night: the raw month holding yesterday (UTC), plus any night missed since the "
        "last published one, then the whole graph, in one run. Cron and timezone: ROTATION_SCHEDULE_CRON, "
        "ROTATION_SCHEDULE_TIMEZONE.",
    )
    def nightly(context: dg.ScheduleEvaluationContext) -> dg.RunRequest | dg.SkipReason:
        yesterday = context.scheduled_execution_time.astimezone(dt.UTC).date() - dt.timedelta(days=1)
        running = context.instance.get_run_ids(dg.RunsFilter(job_name=job.name, statuses=IN_FLIGHT), limit=1)
        if running:
            return dg.SkipReason(f"run {running[0]} of {job.name} is still in flight; the next tick catches up")
        span = nights_to_run(newest_published(context.instance), settings.start_date, yesterday)
        if span is None:
            return dg.SkipReason(f"{yesterday} is already published")
        first, last = span
        context.log.info(f"requesting {first} .. {last} ({(last - first).days + 1} day(s)) in one run")
        return dg.RunRequest(
            run_key=f"nightly:{first}..{last}",
            tags={RANGE_START: month_key(first), RANGE_END: month_key(last)},
        )

    return nightly


def freshness_schedule(job: dg.UnresolvedAssetJobDefinition) -> dg.ScheduleDefinition:
    return dg.ScheduleDefinition(
        name="freshness_schedule",
        job=job,
        cron_schedule="0 */6 * * *",
        execution_timezone="UTC",
        default_status=dg.DefaultScheduleStatus.RUNNING,
        description="Every 6 hours: the raw tables' `fresh` checks, so a night that never ran shows up too.",
    )
