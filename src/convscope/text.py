"""Text for people: aligned tables, folder-name slugs and number formats.

    from convscope.text import format_percent, format_table, slugify
    print(format_table(["model", "params"], [["mlp_512", "669,706"], ["cnn_single", "216,650"]], align="lr"))
    slugify("my data/v2")          # 'my-data-v2'
    format_percent(0.98765)        # '98.77%'

Every terminal table of convscope (`convscope models`, `datasets`, `summary`,
`predict`, `compare`) goes through ``format_table``, and the report and the
terminal print bytes, shapes and seconds with the same functions, so a number
reads the same wherever it appears.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

# --------------------------------------------------------------------------- tables


def column_widths(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> list[int]:
    """The width of each column: its longest cell, heading included."""
    return [max(len(row[column]) for row in [headers, *rows]) for column in range(len(headers))]


def table_lines(
    headers: Sequence[str],
    rows: Sequence[Sequence[str]],
    align: str = "l",
    separator: str = "  ",
    strip_trailing: bool = True,
) -> list[str]:
    """The lines of an aligned text table: the headings, then one line per row.

    A left-aligned last column is not padded, so a long description or URL
    in it does not widen the other lines.

    Args:
        headers: one heading per column.
        rows: rows of display strings, as many cells as headings.
        align: "l" (left) or "r" (right) per column, e.g. "lrl"; one letter sets every column.
        separator: what goes between two columns.
        strip_trailing: remove spaces at the end of each line.

    Returns:
        The lines, without line ends.

    Example:
        >>> table_lines(["layer", "params"], [["conv1", "320"]], align="lr")
        ['layer  params', 'conv1     320']
    """
    sides = align * len(headers) if len(align) == 1 else align
    if len(sides) != len(headers) or set(sides) - {"l", "r"}:
        raise ValueError(f"align={align!r}: expected 'l' or 'r' for each of the {len(headers)} columns, or one letter for all")
    widths = column_widths(headers, rows)
    last = len(headers) - 1

    def line(cells: Sequence[str]) -> str:
        padded = [
            cell.rjust(width) if side == "r" else cell if column == last else cell.ljust(width)
            for column, (cell, width, side) in enumerate(zip(cells, widths, sides))
        ]
        joined = separator.join(padded)
        return joined.rstrip() if strip_trailing else joined

    return [line(headers), *(line(row) for row in rows)]


def format_table(headers: Sequence[str], rows: Sequence[Sequence[str]], **options) -> str:
    """An aligned text table, headings first, lines joined by newlines.

    Args:
        headers: one heading per column.
        rows: rows of display strings, as many cells as headings.
        **options: ``align``, ``separator``, ``strip_trailing``, as ``table_lines`` takes them.

    Example:
        >>> print(format_table(["model", "params"], [["mlp_512", "669,706"], ["cnn_single", "216,650"]], align="lr"))
        model        params
        mlp_512     669,706
        cnn_single  216,650
    """
    return "\n".join(table_lines(headers, rows, **options))


# --------------------------------------------------------------------------- names


def slugify(text: str, fallback: str = "run") -> str:
    """``text`` as a folder name: letters, digits, "-" and "_" kept, anything else a "-", no "-" at either end.

    Args:
        text: a dataset or model name.
        fallback: the name when nothing is left.

    Example:
        >>> slugify("my data/v2")
        'my-data-v2'
    """
    return "".join(c if c.isalnum() or c in "-_" else "-" for c in text).strip("-") or fallback


# --------------------------------------------------------------------------- numbers


def format_percent(fraction: float) -> str:
    """'98.77%' for 0.98765."""
    return f"{100 * float(fraction):.2f}%"


def format_seconds(seconds: float) -> str:
    """'42.0 s', '3 min 5 s' or '2 h 14 min'."""
    seconds = float(seconds)
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, rest = divmod(seconds, 60)
    return f"{int(minutes)} min {rest:.0f} s" if minutes < 60 else f"{int(minutes // 60)} h {int(minutes % 60)} min"


def format_value(value) -> str:
    """A config, summary or preprocessing value as short text."""
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, (int, np.integer)):
        return f"{int(value):,}"
    if isinstance(value, (float, np.floating)):
        return f"{float(value):.6g}"
    if isinstance(value, dict):
        return "; ".join(f"{key}: {format_value(item)}" for key, item in value.items())
    if isinstance(value, (list, tuple)):
        return "(" + ", ".join(format_value(item) if item is not None else "None" for item in value) + ")"
    return str(value)


def format_shape(shape) -> str:
    """'26 x 26 x 32' for (26, 26, 32); '?' for an unknown size."""
    if not shape:
        return "?"
    return " x ".join("?" if size is None else f"{size:,}" for size in shape)


def format_bytes(count: int) -> str:
    """'84.5 KiB' style size."""
    for unit, size in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if count >= size:
            return f"{count / size:,.1f} {unit}"
    return f"{count} B"


def format_mflops(mflops: float) -> str:
    """'4.88' for 4.8819, '0.0259' for 0.02592, '1,230' for 1230.4: at least three significant digits."""
    if mflops >= 100:
        return f"{mflops:,.0f}"
    return f"{mflops:.2f}" if mflops >= 1 else f"{mflops:.3g}"
