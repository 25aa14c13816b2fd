"""The daily (UTC) partitions every date-driven asset shares."""

import dagster as dg

from pipeline.settings import Settings

daily = dg.DailyPartitionsDefinition(start_date=Settings.from_env().start_date.isoformat(), timezone="UTC")

# Every date-driven asset: daily partitions, and years of them materialised in one run (a
# `--partition-range` backfill needs single_run on every selected asset).
DAILY_ASSET = dict(partitions_def=daily, backfill_policy=dg.BackfillPolicy.single_run())
