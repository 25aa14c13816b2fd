"""The charts of the marts: given a few rows of a mart, the chart's Vega-Lite spec holds what it should
(and nothing after its as-of day), and it renders to a PNG of the set size."""

import base64
import datetime as dt
import math

import polars as pl
import pytest
import vl_convert

from pipeline import charts
from pipeline.charts import render
from pipeline.charts.style import HEIGHT, SECTOR_COLOURS, WIDTH, per_pixel

AS_OF = dt.date(2025, 8, 2)
QUADRANTS = {"leading", "weakening", "lagging", "improving"}


def days(first: dt.date, last: dt.date) -> list[dt.date]:
    return pl.date_range(first, last, eager=True).to_list()


def layers(spec: dict) -> list[dict]:
    return spec.get("layer", [spec])


def rows(spec: dict, layer: dict) -> list[dict]:
    """The layer's data values (Altair moves inline data to the spec's top-level datasets)."""
    data = layer["data"]
    return spec["datasets"][data["name"]] if "name" in data else data["values"]


def day(value: str) -> dt.date:
    return dt.date.fromisoformat(value[:10])


def mark(layer: dict) -> str:
    return layer["mark"] if isinstance(layer["mark"], str) else layer["mark"]["type"]


def marked(spec: dict, kind: str) -> list[dict]:
    return [layer for layer in layers(spec) if mark(layer) == kind]


def all_dates(spec: dict, field: str = "date") -> list[dt.date]:
    return [day(row[field]) for layer in layers(spec) for row in rows(spec, layer) if row.get(field)]


def png_size(image: bytes) -> tuple[int, int]:
    assert image[:8] == b"\x89PNG\r\n\x1a\n" and image[12:16] == b"IHDR"
    return int.from_bytes(image[16:20], "big"), int.from_bytes(image[20:24], "big")


# --- the relative rotation graph ------------------------------------------------------------------

def relative_strength() -> pl.DataFrame:
    """100 days of every sector ending 10 days after AS_OF; AI has no reading on AS_OF, Layer-1 misses
    the day two weeks before it."""
    dates = days(AS_OF - dt.timedelta(days=89), AS_OF + dt.timedelta(days=10))
    frame = pl.DataFrame(
        [
            {"sector": sector, "date": d, "rs_ratio": 100 + 3 * math.cos(i / 9 + k),
             "rs_momentum": 100 + 2 * math.sin(i / 9 + k), "quadrant": "leading"}
            for k, sector in enumerate(["DeFi", "Layer-1", "AI", "Alts", "BTC", "ETH"])
            for i, d in enumerate(dates)
        ]
    )
    return frame.filter(
        ~((pl.col("sector") == "Layer-1") & (pl.col("date") == AS_OF - dt.timedelta(days=14)))
    ).with_columns(
        pl.when((pl.col("sector") == "AI") & (pl.col("date") == AS_OF)).then(None)
        .otherwise(pl.col("rs_momentum")).alias("rs_momentum")
    )


def test_rotation_graph_draws_each_sectors_last_eight_weeks_ending_on_the_day():
    spec = charts.spec(charts.rotation_graph(relative_strength(), AS_OF))

    (tail,) = marked(spec, "line")
    path = {}
    for row in rows(spec, tail):
        path.setdefault(row["sector"], []).append(day(row["date"]))
    weekly = [AS_OF - dt.timedelta(days=7 * week) for week in range(7, -1, -1)]
    assert path["DeFi"] == weekly
    assert path["Layer-1"] == [d for d in weekly if d != AS_OF - dt.timedelta(days=14)]
    assert path["AI"] == weekly[:-1]  # its null reading on AS_OF is not drawn
    assert set(path) == {"DeFi", "Layer-1", "AI", "Alts"}  # BTC and ETH (trivial vs BTC) are not
    assert tail["encoding"]["x"]["field"] == "rs_ratio" and tail["encoding"]["y"]["field"] == "rs_momentum"
    assert tail["encoding"]["order"]["field"] == "date"
    assert max(all_dates(spec)) == AS_OF
    assert AS_OF.isoformat() in spec["title"]


def test_rotation_graph_marks_the_newest_point_of_each_sector_bigger_and_labelled():
    spec = charts.spec(charts.rotation_graph(relative_strength(), AS_OF))

    circles = marked(spec, "circle")
    newest = max(circles, key=lambda layer: layer["mark"]["size"])
    assert newest["mark"]["size"] > min(layer["mark"]["size"] for layer in circles)
    assert {r["sector"]: day(r["date"]) for r in rows(spec, newest)} == {
        "DeFi": AS_OF, "Layer-1": AS_OF, "Alts": AS_OF, "AI": AS_OF - dt.timedelta(days=7)}
    sector_labels = [layer for layer in marked(spec, "text") if layer["encoding"]["text"]["field"] == "sector"]
    assert {r["sector"] for r in rows(spec, sector_labels[0])} == {"DeFi", "Layer-1", "Alts", "AI"}


def test_rotation_graph_shades_and_labels_the_four_quadrants_around_100():
    spec = charts.spec(charts.rotation_graph(relative_strength(), AS_OF))

    (shading,) = marked(spec, "rect")
    corners = {r["quadrant"]: r for r in rows(spec, shading)}
    assert set(corners) == QUADRANTS
    assert corners["leading"]["x"] == 100 and corners["leading"]["y"] == 100
    assert corners["weakening"]["x"] == 100 and corners["weakening"]["y2"] == 100
    assert corners["lagging"]["x2"] == 100 and corners["lagging"]["y2"] == 100
    assert corners["improving"]["x2"] == 100 and corners["improving"]["y"] == 100
    quadrant_labels = [layer for layer in marked(spec, "text") if layer["encoding"]["text"]["field"] == "quadrant"]
    assert {r["quadrant"] for r in rows(spec, quadrant_labels[0])} == QUADRANTS
    rules = marked(spec, "rule")
    assert sorted(next(iter(rule["encoding"])) for rule in rules) == ["x", "y"]
    assert all(r["centre"] == 100 for rule in rules for r in rows(spec, rule))


def test_rotation_graph_keeps_sector_colours_apart_from_the_quadrants():
    """One colour scale for both would paint the sectors' tails in the quadrants' four colours."""
    vega = vl_convert.vegalite_to_vega(charts.spec(charts.rotation_graph(relative_strength(), AS_OF)))
    scales = {tuple(s["domain"]): s["range"] for s in vega["scales"] if isinstance(s.get("domain"), list)
              and isinstance(s["domain"][0], str)}
    assert scales[("leading", "weakening", "lagging", "improving")] == ["#54a24b", "#eeca3b", "#e45756", "#4c78a8"]
    sectors = ("Layer-1", "DeFi", "AI", "Alts")
    assert scales[sectors] == [SECTOR_COLOURS[s] for s in sectors]


# --- sector indices -----------------------------------------------------------------------------

def sector_index() -> pl.DataFrame:
    """Two years of DeFi, BTC, Alts (both weightings), and Memes from 100 days before AS_OF, past AS_OF."""
    frames = []
    for sector, growth, first in (("DeFi", 0.002, None), ("BTC", 0.001, None), ("Alts", -0.001, None),
                                  ("Memes", 0.003, AS_OF - dt.timedelta(days=100))):
        dates = days(first or AS_OF - dt.timedelta(days=730), AS_OF + dt.timedelta(days=30))
        for weighting, scale in (("capped", 1.0), ("equal", 3.0)):
            frames.append(pl.DataFrame({
                "sector": sector, "date": dates, "weighting": weighting,
                "level": [scale * 100 * math.exp(growth * i) for i in range(len(dates))],
            }))
    return pl.concat(frames)


def test_sector_indices_start_at_100_a_year_before_on_a_log_scale():
    index = sector_index()
    spec = charts.spec(charts.sector_indices(index, AS_OF))

    start = AS_OF - dt.timedelta(days=365)
    lines = {r["sector"]: r for layer in layers(spec) for r in rows(spec, layer) if day(r["date"]) == start}
    assert {sector: round(r["rebased"], 9) for sector, r in lines.items()} == {"DeFi": 100, "BTC": 100, "Alts": 100}
    memes = [r for layer in layers(spec) for r in rows(spec, layer) if r["sector"] == "Memes"]
    assert day(memes[0]["date"]) == AS_OF - dt.timedelta(days=100) and memes[0]["rebased"] == pytest.approx(100)
    defi = {day(r["date"]): r["rebased"] for layer in layers(spec) for r in rows(spec, layer) if r["sector"] == "DeFi"}
    assert defi[AS_OF] == pytest.approx(100 * math.exp(0.002 * 365))  # capped, not the equal-weighted x3
    assert min(all_dates(spec)) == start and max(all_dates(spec)) == AS_OF
    assert all(layer["encoding"]["y"]["scale"]["type"] == "log" for layer in layers(spec))
    assert AS_OF.isoformat() in spec["title"]


def test_sector_indices_draw_btc_and_alts_dashed_as_reference():
    spec = charts.sector_indices(sector_index(), AS_OF, start=AS_OF - dt.timedelta(days=30), weighting="equal")

    spec = charts.spec(spec)
    dashed = [layer for layer in layers(spec) if "strokeDash" in layer["mark"]]
    solid = [layer for layer in layers(spec) if "strokeDash" not in layer["mark"]]
    assert {r["sector"] for layer in dashed for r in rows(spec, layer)} == {"BTC", "Alts"}
    assert {r["sector"] for layer in solid for r in rows(spec, layer)} == {"DeFi", "Memes"}
    assert min(all_dates(spec)) == AS_OF - dt.timedelta(days=30)
    assert "equal" in spec["title"]


# --- dominance and phases -------------------------------------------------------------------------

def test_dominance_and_phases_draw_one_band_per_run_of_a_phase():
    dates = days(AS_OF - dt.timedelta(days=9), AS_OF + dt.timedelta(days=3))
    phases = [None, None, "bear", "bear", "btc_dominance", "btc_dominance", "btc_dominance", "bear", "bear",
              "altcoin_surge", "peak_consolidation", "peak_consolidation", "peak_consolidation"]
    regime = pl.DataFrame({"date": dates, "phase": phases, "btc_dominance_pct": [55.0 + i for i in range(13)]})
    btc = sector_index().filter(pl.col("sector") == "BTC")

    spec = charts.spec(charts.dominance_and_phases(regime, btc, AS_OF))

    (bands,) = marked(spec, "rect")
    assert [(r["phase"], day(r["start"]), day(r["end"])) for r in rows(spec, bands)] == [
        ("bear", dates[2], dates[4]),
        ("btc_dominance", dates[4], dates[7]),
        ("bear", dates[7], dates[9]),
        ("altcoin_surge", dates[9], dates[10]),  # AS_OF is dates[9]: the peak after it is not there
    ]
    assert bands["encoding"]["color"]["field"] == "phase"
    dominance, level = marked(spec, "line")
    assert dominance["encoding"]["y"]["field"] == "btc_dominance_pct"
    assert [r["btc_dominance_pct"] for r in rows(spec, dominance)] == [55.0 + i for i in range(10)]
    assert level["encoding"]["y"]["field"] == "level" and level["encoding"]["y"]["scale"]["type"] == "log"
    assert len(rows(spec, level)) == 731 and max(day(r["date"]) for r in rows(spec, level)) == AS_OF
    assert spec["resolve"]["scale"]["y"] == "independent"
    assert AS_OF.isoformat() in spec["title"]

    without_btc = charts.spec(charts.dominance_and_phases(regime, None, AS_OF))
    assert [layer["encoding"]["y"]["field"] for layer in marked(without_btc, "line")] == ["btc_dominance_pct"]


# --- altseason ------------------------------------------------------------------------------------

def test_altseason_index_has_rules_at_25_and_75_labelled():
    dates = days(AS_OF - dt.timedelta(days=59), AS_OF + dt.timedelta(days=5))
    altseason = pl.DataFrame({"date": dates, "altseason_index": [float(i) for i in range(len(dates))]})

    spec = charts.spec(charts.altseason_index(altseason, AS_OF))

    (rule,) = marked(spec, "rule")
    assert sorted(r["level"] for r in rows(spec, rule)) == [25, 75]
    labels = {r["label"] for layer in marked(spec, "text") for r in rows(spec, layer)
              if layer.get("transform")}
    assert any("BTC season" in label for label in labels) and any("alt season" in label for label in labels)
    (line,) = marked(spec, "line")
    assert line["encoding"]["y"]["field"] == "altseason_index"
    assert [r["altseason_index"] for r in rows(spec, line)][-1] == 59.0
    assert max(all_dates(spec)) == AS_OF


# --- allocation -----------------------------------------------------------------------------------

def rotation() -> pl.DataFrame:
    weights = {"Core": 0.6, "Layer-1": 0.25, "DeFi": 0.15}
    return pl.DataFrame([
        {"as_of": d, "sector": sector, "target_weight": weight}
        for d in days(AS_OF - dt.timedelta(days=20), AS_OF + dt.timedelta(days=2))
        for sector, weight in weights.items()
    ])


def test_target_allocation_stacks_the_weights_as_steps_on_the_days_they_change_up_to_the_day():
    moved = AS_OF - dt.timedelta(days=10)
    targets = rotation().with_columns(  # Core gives 5 points to DeFi on `moved`; Layer-1 has no row that day
        target_weight=pl.when((pl.col("as_of") >= moved) & (pl.col("sector") == "Core")).then(0.55)
        .when((pl.col("as_of") >= moved) & (pl.col("sector") == "DeFi")).then(0.2).otherwise(pl.col("target_weight"))
    ).filter(~((pl.col("as_of") == moved + dt.timedelta(days=3)) & (pl.col("sector") == "Layer-1")))

    spec = charts.spec(charts.target_allocation(targets, AS_OF))

    assert mark(spec) == "area" and marked(spec, "area")[0]["mark"]["interpolate"] == "step-after"
    assert spec["encoding"]["y"]["field"] == "target_weight" and spec["encoding"]["y"]["stack"] == "zero"
    assert spec["encoding"]["color"]["field"] == "sector"
    drawn = {(day(r["as_of"]), r["sector"]): r["target_weight"] for r in rows(spec, spec)}
    first, gap = AS_OF - dt.timedelta(days=20), moved + dt.timedelta(days=3)
    # the first day, each change (Layer-1's missing day is a 0 and its return a change) and the last
    assert sorted({d for d, _ in drawn}) == [first, moved, gap, gap + dt.timedelta(days=1), AS_OF]
    assert drawn[(first, "Core")] == 0.6 and drawn[(moved, "Core")] == 0.55 and drawn[(moved, "DeFi")] == 0.2
    assert drawn[(gap, "Layer-1")] == 0.0 and drawn[(AS_OF, "Layer-1")] == 0.25
    assert AS_OF.isoformat() in spec["title"]


def test_target_vs_portfolio_puts_the_days_target_beside_the_users_weight():
    targets = rotation().filter(pl.col("as_of") <= AS_OF).with_columns(
        pl.when((pl.col("as_of") == AS_OF) & (pl.col("sector") == "DeFi")).then(0.2)
        .when((pl.col("as_of") == AS_OF) & (pl.col("sector") == "Core")).then(0.55)
        .otherwise(pl.col("target_weight")).alias("target_weight"))
    portfolio = pl.DataFrame({"sector": ["DeFi", "Infrastructure"], "weight": [0.35, 0.65]})

    spec = charts.spec(charts.target_vs_portfolio(targets, portfolio))

    assert mark(spec) == "bar" and spec["encoding"]["xOffset"]["field"] == "holder"
    bars = {(r["sector"], r["holder"]): r["weight"] for r in rows(spec, spec)}
    assert bars == {
        ("Core", "model target"): 0.55, ("Core", "your portfolio"): 0.0,
        ("Layer-1", "model target"): 0.25, ("Layer-1", "your portfolio"): 0.0,
        ("DeFi", "model target"): 0.2, ("DeFi", "your portfolio"): 0.35,
        ("Infrastructure", "model target"): 0.0, ("Infrastructure", "your portfolio"): 0.65,
    }
    assert spec["encoding"]["x"]["sort"] == ["Core", "Layer-1", "DeFi", "Infrastructure"]
    assert AS_OF.isoformat() in spec["title"]


# --- equity and drawdowns -------------------------------------------------------------------------

def backtest_daily() -> pl.DataFrame:
    # playbook: lost 10% on its first day (from $100,000), recovered past the start, fell 20% from 105,000
    return pl.DataFrame({
        "strategy": ["playbook"] * 4 + ["btc_hold"] * 2,
        "date": days(AS_OF - dt.timedelta(days=3), AS_OF) + days(AS_OF - dt.timedelta(days=1), AS_OF),
        "equity": [90_000.0, 95_000.0, 105_000.0, 84_000.0, 100_000.0, 50_000.0],
        "ret": [-0.1, 95 / 90 - 1, 105 / 95 - 1, -0.2, 0.0, -0.5],
    })


def test_equity_curves_one_line_per_strategy_on_a_log_scale():
    spec = charts.spec(charts.equity_curves(backtest_daily()))

    assert mark(spec) == "line" and spec["encoding"]["y"]["scale"]["type"] == "log"
    assert spec["encoding"]["color"]["field"] == "strategy"
    assert [r["equity"] for r in rows(spec, spec) if r["strategy"] == "playbook"] == [90_000, 95_000, 105_000, 84_000]
    assert AS_OF.isoformat() in spec["title"]


def test_drawdown_counts_the_initial_capital_as_the_first_peak():
    spec = charts.spec(charts.drawdowns(backtest_daily()))

    falls = {}
    for r in rows(spec, spec):
        falls.setdefault(r["strategy"], []).append(r["drawdown"])
    assert falls["playbook"] == pytest.approx([-0.10, -0.05, 0.0, -0.20])  # 90/100, 95/100, 105/105, 84/105
    assert falls["btc_hold"] == pytest.approx([0.0, -0.5])
    assert spec["encoding"]["y"]["field"] == "drawdown"


# --- funding --------------------------------------------------------------------------------------

def test_funding_apr_draws_the_chosen_perps_against_zero_and_hot():
    dates = days(AS_OF - dt.timedelta(days=9), AS_OF + dt.timedelta(days=4))
    costs = pl.DataFrame([
        {"exchange": "binance", "symbol": symbol, "date": d, "funding_apr_pct": 99.0, "funding_apr_7d_pct": float(i)}
        for symbol in ("BTC/USDT:USDT", "ETH/USDT:USDT", "UNI/USDT:USDT") for i, d in enumerate(dates)
    ])

    spec = charts.spec(charts.funding_apr(costs, ["BTC/USDT:USDT", "UNI/USDT:USDT"], AS_OF, hot_apr_pct=25.0))

    (rule,) = marked(spec, "rule")
    assert sorted(r["apr_pct"] for r in rows(spec, rule)) == [-25, 0, 25]
    (label,) = marked(spec, "text")
    assert [r["label"].split(":")[0] for r in rows(spec, label)] == ["hot", "0", "negative"]
    (line,) = marked(spec, "line")
    values = rows(spec, line)
    assert {r["symbol"] for r in values} == {"BTC/USDT:USDT", "UNI/USDT:USDT"}
    assert max(r["apr_pct"] for r in values) == 9.0  # the 7-day APR up to AS_OF, not the daily 99
    assert max(all_dates(spec)) == AS_OF
    assert AS_OF.isoformat() in spec["title"]


# --- rendering ------------------------------------------------------------------------------------

def every_chart() -> dict:
    portfolio = pl.DataFrame({"sector": ["DeFi"], "weight": [1.0]})
    regime = pl.DataFrame({"date": days(AS_OF - dt.timedelta(days=30), AS_OF), "phase": "bear",
                           "btc_dominance_pct": 58.0})
    costs = pl.DataFrame({"symbol": "BTC/USDT:USDT", "date": days(AS_OF - dt.timedelta(days=30), AS_OF),
                          "funding_apr_pct": 12.0})
    return {
        "rrg": lambda: charts.rotation_graph(relative_strength(), AS_OF),
        "indices": lambda: charts.sector_indices(sector_index(), AS_OF),
        "phases": lambda: charts.dominance_and_phases(regime, sector_index(), AS_OF),
        "altseason": lambda: charts.altseason_index(
            pl.DataFrame({"date": [AS_OF], "altseason_index": [40.0]}), AS_OF),
        "allocation": lambda: charts.target_allocation(rotation(), AS_OF),
        "target_vs_portfolio": lambda: charts.target_vs_portfolio(rotation(), portfolio),
        "equity": lambda: charts.equity_curves(backtest_daily()),
        "drawdowns": lambda: charts.drawdowns(backtest_daily()),
        "funding": lambda: charts.funding_apr(costs, ["BTC/USDT:USDT"], AS_OF),
    }


@pytest.mark.parametrize("name", list(every_chart()))
def test_every_chart_renders_to_a_png_of_the_set_size(name):
    image = render.png(every_chart()[name]())

    assert png_size(image) == (WIDTH, HEIGHT) == (640, 400)
    assert len(image) > 5_000  # drawn, not blank


def test_png_scales_with_the_scale():
    assert png_size(render.png(charts.drawdowns(backtest_daily()), scale=0.5)) == (WIDTH // 2, HEIGHT // 2)


def test_md_image_lowers_the_scale_until_it_fits():
    chart = charts.sector_indices(sector_index(), AS_OF)
    full = render.md_image(chart, max_bytes=10_000_000)
    small = render.md_image(chart, max_bytes=8_000)

    for text in (full, small):
        assert text.startswith(f"![Sector indices (capped) vs BTC and Alts (dashed), as of {AS_OF}](data:image/png;base64,")
        assert text.endswith(")")
    assert len(small.encode()) <= 8_000 < len(full.encode())
    width, height = png_size(base64.b64decode(small.split("base64,")[1][:-1]))
    assert width < WIDTH and height < HEIGHT
    assert png_size(base64.b64decode(full.split("base64,")[1][:-1])) == (WIDTH, HEIGHT)
    assert base64.b64decode(full.split("base64,")[1][:-1])[25] == 3  # IHDR colour type 3: a palette of <= 256 colours
    with pytest.raises(ValueError, match="does not fit"):
        render.md_image(chart, max_bytes=500)


def random_walks(names: tuple[str, ...], n_days: int) -> pl.DataFrame:
    dates = days(AS_OF - dt.timedelta(days=n_days - 1), AS_OF)
    steps = [math.sin(i * 12.9898 + k) * 0.03 for k in range(len(names)) for i in range(n_days)]  # deterministic noise
    return pl.DataFrame({"strategy": [s for s in names for _ in dates], "date": dates * len(names), "step": steps}).with_columns(
        equity=100_000 * (1 + pl.col("step")).cum_prod().over("strategy"), ret=pl.col("step"))


def test_a_long_history_is_drawn_whole_past_altairs_5000_row_limit():
    daily = random_walks(("playbook", "btc_hold", "btc_eth_60_40", "equal_sectors", "neutral_buckets"), 1_300)

    spec = charts.spec(charts.equity_curves(daily))
    drawn = pl.DataFrame(rows(spec, spec))

    assert drawn.height > 5_000
    for name, series in daily.group_by("strategy"):
        mine = drawn.filter(pl.col("strategy") == name[0])
        assert mine["equity"].max() == pytest.approx(series["equity"].max(), rel=1e-5)
        assert mine["equity"].min() == pytest.approx(series["equity"].min(), rel=1e-5)


def test_per_pixel_keeps_the_first_last_lowest_and_highest_row_of_each_series_in_each_pixel_column():
    daily = random_walks(("playbook", "btc_hold"), 4_000)
    span = 4_000

    kept = per_pixel(daily, "equity", ["strategy"])

    assert kept.height <= 2 * 4 * WIDTH < daily.height
    every = daily.with_columns(pixel=(pl.col("date") - pl.col("date").min()).dt.total_days() * WIDTH // span)
    ends = every.group_by("strategy", "pixel").agg(
        pl.col("date").min().alias("first"), pl.col("date").max().alias("last"),
        pl.col("date").sort_by("equity").first().alias("lowest"), pl.col("date").sort_by("equity").last().alias("highest"))
    assert ends.height == 2 * WIDTH
    pairs = set(kept.select("strategy", "date").iter_rows())
    for row in ends.iter_rows(named=True):
        assert all((row["strategy"], row[k]) in pairs for k in ("first", "last", "lowest", "highest"))
    assert kept.sort("strategy", "date").equals(kept)  # lines draw in order
    small = daily.filter(pl.col("date") > AS_OF - dt.timedelta(days=WIDTH))
    assert per_pixel(small, "equity", ["strategy"]).equals(small.sort("strategy", "date"))  # nothing to drop
