"""The static report: one self-contained page, `warehouse/report/index.html` (of another warehouse:
`Warehouse.report_folder`), with the day's phase and
recommendation and their evidence, the orders for the user's portfolio, every chart, the backtest
table, the quality gate's verdicts and the date range of each input. It opens offline: the charts'
Vega-Lite specs carry their data, and Vega's JavaScript (from vl-convert) is inlined once.

Everything on the page is read from the published snapshot's marts up to the day shown, so the page
of an earlier day (`python -m pipeline report --as-of 2022-05-15`) is what the tool said then.
Only the quality verdicts are today's: the gate keeps no history of them.
"""

from __future__ import annotations

import base64
import datetime as dt
import gzip
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path

import jinja2
import polars as pl

from pipeline.brief import ModelDay, model_day, published
from pipeline.evaluation.metrics import summary
from pipeline.evaluation.strategies import DESCRIPTIONS, NAMES
from pipeline.quality.html import read_statuses
from pipeline.scorecard import assumptions, biases
from pipeline.settings import Settings
from pipeline.strategy.playbook import load_playbook
from pipeline.strategy.portfolio import PortfolioError, load_portfolio
from pipeline.strategy.recommend import portfolio_orders, portfolio_value
from pipeline.ranked_universe import universe_as_of
from pipeline.universe import load_universe
from warehouse import Warehouse
from warehouse.catalog import table_docs
from warehouse.db import TIME_COLUMN

log = logging.getLogger(__name__)

# Days of history the time-series charts show (the phases, allocation and equity charts show all).
WINDOW_DAYS = 365
EVIDENCE = ("btc_trend_pct", "btc_momentum_pct", "btc_volatility_pct", "btc_dominance_pct", "btc_dominance_trend",
            "altseason_index", "alts_vs_btc_pct", "platform_lead_pct", "tvl_growth_30d", "btc_funding_apr_pct",
            "funding_regime", "leading_sector", "missing_inputs")
_TEMPLATES = jinja2.Environment(
    loader=jinja2.PackageLoader("pipeline", "templates"), autoescape=True,
    undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True,
)


def _number(value: object, fmt: str = ",.2f") -> str:
    """A figure as the page shows it; n/a for a missing one."""
    if value is None or isinstance(value, float) and value != value:
        return "n/a"
    return format(value, fmt) if isinstance(value, int | float) else str(value)


_TEMPLATES.filters["num"] = _number
_TEMPLATES.filters["pct"] = lambda value, fmt=".1%": _number(value, fmt)


@dataclass(frozen=True)
class Chart:
    key: str  # the figure's id, and the PNG's name with --png
    caption: str
    chart: object  # an Altair chart

    def spec(self) -> dict:
        from pipeline.charts import spec

        return spec(self.chart)


def report_path(warehouse_path: Path, as_of: dt.date | None = None) -> Path:
    """warehouse/report/index.html (in the warehouse's own `report_folder`); the page of an earlier
    day beside it, as <day>.html."""
    folder = Warehouse(warehouse_path).report_folder
    return folder / ("index.html" if as_of is None else f"{as_of.isoformat()}.html")


def write_report(settings: Settings, as_of: dt.date | None = None, out: Path | None = None,
                 png_folder: Path | None = None, png_charts: list[str] | None = None) -> Path:
    """Write the page of `as_of` (default: the newest recommendation) and return its path; with
    `png_folder`, each chart (or those of `png_charts`) also as <key>.png there. BriefError when
    there is nothing to show."""
    wh = published(settings)
    model, charts, context = gather(wh, settings, as_of)
    unknown = set(png_charts or ()) - {c.key for c in charts}
    if unknown:  # before anything is written
        raise ValueError(f"no chart {sorted(unknown)} on the page; it has {[c.key for c in charts]}")
    out = out or report_path(settings.warehouse_path, as_of)
    quality_page = Warehouse(settings.warehouse_path).quality_folder / "index.html"
    html = render(context, charts, quality_link=os.path.relpath(quality_page, out.parent))
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = out.with_name(out.name + ".tmp")
    staging.write_text(html, encoding="utf-8")
    os.replace(staging, out)  # a reader never sees half a page
    log.info("report for %s: %s (%.1f MB)", model.day, out, out.stat().st_size / 1e6)
    if png_folder is not None:
        from pipeline.charts import png

        png_folder.mkdir(parents=True, exist_ok=True)
        for chart in charts:
            if png_charts is None or chart.key in png_charts:
                (png_folder / f"{chart.key}.png").write_bytes(png(chart.chart))
    return out


def gather(wh: Warehouse, settings: Settings, as_of: dt.date | None) -> tuple[ModelDay, list[Chart], dict]:
    """The day's model, its charts and the template's other values, from the marts up to that day."""
    ranked = universe_as_of(wh, as_of, settings, read_only=True)
    cfg = ranked.config
    weighting, btc = cfg.relative_strength.weighting, cfg.sector_index.btc
    universe = load_universe(settings.universe_path)
    tokens = ranked.tokens
    playbook = load_playbook(settings.playbook_path)
    model = model_day(wh, as_of, weighting)
    day = model.day

    def read(table: str, since: dt.date | None = None, **equals: str) -> pl.DataFrame:
        return wh.read(table, day, since=since, read_only=True, **equals)

    daily = read("marts.backtest_daily")
    portfolio, orders, error = _portfolio(model, wh, settings, universe, tokens, playbook)
    charts = _charts(read, model, daily, portfolio, settings, tokens, weighting, btc) if settings.charts else []
    docs = {c.name: c.description for c in table_docs()["marts.market_regime"].columns}
    regime = model.regime.row(0, named=True) if model.regime.height else {}
    context = {
        "day": day,
        "generated": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "newest": model.newest,
        "regime": regime,
        "posture": model.rotation["posture"][0],
        "evidence": [(c, regime.get(c), docs.get(c, "")) for c in EVIDENCE if c in regime],
        "rotation": model.rotation.to_dicts(),
        "hedges": model.hedges.to_dicts(),
        "portfolio_file": str(settings.portfolio_path),
        "portfolio_error": error,
        "orders": orders.to_dicts() if orders is not None else [],
        "backtest": _backtest(daily),
        "assumptions": assumptions(playbook.backtest),
        "biases": biases(ranked.fallback),
        "survivorship": _survivorship(wh.query("select * from marts.backtest_survivorship")),
        "descriptions": DESCRIPTIONS,
        "quality": sorted(read_statuses(Warehouse(settings.warehouse_path).quality_folder).items()),
        "inputs": wh.spans(sorted(TIME_COLUMN), day).to_dicts(),
        "universe_fallback": ranked.fallback,
    }
    return model, charts, context


def _charts(read, model: ModelDay, daily: pl.DataFrame, portfolio: pl.DataFrame | None, settings: Settings,
            tokens: pl.DataFrame, weighting: str, btc: str) -> list[Chart]:
    """Every chart of the page, as of the model's day; `read(table, since, **equals)` reads up to it."""
    from pipeline import charts as draw
    from pipeline.charts.rrg import TAIL_WEEKS

    day = model.day
    year_ago = day - dt.timedelta(days=WINDOW_DAYS)
    rotation, hedges = read("marts.rotation_recommendation"), read("marts.hedge_recommendation")
    charts = [
        Chart("rrg", "Where each sector stands against BTC, and its path over the last 8 weeks.",
              draw.rotation_graph(read("marts.relative_strength", since=day - dt.timedelta(weeks=TAIL_WEEKS)), day)),
        Chart("phases", "BTC dominance and BTC with the market phase the detector read each day.",
              draw.dominance_and_phases(read("marts.market_regime"), read("marts.sector_index", sector=btc,
                                                                                  weighting=weighting), day)),
        Chart("indices", "Sector indices over the last year, each at 100 on the first day.",
              draw.sector_indices(read("marts.sector_index", since=year_ago, weighting=weighting), day,
                                  start=year_ago, weighting=weighting)),
        Chart("altseason", "Share of alts beating BTC over 90 days.", draw.altseason_index(read("marts.altseason"), day)),
        Chart("allocation", "The model portfolio's target weights over time.", draw.target_allocation(rotation, day)),
        Chart("funding", "Funding of the perps the hedges use over the last year.",
              draw.funding_apr(read("marts.funding_costs", since=year_ago, exchange=settings.perp_exchange),
                               draw.hedged_perps(hedges, tokens, btc), day)),
    ]
    if portfolio is not None:
        charts.insert(5, Chart("target_vs_portfolio", f"The day's targets next to {settings.portfolio_path.name}.",
                               draw.target_vs_portfolio(model.rotation, portfolio)))
    if daily.height:
        charts += [
            Chart("equity", "Each backtest strategy's equity (log scale).", draw.equity_curves(daily)),
            Chart("drawdowns", "Each strategy's fall from its running peak.", draw.drawdowns(daily)),
        ]
    return charts


def _portfolio(model: ModelDay, wh: Warehouse, settings: Settings, universe, tokens: pl.DataFrame, playbook):
    """(sector weights, orders, None), or (None, None, the error) when the portfolio file is wrong:
    a typo in it must not cost the user the rest of the page. `tokens`: the run's universe."""
    try:
        portfolio = load_portfolio(settings.portfolio_path, universe)
    except PortfolioError as exc:
        return None, None, str(exc)
    closes = wh.last_closes(model.day, settings.exchange, tokens["symbol"].to_list())
    orders = portfolio_orders(model.day, portfolio, model.rotation, model.hedges, closes, model.weights, tokens, playbook)
    held = portfolio_value(model.day, portfolio, closes, tokens)
    weights = pl.DataFrame({"sector": list(held.sector_usd), "weight": [held.weight(s) for s in held.sector_usd]},
                           schema={"sector": pl.String, "weight": pl.Float64})
    return weights, orders, None


def _backtest(daily: pl.DataFrame) -> list[dict]:
    """The strategy table over the days up to the page's day, in the strategies' order."""
    if daily.is_empty():
        return []
    order = {name: i for i, name in enumerate(NAMES)}
    return summary(daily).sort(pl.col("strategy").replace_strict(order, default=len(order))).to_dicts()


def _survivorship(rows: pl.DataFrame) -> list[dict]:
    """marts.backtest_survivorship, one row per strategy: each metric as it was, on the fixed list,
    and the difference, in the strategies' order."""
    if rows.is_empty():
        return []
    order = {name: i for i, name in enumerate(NAMES)}
    metrics = ["cagr", "sharpe", "max_drawdown"]
    wide = rows.pivot(on="universe", index=["strategy", "first_date", "last_date"], values=metrics)
    wide = wide.with_columns(
        (pl.col(f"{m}_point_in_time") - pl.col(f"{m}_fixed_list")).alias(f"{m}_diff") for m in metrics)
    return wide.sort(pl.col("strategy").replace_strict(order, default=len(order))).to_dicts()


def pack_specs(specs: dict[str, dict]) -> str:
    """The charts' specs as gzipped JSON in base64, which the page unpacks with the browser's own
    DecompressionStream: years of daily rows take a tenth of the room (4 MB of JSON for the real
    history, under 5 MB only just, and growing with every year)."""
    return base64.b64encode(gzip.compress(json.dumps(specs, separators=(",", ":")).encode(), mtime=0)).decode("ascii")


def unpack_specs(packed: str) -> dict[str, dict]:
    return json.loads(gzip.decompress(base64.b64decode(packed)))


def render(context: dict, charts: list[Chart], quality_link: str) -> str:
    vega_js = ""
    if charts:  # ROTATION_CHARTS=0: the tables alone
        import vl_convert

        vega_js = vl_convert.javascript_bundle()
    return _TEMPLATES.get_template("report.html").render(
        **context, charts=charts, specs=pack_specs({c.key: c.spec() for c in charts}), vega_js=vega_js,
        quality_link=quality_link,
    )
