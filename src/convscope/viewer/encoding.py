"""Arrays to what the viewer's page draws: PNG data URLs, feature-map mosaics, coloured overlays.

    from convscope.viewer.encoding import png_data_url, mosaic, overlay
    png_data_url(pixels)                      # 'data:image/png;base64,...' of (H, W) or (H, W, C) uint8
    picture, layout = mosaic(maps)            # (H, W, C) floats -> one grid of C tiles, one shared scale
    overlay(pixels, heatmap)                  # a [0, 1] heatmap coloured and blended over the image

Compute only (NumPy and Pillow); the colour maps are Matplotlib's, read once
into lookup tables so a request does no Matplotlib work.
"""

from __future__ import annotations

import base64
import functools
import io
import math

import numpy as np
from PIL import Image

TILE_GAP = 1  # pixels between mosaic tiles, drawn in the gap colour
GAP_VALUE = 40  # dark grey: tiles of a dead (all-zero) channel stay visibly separate
EMPTY_VALUE = 255  # grid slots past the last channel: white, so no one reads them as a channel
OVERLAY_ALPHA = 0.55  # heatmap weight where it is 1; the image shows through elsewhere


@functools.lru_cache(maxsize=None)
def colour_table(name: str) -> np.ndarray:
    """A Matplotlib colour map as a (256, 3) uint8 lookup table."""
    from matplotlib import colormaps  # lazy: only the viewer's first request needs it, and `import convscope.viewer` stays quick

    return np.round(colormaps[name](np.linspace(0, 1, 256))[:, :3] * 255).astype(np.uint8)


def png_bytes(pixels: np.ndarray) -> bytes:
    """(H, W), (H, W, 1) or (H, W, 3) uint8 as PNG bytes (fast compression: the page is local)."""
    pixels = np.asarray(pixels, np.uint8)
    if pixels.ndim == 3 and pixels.shape[-1] == 1:
        pixels = pixels[..., 0]
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG", compress_level=1)
    return buffer.getvalue()


def png_data_url(pixels: np.ndarray) -> str:
    """``png_bytes`` as a data: URL an <img> or the page's canvas takes."""
    return "data:image/png;base64," + base64.b64encode(png_bytes(pixels)).decode("ascii")


def to_uint8(values: np.ndarray, low: float, high: float) -> np.ndarray:
    """Linear map of [low, high] to 0..255 (a constant array maps to 0)."""
    span = high - low
    scaled = (np.asarray(values, np.float32) - low) / (span if span > 0 else 1.0)
    return np.round(np.clip(scaled, 0, 1) * 255).astype(np.uint8)


def grid_shape(count: int) -> tuple[int, int]:
    """(rows, columns) of a near-square grid holding ``count`` tiles, wider than tall."""
    columns = math.ceil(math.sqrt(count))
    return math.ceil(count / columns), columns


def mosaic(maps: np.ndarray, diverging: bool = False) -> tuple[np.ndarray, dict]:
    """Every channel of one feature map as a tile of one image, all on the layer's own scale.

    One shared scale (not one per tile) keeps channels comparable: a channel the
    ReLU switched off is black, not stretched noise.

    Args:
        maps: (H, W, C) floats, one image's layer output, channels-last.
        diverging: colour negative values blue and positive red around a white 0
            (pre-activation responses); else grey from the minimum to the maximum.

    Returns:
        (picture (rows * (H + gap) - gap, columns * (W + gap) - gap[, 3]) uint8,
        layout: channels, rows, columns, tile_height, tile_width, gap, low, high).

    Example:
        >>> picture, layout = mosaic(np.zeros((26, 26, 32)))
        >>> picture.shape, layout["columns"]
        ((167, 188), 6)
    """
    height, width, channels = maps.shape
    rows, columns = grid_shape(channels)
    if diverging:
        limit = float(np.abs(maps).max())
        low, high = -limit, limit
        tiles = colour_table("RdBu_r")[to_uint8(maps, low, high)]
    else:
        low, high = float(maps.min()), float(maps.max())
        tiles = to_uint8(maps, low, high)[..., None]
    step_y, step_x = height + TILE_GAP, width + TILE_GAP
    picture = np.full((rows * step_y - TILE_GAP, columns * step_x - TILE_GAP, tiles.shape[-1]), GAP_VALUE, np.uint8)
    last_row = (channels - 1) // columns
    picture[last_row * step_y :, ((channels - 1) % columns + 1) * step_x - TILE_GAP :] = EMPTY_VALUE
    for channel in range(channels):
        row, column = divmod(channel, columns)
        picture[row * step_y : row * step_y + height, column * step_x : column * step_x + width] = (
            tiles[:, :, channel] if not diverging else tiles[:, :, channel, :]
        )
    layout = {"channels": channels, "rows": rows, "columns": columns, "tile_height": height, "tile_width": width,
              "gap": TILE_GAP, "low": round(low, 6), "high": round(high, 6)}
    return (picture[..., 0] if picture.shape[-1] == 1 else picture), layout


def overlay(pixels: np.ndarray, heatmap: np.ndarray, colour_map: str = "inferno") -> np.ndarray:
    """A [0, 1] heatmap coloured and blended over an image: (H, W, 3) uint8.

    The heat's own value sets its opacity, so cold regions show the image itself.
    """
    base = np.asarray(pixels, np.float32)
    base = np.repeat(base, 3, axis=-1) if base.shape[-1] == 1 else base
    heat = np.clip(np.asarray(heatmap, np.float32), 0, 1)
    colours = colour_table(colour_map)[np.round(heat * 255).astype(np.uint8)].astype(np.float32)
    alpha = (OVERLAY_ALPHA * heat)[..., None]
    return np.round(base * (1 - alpha) + colours * alpha).astype(np.uint8)


def heat_image(heatmap: np.ndarray, colour_map: str = "inferno") -> np.ndarray:
    """A [0, 1] heatmap alone, coloured: (H, W, 3) uint8."""
    return colour_table(colour_map)[np.round(np.clip(heatmap, 0, 1) * 255).astype(np.uint8)]


def filter_tiles(filters) -> list[np.ndarray]:
    """First-layer filters (``inspection.FirstLayerFilters``) as one small image per filter.

    RGB input: its colour composites (``filters.rgb``). Otherwise the mean over
    input channels, blue negative, red positive, white 0, on the layer's largest |weight|.
    """
    if filters.rgb is not None:
        return list(filters.rgb)
    flat = np.asarray(filters.kernels, np.float32).mean(axis=2)  # (kh, kw, filters)
    limit = float(np.abs(flat).max()) or 1.0
    coloured = colour_table("RdBu_r")[to_uint8(flat, -limit, limit)]  # (kh, kw, filters, 3)
    return [coloured[:, :, index] for index in range(flat.shape[-1])]
