"""Run a table's suite on a Polars frame: derive columns in Polars, hand GX a pandas frame of only
the checked columns (through Arrow), and turn GX's result into a `QualityReport` whose failing rows
point back into the frame the caller gave."""

from __future__ import annotations

import datetime as dt
import functools
import time
from typing import Any

import great_expectations as gx
import polars as pl
from great_expectations.data_context.types.base import (
    DataContextConfig,
    InMemoryStoreBackendDefaults,
    ProgressBarsConfig,
)
from great_expectations.execution_engine import pandas_execution_engine

from pipeline.quality import btc_dominance, defi_tvl, evaluation, funding, market_caps, marts, ohlcv, recommendations
from pipeline.quality.config import QualityConfig
from pipeline.quality.report import Failure, QualityReport
from pipeline.quality.spec import ROW, TableSpec, day

TABLES: dict[str, TableSpec] = {s.table: s for s in (ohlcv.SPEC, funding.SPEC, defi_tvl.SPEC, btc_dominance.SPEC, market_caps.SPEC, *marts.SPECS, *recommendations.SPECS, *evaluation.SPECS)}
# Two passes: the whole suite as BOOLEAN_ONLY (about half the time of COMPLETE on 1M rows), then only
# the failed expectations again as COMPLETE, to name every failing row. Clean data pays the first only.
FAST_FORMAT = "BOOLEAN_ONLY"
DETAIL_FORMAT = {"result_format": "COMPLETE", "unexpected_index_column_names": [ROW]}


@functools.cache
def _batch_definition():
    """One ephemeral context, pandas datasource and whole-frame batch definition per process: building
    them costs more than validating a small frame. No analytics (offline), no progress bars (logs).

    GX fingerprints every in-memory frame it is given (an md5 over pandas' hash of every row, ~0.15 s
    per 1M rows) for a batch marker nothing here reads; it skips that above HASH_THRESHOLD bytes, so
    the threshold is set to 0 (a module constant of GX 1.x; validation results are unaffected)."""
    pandas_execution_engine.HASH_THRESHOLD = 0
    context = gx.get_context(
        mode="ephemeral",
        project_config=DataContextConfig(
            store_backend_defaults=InMemoryStoreBackendDefaults(),
            analytics_enabled=False,
            progress_bars=ProgressBarsConfig(globally=False),
        ),
    )
    asset = context.data_sources.add_pandas(name="quality").add_dataframe_asset(name="frame")
    return asset.add_batch_definition_whole_dataframe("whole_frame")


@functools.cache
def _suite(table: str, config: QualityConfig) -> gx.ExpectationSuite:
    return TABLES[table].suite(config)


def _columns(kwargs: dict[str, Any]) -> tuple[str, ...]:
    if "column_list" in kwargs:
        return tuple(kwargs["column_list"])
    if "column_A" in kwargs:
        return (kwargs["column_A"], kwargs["column_B"])
    return (kwargs["column"],) if "column" in kwargs else ()


def _error(exception_info: Any) -> str | None:
    """GX nests exception info either flat or per metric; return the first message if one was raised."""
    infos = exception_info.values() if exception_info and "raised_exception" not in exception_info else [exception_info]
    for info in infos:
        if info and info.get("raised_exception"):
            return str(info.get("exception_message"))
    return None


def expectation_names(config: QualityConfig) -> set[str]:
    """Every "<table>.<name>" a policy may refer to."""
    return {f"{t}.{exp.meta['name']}" for t in TABLES for exp in _suite(t, config).expectations}


def validate(
    table: str,
    frame: pl.DataFrame,
    config: QualityConfig | None = None,
    as_of: dt.date | None = None,
    window: tuple[dt.date, dt.date] | None = None,
) -> QualityReport:
    """Validate `frame` as rows of `table` (e.g. "raw.ohlcv_1d"); failing rows are positions in `frame`.

    Derived columns (gaps, jumps, staleness) see every row of `frame`; only rows on days in `window`
    (default: all) are validated, plus each stale series' newest row. `as_of` is the day freshness is
    measured against (default: the newest day in `frame`).
    """
    config = config or QualityConfig()
    spec = TABLES[table]
    suite = _suite(table, config)
    t0 = time.perf_counter()
    with_row = frame.with_row_index(ROW)
    on_day = day(spec.time, frame.schema)
    as_of = as_of or (frame.select(on_day.max()).item() if frame.height else dt.date.today())
    prepared = spec.prepare(with_row, config, as_of)
    if window is not None and "stale_days" in prepared.columns:
        prepared = prepared.filter(on_day.is_between(*window) | (pl.col("stale_days") > 0))
    elif window is not None:
        prepared = prepared.filter(on_day.is_between(*window))
    checked = {c for exp in suite.expectations for c in _columns(exp.configuration.kwargs)}
    t1 = time.perf_counter()
    # strings as pandas categoricals: GX's null and uniqueness checks run on codes (1M rows: -25%)
    pandas_frame = (
        prepared.select(ROW, *(c for c in prepared.columns if c in checked))
        .with_columns(pl.col(pl.String).cast(pl.Categorical))
        .to_pandas()
    )
    t2 = time.perf_counter()
    batch = _batch_definition().get_batch(batch_parameters={"dataframe": pandas_frame})
    result = batch.validate(suite, result_format=FAST_FORMAT)
    failed = [res.expectation_config.to_domain_obj() for res in result.results if not res.success]
    details = [batch.validate(expectation, result_format=DETAIL_FORMAT) for expectation in failed]
    t3 = time.perf_counter()

    failures = tuple(_failure(spec, with_row, prepared, res, config) for res in details if not res.success)
    return QualityReport(
        table=table,
        key=spec.key,
        success=bool(result.success),
        row_count=prepared.height,
        evaluated=len(result.results),
        failures=failures,
        seconds={"prepare": t1 - t0, "to_pandas": t2 - t1, "gx_validate": t3 - t2},
    )


def _failure(spec: TableSpec, original: pl.DataFrame, prepared: pl.DataFrame, res, config: QualityConfig) -> Failure:
    """Examples show the rows as given (a NaN stays NaN), plus the derived columns that failed."""
    kwargs = res.expectation_config.kwargs
    meta = res.expectation_config.meta or {}
    checked = _columns(kwargs)
    rows = tuple(sorted({int(r[ROW]) for r in res.result.get("unexpected_index_list") or []}))
    columns = tuple(dict.fromkeys(spec.derived.get(c, c) for c in checked))
    failing = original.filter(pl.col(ROW).is_in(rows)).join(
        prepared.select(ROW, *(c for c in checked if c in prepared.columns and c not in original.columns)),
        on=ROW, how="left",
    )
    shown = (*spec.key, *(c for cs in columns for c in cs.split("/")), *checked)
    present = [c for c in dict.fromkeys(shown) if c in failing.columns]
    keys = [k for k in spec.key if k in original.columns]
    name = f"{spec.table}.{meta.get('name', res.expectation_config.type)}"
    return Failure(
        table=spec.table,
        name=name,
        columns=columns,
        expectation=res.expectation_config.type,
        action=config.action(name),
        keeps_row=bool(meta.get("keeps_row")),
        unexpected_count=int(res.result.get("unexpected_count") or len(rows)),
        examples=tuple(failing.head(config.example_rows).select(present).to_dicts()),
        row_indices=rows,
        failing_keys=tuple(failing.select(keys).iter_rows()),
        error=_error(res.exception_info),
    )
