"""The `backtest` asset (group `evaluation`): replays the recommendations the nightly wrote, next to
what a user would hold instead, through `pipeline.evaluation` (pure), and writes the daily, summary
and trade tables behind one blocking check each (if any fails, none is written).

Holdings are path dependent: a night resumes from each strategy's book as of the day before
(`marts.backtest_state`, see assets/resume.py) when nothing it was computed from changed up to that
day, and simulates only the new days; otherwise it replays every day from the first. Either way the
tables end up the same (tests/test_backtest.py checks it), as of the newest candle day.
"""

import datetime as dt
import json

import dagster as dg
import polars as pl

from assets.analytics import market_regime, sector_weights
from assets.ingest import funding_rates, ohlcv_1d
from assets.metadata import chart_metadata, md_table
from assets.partitions import as_of_day
from assets.quality import gated_mart, gated_table, gated_tables, table_key, write_gated
from assets.recommendations import recommendation_assets
from assets.resume import fingerprint, state_spec, stored_state
from pipeline.evaluation.backtest import Resume
from pipeline.evaluation.run import evaluate
from pipeline.evaluation.survivorship import fixed_list_daily, survivorship
from pipeline.transforms.chain import RawFrames
from pipeline.evaluation.strategies import NAMES
from pipeline.resources import AnalyticsSettings, QualitySettings, StrategySettings, WarehouseResource
from warehouse.db import Warehouse

DAILY, SUMMARY, TRADES = "marts.backtest_daily", "marts.backtest_summary", "marts.backtest_trades"
STATE, SURVIVORSHIP = "marts.backtest_state", "marts.backtest_survivorship"
DESCRIPTIONS = {
    DAILY: "Per strategy and day: equity, return, turnover, fees, funding, hedge P&L, exposures and the phase "
    "behind the day's trades. Decisions of D trade at D+1's open.",
    SUMMARY: "Per strategy: CAGR, volatility, Sharpe, Sortino, max drawdown (peak, trough, recovery), Calmar, "
    "turnover, fees, funding and hedge P&L, exposures, share of days per phase.",
    TRADES: "Every fill of the backtest: the order engine's trades, leavers sold and liquidations.",
    STATE: "Each strategy's book at the newest close and a fingerprint of the inputs up to it: where the next "
    "night resumes. Written with the three tables when their checks pass; no check of its own (a book that "
    "does not match its inputs is not used).",
}
TABLES = (DAILY, SUMMARY, TRADES)
UPSTREAM = [recommendation_assets, sector_weights, market_regime, ohlcv_1d, funding_rates]


def _specs() -> dict[str, object]:
    """The three gated tables, and the books beside them (no check: see its description)."""
    args = gated_tables(TABLES, DESCRIPTIONS, UPSTREAM, "evaluation")
    args["specs"].append(state_spec(STATE, UPSTREAM, "evaluation", DESCRIPTIONS[STATE]))
    return args


@dg.multi_asset(name="backtest", **_specs())
def backtest_assets(
    context: dg.AssetExecutionContext, analytics: AnalyticsSettings, strategy: StrategySettings,
    warehouse: WarehouseResource, quality: QualitySettings,
):
    wh = warehouse.get()
    last = as_of_day(wh, analytics.spot_exchange_id)
    universe = analytics.universe_as_of(wh, last)
    weighting = universe.config.relative_strength.weighting
    resume = resume_point(wh, analytics, strategy, last)
    after = min(r.day for r in resume.values()) if resume else None
    since = after + dt.timedelta(days=1) if after else None
    lag = dt.timedelta(days=strategy.playbook.backtest.execution_lag_days)
    # Before the reads: rows restated meanwhile (a run beside this one) then fail the next night's check.
    fingerprint_of_last = inputs(wh, analytics, strategy, last)
    held = wh.read(DAILY, after) if after else None
    new, summary, trades, books = evaluate(
        rotation=wh.read("marts.rotation_recommendation", last), hedges=wh.read("marts.hedge_recommendation", last),
        ohlcv=wh.read("raw.ohlcv_1d", last, since=since, exchange=analytics.spot_exchange_id),
        weights=wh.read("marts.sector_weights", last, since=after - lag if after else None, weighting=weighting),
        funding=wh.read("raw.funding_rates", last, since=since, exchange=analytics.perp_exchange_id),
        regime=wh.read("marts.market_regime", last), tokens=universe.tokens, playbook=strategy.playbook,
        resume=resume, held=held,
    )
    frames = {DAILY: new, SUMMARY: summary, TRADES: trades}
    first = since or (new["date"].min() if new.height else last)
    state = pl.DataFrame(  # the books of the newest day (every strategy trades to the market's last day)
        [(name, b.day, b.equity, fingerprint_of_last, json.dumps(b.book)) for name, b in books.items() if b.day == last],
        schema={"strategy": pl.String, "date": pl.Date, "equity": pl.Float64, "inputs": pl.String, "book": pl.String},
        orient="row")
    changes = yield from write_gated(context, wh, "backtest", frames, (first, last), quality.config, since=since,
                                     also={STATE: state})
    if changes is None:
        yield dg.MaterializeResult(asset_key=table_key(STATE), metadata={"table": STATE, "rows_written": 0})
        return
    daily = new if held is None else pl.concat([held.select(new.columns), new])
    how = f"resumed after {after}" if after else "replayed from the first day"
    context.log.info(f"backtest: {summary.height} strategies, {daily.height} strategy-days up to {last} ({how}: "
                     f"{new.height} simulated), {trades.height} trades on them")
    yield dg.MaterializeResult(asset_key=table_key(DAILY), metadata={
        "table": DAILY, "rows": daily.height, "rows_written": changes[DAILY][0].height, "resumed_after": str(after)})
    picture = chart_metadata(lambda charts: charts.equity_curves(daily)) if daily.height else {}
    yield dg.MaterializeResult(asset_key=table_key(SUMMARY), metadata=summary_metadata(summary) | picture)
    yield dg.MaterializeResult(asset_key=table_key(TRADES), metadata={"table": TRADES, "rows_written": changes[TRADES][0].height})
    yield dg.MaterializeResult(asset_key=table_key(STATE), metadata={
        "table": STATE, "rows_written": state.height, "day": str(state["date"].max()) if state.height else "none"})


def inputs(wh: Warehouse, analytics: AnalyticsSettings, strategy: StrategySettings, day: dt.date) -> str:
    """Fingerprint of everything the backtest up to `day` is computed from: the input tables' rows up
    to that day, the universe, the playbook (its costs included) and the backtest's code."""
    universe = analytics.universe_as_of(wh, day)
    weighting = universe.config.relative_strength.weighting
    tables = {"marts.rotation_recommendation": {}, "marts.hedge_recommendation": {},
              "raw.ohlcv_1d": {"exchange": analytics.spot_exchange_id}, "marts.sector_weights": {"weighting": weighting},
              "raw.funding_rates": {"exchange": analytics.perp_exchange_id}, "marts.market_regime": {}}
    texts = [universe.tokens.write_csv(), strategy.playbook.model_dump_json()]
    return fingerprint(wh, day, tables, texts, ("pipeline/evaluation", "pipeline/strategy", __file__))


def resume_point(wh: Warehouse, analytics: AnalyticsSettings, strategy: StrategySettings, last: dt.date
                 ) -> dict[str, Resume] | None:
    """Every strategy's stored book, when `stored_state` may resume from them; else None."""
    held = stored_state(wh, STATE, DAILY, last, lambda day: inputs(wh, analytics, strategy, day))
    if held is None or set(held["strategy"]) != set(NAMES):
        return None
    return {r["strategy"]: Resume(r["date"], r["equity"], json.loads(r["book"])) for r in held.iter_rows(named=True)}


def summary_metadata(summary: pl.DataFrame) -> dict[str, object]:
    """The strategy table as Markdown, and each strategy's Sharpe, CAGR and max drawdown as numbers
    Dagster plots across runs."""
    metadata: dict[str, object] = {"table": SUMMARY, "rows_written": summary.height}
    if summary.is_empty():
        return metadata
    table = summary.select(
        "strategy", "first_date", "last_date",
        *(pl.col(c).mul(100).round(1).alias(f"{c} %") for c in ("total_return", "cagr", "volatility", "max_drawdown")),
        pl.col("sharpe").round(2), pl.col("sortino").round(2), pl.col("calmar").round(2),
        pl.col("turnover").round(1).alias("turnover x/yr"), pl.col("fees_paid").round(0).alias("fees $"),
    )
    metadata["strategies"] = dg.MetadataValue.md(md_table(table, max_rows=20))
    for row in summary.iter_rows(named=True):
        for metric in ("sharpe", "cagr", "max_drawdown"):
            if row[metric] is not None:
                metadata[f"{row['strategy']}/{metric}"] = dg.MetadataValue.float(float(row[metric]))
    return metadata




@dg.asset(
    key=table_key(SURVIVORSHIP), group_name="evaluation", owners=["team:quant"], kinds={"polars", "duckdb"},
    deps=[backtest_assets], **gated_table(SURVIVORSHIP),
    description="What survivorship was worth: each strategy's CAGR, Sharpe and max drawdown on the universe as it "
    "was (dead coins included) beside the same backtest on today's fixed list of survivors, over the same days.",
)
def backtest_survivorship(
    context: dg.AssetExecutionContext, analytics: AnalyticsSettings, strategy: StrategySettings,
    warehouse: WarehouseResource, quality: QualitySettings,
) -> dg.MaterializeResult:
    """The fixed-list side is the nightly's chain rerun in memory on the fixed list (seconds on the
    real history); nothing is resumed, so the comparison always covers the whole backtest."""
    wh = warehouse.get()
    last = as_of_day(wh, analytics.spot_exchange_id)
    universe = analytics.universe_as_of(wh, last)
    if universe.fallback:
        context.log.warning(f"{SURVIVORSHIP}: {universe.fallback}; nothing to compare the fixed list with")
        rows = survivorship(wh.read(DAILY, last).clear(), wh.read(DAILY, last).clear())
    else:
        raw = RawFrames(
            ohlcv=wh.read("raw.ohlcv_1d", last, exchange=analytics.spot_exchange_id),
            funding=wh.read("raw.funding_rates", last, exchange=analytics.perp_exchange_id),
            defi_tvl=wh.read("raw.defi_tvl", last),
            btc_dominance=wh.read("raw.btc_dominance", last),
        )
        fixed = fixed_list_daily(raw, analytics.tokens, universe.config, strategy.playbook)
        rows = survivorship(wh.read(DAILY, last), fixed)
    ok, check = gated_mart(context, wh, SURVIVORSHIP, rows, (last, last), quality.config)
    if not ok:
        context.log.error(f"{SURVIVORSHIP}: a blocking check failed; nothing written, the previous rows stay")
        return dg.MaterializeResult(metadata={"table": SURVIVORSHIP, "rows_written": 0}, check_results=[check])
    wh.upsert({SURVIVORSHIP: rows}, delete={SURVIVORSHIP: wh.query("select strategy, universe from " + SURVIVORSHIP)})
    shown = rows.select("strategy", "universe", "cagr", "sharpe", "max_drawdown")
    return dg.MaterializeResult(
        metadata={"table": SURVIVORSHIP, "rows_written": rows.height,
                  "latest": dg.MetadataValue.md(md_table(shown, max_rows=20))},
        check_results=[check],
    )


evaluation_assets = [backtest_assets, backtest_survivorship]
