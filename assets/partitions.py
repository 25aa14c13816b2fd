"""The daily (UTC) partitions every date-driven asset shares."""

import dagster as dg

from pipeline.settings import Settings

daily = dg.DailyPartitionsDefinition(start_date=Settings.from_env().start_date.isoformat(), timezone="UTC")
