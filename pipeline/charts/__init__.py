"""Charts of the marts, as of a day: pure functions from Polars frames to Altair charts, and their rendering."""

from pipeline.charts.allocation import target_allocation, target_vs_portfolio
from pipeline.charts.altseason import altseason_index
from pipeline.charts.equity import drawdowns, equity_curves
from pipeline.charts.funding import funding_apr, hedged_perps
from pipeline.charts.indices import sector_indices
from pipeline.charts.phases import dominance_and_phases
from pipeline.charts.render import md_image, png, spec
from pipeline.charts.rrg import rotation_graph

__all__ = [
    "altseason_index",
    "dominance_and_phases",
    "drawdowns",
    "equity_curves",
    "funding_apr",
    "hedged_perps",
    "md_image",
    "png",
    "rotation_graph",
    "sector_indices",
    "spec",
    "target_allocation",
    "target_vs_portfolio",
]
