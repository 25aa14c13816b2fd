"""What is partitioned, and the day everything else is computed as of.

The raw tables are partitioned by month (UTC): a month is one page of every source's API per
symbol (a daily candle page holds up to 1,000 days, a funding page 1,000 eight-hour rates), so a
smaller partition would buy no cheaper re-fetch, only more bookkeeping: Dagster writes one event per
partition, and daily partitions made the first run of 3.5 years 24,000 events (11 minutes). The
current month is a partition too (`end_offset=1`): the nightly run re-materialises it with the day
just ended.

Everything downstream (quarantine, marts, recommendations, backtest, publish) is unpartitioned: each
recomputes from the start of history as of `as_of_day`, the newest day the spot candles reach.
"""

import datetime as dt

import dagster as dg

from pipeline.settings import Settings
from warehouse import Warehouse

START = Settings.from_env().start_date
monthly = dg.MonthlyPartitionsDefinition(start_date=START.replace(day=1).isoformat(), timezone="UTC", end_offset=1)

# Every raw asset: monthly partitions, and any range of them materialised in one run (a
# `--partition-range` backfill needs single_run on every selected asset).
RAW_ASSET = dict(partitions_def=monthly, backfill_policy=dg.BackfillPolicy.single_run())


def month_key(day: dt.date) -> str:
    """The partition holding `day`."""
    return day.replace(day=1).isoformat()


def month_window(keys: dg.PartitionKeyRange) -> tuple[dt.date, dt.date]:
    """First and last day of a range of month partitions (the first never before the start date)."""
    first = max(dt.date.fromisoformat(keys.start), START)
    end = dt.date.fromisoformat(keys.end)
    return first, (end.replace(day=28) + dt.timedelta(days=4)).replace(day=1) - dt.timedelta(days=1)


class NoCandles(dg.Failure):
    """Nothing to compute as of: the raw candles are empty."""


def as_of_day(wh: Warehouse, exchange: str) -> dt.date:
    """The day the marts, the model and the report are computed as of: the newest spot candle of
    `exchange` in the warehouse (the night the raw assets just ingested)."""
    day = wh.newest("raw.ohlcv_1d", exchange=exchange)
    if day is None:
        raise NoCandles(f"raw.ohlcv_1d holds no candles of {exchange!r} in {wh.path}: materialise the raw "
                        "assets first (make demo, or the nightly job)")
    return day
