"""Charts to images without a browser (vl-convert): PNG bytes, and a Markdown image small enough for
Dagster's metadata to show."""

import base64

import altair as alt
import vl_convert

MIN_SCALE = 0.1


def png(chart: alt.TopLevelMixin, scale: float = 1.0) -> bytes:
    """The chart as PNG; its size in pixels is the chart's width and height times scale."""
    return vl_convert.vegalite_to_png(vl_spec=chart.to_dict(), scale=scale)


def md_image(chart: alt.TopLevelMixin, max_bytes: int = 200_000) -> str:
    """`![title](data:image/png;base64,...)`, the scale lowered until the whole text fits max_bytes."""
    spec = chart.to_dict()
    title = spec.get("title", "chart")
    title = title.get("text", "chart") if isinstance(title, dict) else title
    title = " ".join(title) if isinstance(title, list) else str(title)
    title = title.replace("[", "(").replace("]", ")").replace("\n", " ")
    scale = 1.0
    while True:
        image = vl_convert.vegalite_to_png(vl_spec=spec, scale=scale)
        text = f"![{title}](data:image/png;base64,{base64.b64encode(image).decode('ascii')})"
        if len(text.encode()) <= max_bytes:
            return text
        if scale <= MIN_SCALE:
            raise ValueError(f"chart {title!r} does not fit {max_bytes:,} bytes even at scale {scale:.2f}")
        # a PNG's bytes grow about with its area (scale squared); aim a little under
        scale = max(MIN_SCALE, min(0.9 * scale, scale * 0.95 * (max_bytes / len(text.encode())) ** 0.5))
