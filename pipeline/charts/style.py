"""What every chart shares: its size, the as-of cut (no look-ahead), the title, inline data, sector colours."""

import datetime as dt
from collections.abc import Iterable

import altair as alt
import polars as pl

# The whole image at scale 1, axes, title and legend included ("fit"), so a PNG's size is known.
WIDTH, HEIGHT = 640, 400
# Composite series of marts.sector_index (pipeline/transforms/config.py's defaults).
BTC, ETH, ALTS = "BTC", "ETH", "Alts"
SIGNIFICANT_DIGITS = 6

SECTOR_COLOURS = {
    "Core": "#f58518", "Layer-1": "#4c78a8", "Layer-2": "#72b7b2", "DeFi": "#54a24b",
    "Infrastructure": "#b279a2", "AI": "#e45756", "Gaming": "#eeca3b", "Memes": "#ff9da6",
    BTC: "#000000", ETH: "#9d755d", ALTS: "#8c8c8c",
}
_OTHER_COLOURS = ("#17becf", "#bcbd22", "#7f7f7f", "#8c564b", "#e377c2", "#1f77b4")


def up_to(frame: pl.DataFrame, as_of: dt.date, column: str = "date") -> pl.DataFrame:
    """The rows dated on or before as_of: a chart of a day never shows what came after it."""
    return frame.filter(pl.col(column) <= as_of)


def titled(text: str, as_of: dt.date) -> str:
    return f"{text}, as of {as_of.isoformat()}"


def chart_rows(frame: pl.DataFrame) -> pl.DataFrame:
    """The rows a layer draws, as Altair passes them into the spec (top-level `datasets`, each frame
    once however many layers share it; see render.spec): NaN, which JSON lacks, as null, and numbers
    to 6 significant digits (finer than a pixel; the full ones would make a report of years a third
    bigger)."""
    return frame.with_columns(pl.col(pl.Float32, pl.Float64).fill_nan(None).round_sig_figs(SIGNIFICANT_DIGITS))


def per_pixel(frame: pl.DataFrame, value: str, series: Iterable[str] = (), x: str = "date") -> pl.DataFrame:
    """The rows of a line chart that can show, at most four per series and pixel column of the plot:
    the first, last, lowest and highest (the M4 rule), which draw the same line as every row. Years of
    daily history are thousands of points on 640 pixels; the extra points cost render time and PNG
    bytes and show nothing more. Sorted by series and x."""
    series = list(series)
    frame = frame.sort(*series, x)
    if frame.is_empty() or frame[x].n_unique() <= WIDTH:
        return frame
    first, span = frame[x].min(), (frame[x].max() - frame[x].min()).days + 1
    by = [*series, "_pixel"]
    order = pl.int_range(pl.len()).over(by)
    ranked = frame.with_columns(_pixel=(pl.col(x) - first).dt.total_days() * WIDTH // span)
    return ranked.filter(
        (order == 0) | (order == pl.len().over(by) - 1)
        | (pl.col(value) == pl.col(value).min().over(by)) | (pl.col(value) == pl.col(value).max().over(by))
    ).drop("_pixel")


def sized(chart: alt.TopLevelMixin, title: str) -> alt.TopLevelMixin:
    return chart.properties(
        title=title, width=WIDTH, height=HEIGHT,
        autosize=alt.AutoSizeParams(type="fit", contains="padding"),
    )


def sector_order(sectors: Iterable[str]) -> list[str]:
    """The universe's order (Core, Layer-1, ... Memes, then BTC, ETH, Alts), unknown sectors last."""
    known = list(SECTOR_COLOURS)
    return sorted(set(sectors), key=lambda s: (known.index(s) if s in known else len(known), s))


def sector_colour(sectors: Iterable[str]) -> alt.Scale:
    """The same colour for a sector on every chart; composites BTC black, Alts grey."""
    domain = sector_order(sectors)
    others = iter(_OTHER_COLOURS * (1 + len(domain) // len(_OTHER_COLOURS)))
    return alt.Scale(domain=domain, range=[SECTOR_COLOURS.get(s) or next(others) for s in domain])
