"""Render convscope's pages: the Jinja2 templates, and figures inlined as PNG data URIs.

    from convscope.html.render import inline_png, load_figures, render_template
    figure = inline_png("runs/mnist-demo/plots/confusion_matrix.png")   # Figure(name, uri, width, height)
    figures = load_figures("runs/mnist-demo/plots")                     # {"confusion_matrix": Figure, ...}
    html = render_template("compare.html.j2", title="...", sections=[...], numeric=[...], version="0.1.0", built_at="...")

The templates (report.html.j2, compare.html.j2 and the style sheet report.css
they both include) live in convscope/html/templates/. A page made here makes
no request: every figure is a data URI and the style sheet is inlined.
"""

from __future__ import annotations

import base64
import io
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from convscope.errors import ConvscopeError

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# Figures are drawn at 100 dpi (plots.common.DPI) and most weigh 20-150 KB. A larger
# one (a grid of photos, a mosaic of many channels) is reduced to 256 colours and at
# most MAX_FIGURE_WIDTH pixels, which keeps a full-MNIST report far below 8 MB;
# matplotlib's flat colours survive the palette without visible change.
MAX_FIGURE_BYTES = 300_000
MAX_FIGURE_WIDTH = 1600  # px: about twice the report's text column, still sharp on a high-density screen


@dataclass(frozen=True)
class Figure:
    """One PNG, ready for an <img> tag."""

    name: str  # file stem, e.g. "confusion_matrix"
    uri: str  # data:image/png;base64,...
    width: int  # pixels
    height: int


def build_time() -> str:
    """The footer's build time: now, local time, to the second (the one thing two builds of a page differ in)."""
    return datetime.now().astimezone().isoformat(sep=" ", timespec="seconds")


def render_template(name: str, **context) -> str:
    """Render one of convscope's HTML templates (report.html.j2, compare.html.j2) with ``context``."""
    import jinja2  # here, not at the top: importing convscope.compare for its leaderboard does not load Jinja2

    environment = jinja2.Environment(
        loader=jinja2.PackageLoader("convscope.html", "templates"),
        autoescape=jinja2.select_autoescape(["html", "html.j2"]),
        undefined=jinja2.StrictUndefined,  # a misspelt field fails the build instead of vanishing
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    return environment.get_template(name).render(**context)


def load_figures(folder: Path | None) -> dict[str, Figure]:
    """Every PNG in ``folder`` as an inline Figure, by file stem (sorted by name)."""
    if folder is None or not Path(folder).is_dir():
        return {}
    return {path.stem: inline_png(path) for path in sorted(Path(folder).glob("*.png")) if not path.name.startswith(".")}


def inline_png(path: Path) -> Figure:
    """Read a PNG (downsized when large, see MAX_FIGURE_BYTES) and return it as a data URI."""
    from PIL import Image  # here, not at the top: importing convscope.compare for its leaderboard does not load Pillow

    data = Path(path).read_bytes()
    if not data.startswith(PNG_SIGNATURE):
        raise ConvscopeError(f"{path}: not a PNG file; delete it and re-run `convscope evaluate` or `convscope inspect`")
    with Image.open(io.BytesIO(data)) as image:
        width, height = image.size
        if len(data) > MAX_FIGURE_BYTES:
            data, width, height = _shrink_png(image, data)
    return Figure(Path(path).stem, "data:image/png;base64," + base64.b64encode(data).decode("ascii"), width, height)


def _shrink_png(image, data: bytes) -> tuple[bytes, int, int]:
    from PIL import Image  # here, not at the top: importing convscope.compare for its leaderboard does not load Pillow

    picture = image.convert("RGB")
    if picture.width > MAX_FIGURE_WIDTH:
        height = round(picture.height * MAX_FIGURE_WIDTH / picture.width)
        picture = picture.resize((MAX_FIGURE_WIDTH, height), Image.Resampling.LANCZOS)
    palette = picture.quantize(colors=256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)
    buffer = io.BytesIO()
    palette.save(buffer, format="PNG", optimize=True)
    if buffer.tell() >= len(data):
        return data, image.width, image.height
    return buffer.getvalue(), picture.width, picture.height

