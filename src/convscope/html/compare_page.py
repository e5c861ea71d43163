"""compare.html: several runs side by side, self-contained like the report.

    from convscope.compare import compare_runs, expand_run_paths
    from convscope.html.compare_page import write_compare_html
    comparison = compare_runs(expand_run_paths(["runs/sweep-mnist/*"]))
    write_compare_html(comparison, "runs/sweep-mnist/compare.html")

One section per dataset: the leaderboard (the same cells as the terminal
table of ``convscope.compare.format_leaderboard``, both made by
``leaderboard_rows``), training curves, the confusion matrices side by side
and per-class F1 as a heat map. The functions here take the
``convscope.compare.Comparison`` and ``RunSummary`` objects that
``compare_runs`` returns; they only read their attributes, so this module
does not import convscope.compare (which sits above it).
"""

from __future__ import annotations

import math
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from convscope import __version__
from convscope.fileio import write_text
from convscope.html.render import Figure, build_time, inline_png, render_template

TEMPLATE = "compare.html.j2"


# --------------------------------------------------------------------------- the leaderboard's cells
# Here rather than in compare.py so that the page and the terminal table share them while imports point down.

COLUMNS = (
    # heading, RunSummary attribute, format
    ("run", "label", str),
    ("model", "model", str),
    ("params", "params", lambda value: f"{value:,}"),
    ("MFLOPs", "mflops", lambda value: f"{value:.3g}" if value < 100 else f"{value:,.0f}"),
    ("epochs", "epochs", str),
    ("train s", "train_seconds", lambda value: f"{value:.1f}"),
    ("best val acc", "best_val_accuracy", lambda value: f"{100 * value:.2f}%"),
    ("test acc", "test_accuracy", lambda value: f"{100 * value:.2f}%"),
    ("test loss", "test_loss", lambda value: f"{value:.4f}"),
    ("ECE", "ece", lambda value: f"{value:.4f}"),
)
NUMERIC = [True, False, False, *([True] * (len(COLUMNS) - 2))]  # per leaderboard column, rank first: right-aligned numbers


def leaderboard_rows(runs: list) -> list[list[str]]:
    """One row of display strings per run, in rank order ("–" for a number the run lacks).

    Args:
        runs: ``convscope.compare.RunSummary`` objects of one dataset, best first.

    Returns:
        Rows of strings: the rank, then one cell per ``COLUMNS`` entry.
    """
    rows = []
    for rank, run in enumerate(runs, start=1):
        cells = [str(rank)]
        for _, attribute, display in COLUMNS:
            value = getattr(run, attribute)
            missing = value is None or (isinstance(value, float) and math.isnan(value))
            cells.append("–" if missing else display(value))
        rows.append(cells)
    return rows


# --------------------------------------------------------------------------- compare.html


@dataclass
class DatasetSection:
    """One dataset's part of compare.html."""

    dataset: str
    anchor: str
    num_test: int | None
    headings: list[str]
    rows: list[list[str]]
    f1_classes: list[str]
    f1_rows: list[tuple[str, list[tuple[str, str]]]]  # run label, (value text, background colour) per class
    curves: Figure | None
    confusions: Figure | None


def f1_cells(runs: list) -> list[tuple[str, list[tuple[str, str]]]]:
    """Per-class F1 as a heat map table: each cell's text and a background from white (the table's lowest) to green (its highest).

    The scale spans this table only: on MNIST every F1 lies between 0.94 and 0.99,
    and a fixed 0-1 scale would paint them all the same green.

    Args:
        runs: ``convscope.compare.RunSummary`` objects; those without per-class F1 are left out.
    """
    scored = [run for run in runs if run.f1 is not None]
    if not scored:
        return []
    values = np.concatenate([run.f1 for run in scored])
    lowest, highest = float(values.min()), float(values.max())
    rows = []
    for run in scored:
        cells = []
        for value in run.f1:
            strength = (value - lowest) / (highest - lowest) if highest > lowest else 1.0
            # white -> #4fae6e at 80%: dark enough to rank at a glance, light enough for black text
            red, green, blue = (round(255 + (target - 255) * strength * 0.8) for target in (0x4F, 0xAE, 0x6E))
            cells.append((f"{value:.3f}", f"#{red:02x}{green:02x}{blue:02x}"))
        rows.append((run.label, cells))
    return rows


def build_sections(comparison, figures_dir: Path) -> list[DatasetSection]:
    """Draw each dataset's figures into ``figures_dir`` and gather the tables.

    Args:
        comparison: what ``convscope.compare.compare_runs`` returns.
        figures_dir: a folder for the PNGs while they are read back.

    Returns:
        One DatasetSection per dataset, in the comparison's order.
    """
    # lazy: importing convscope.compare for its terminal leaderboard does not load matplotlib
    from convscope.plots.common import save_figure  # lazy: as above
    from convscope.plots.comparison import plot_compared_confusions, plot_compared_curves  # lazy: as above

    sections = []
    for position, (dataset, runs) in enumerate(comparison.groups.items()):
        curves = confusions = None
        if any(run.history for run in runs):
            curves = inline_png(save_figure(plot_compared_curves(runs), figures_dir / f"curves_{position}.png"))
        figure = plot_compared_confusions(runs)
        if figure is not None:
            confusions = inline_png(save_figure(figure, figures_dir / f"confusions_{position}.png"))
        sizes = {run.num_test for run in runs if run.num_test}
        f1_rows = f1_cells(runs)
        sections.append(DatasetSection(
            dataset=dataset,
            anchor=f"dataset-{position + 1}",
            num_test=sizes.pop() if len(sizes) == 1 else None,
            headings=["#", *(heading for heading, _, _ in COLUMNS)],
            rows=leaderboard_rows(runs),
            f1_classes=runs[0].class_names if f1_rows else [],
            f1_rows=f1_rows,
            curves=curves,
            confusions=confusions,
        ))
    return sections


def render_compare_html(comparison, built_at: str | None = None) -> str:
    """compare.html's text: the report's style sheet and every figure inlined.

    Args:
        comparison: what ``convscope.compare.compare_runs`` returns.
        built_at: the footer's build time; default now.
    """
    with tempfile.TemporaryDirectory(prefix="convscope-compare-") as folder:
        sections = build_sections(comparison, Path(folder))
    runs = comparison.runs
    return render_template(
        TEMPLATE,
        title=f"Comparison of {len(runs)} run{'s' if len(runs) != 1 else ''}",
        sections=sections,
        numeric=NUMERIC,
        version=__version__,
        built_at=built_at or build_time(),
    )


def write_compare_html(comparison, path: str | Path = "compare.html") -> Path:
    """Write compare.html atomically and return its path.

    Args:
        comparison: what ``convscope.compare.compare_runs`` returns.
        path: the file, or a folder to write compare.html into.

    Example:
        >>> write_compare_html(compare_runs(expand_run_paths(["runs/sweep-mnist/*"])), "runs/sweep-mnist/compare.html")
        PosixPath('runs/sweep-mnist/compare.html')
    """
    path = Path(path)
    if path.is_dir():
        path = path / "compare.html"
    return write_text(path, render_compare_html(comparison))

