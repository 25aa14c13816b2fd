"""Charts to images without a browser (vl-convert): PNG bytes, and a Markdown image small enough for
Dagster's metadata to show."""

import base64
import io

import altair as alt
import vl_convert
from PIL import Image

MIN_SCALE = 0.1


def spec(chart: alt.TopLevelMixin) -> dict:
    """The chart's Vega-Lite spec with all its rows inline, whatever their number (Altair's default
    stops at 5,000). Altair validates the spec, but not each row: validating inline `values` row by
    row took seconds per chart on a few years of history."""
    with alt.data_transformers.enable("default", max_rows=None):
        return chart.to_dict()


def png(chart: alt.TopLevelMixin, scale: float = 1.0) -> bytes:
    """The chart as PNG; its size in pixels is the chart's width and height times scale."""
    return vl_convert.vegalite_to_png(vl_spec=spec(chart), scale=scale)


def palette_png(image: bytes) -> bytes:
    """The PNG with at most 256 colours (Pillow's median cut, no dithering): a chart has a few flat
    colours and their anti-aliased edges, and its full-colour PNG is 5-10x bigger for no visible gain
    (about 200 kB -> 20-30 kB for years of history)."""
    rgb = Image.open(io.BytesIO(image)).convert("RGB")
    out = io.BytesIO()
    rgb.quantize(256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE).save(out, "PNG", optimize=True)
    return out.getvalue()


def md_image(chart: alt.TopLevelMixin, max_bytes: int = 200_000) -> str:
    """`![title](data:image/png;base64,...)` of the palette PNG, the scale lowered until the whole
    text fits max_bytes (the metadata Dagster stores with each run)."""
    vl_spec = spec(chart)
    title = vl_spec.get("title", "chart")
    title = title.get("text", "chart") if isinstance(title, dict) else title
    title = " ".join(title) if isinstance(title, list) else str(title)
    title = title.replace("[", "(").replace("]", ")").replace("\n", " ")
    scale = 1.0
    while True:
        image = palette_png(vl_convert.vegalite_to_png(vl_spec=vl_spec, scale=scale))
        text = f"![{title}](data:image/png;base64,{base64.b64encode(image).decode('ascii')})"
        if len(text.encode()) <= max_bytes:
            return text
        if scale <= MIN_SCALE:
            raise ValueError(f"chart {title!r} does not fit {max_bytes:,} bytes even at scale {scale:.2f}")
        # a PNG's bytes grow about with its area (scale squared); aim a little under
        scale = max(MIN_SCALE, min(0.9 * scale, scale * 0.95 * (max_bytes / len(text.encode())) ** 0.5))
