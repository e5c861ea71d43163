"""The report in a real browser: headless Chromium at laptop and phone width.

Needs a Chromium binary (Debian's `chromium` package; or set CONVSCOPE_CHROMIUM)
and the `playwright` Python package, which drives it over the DevTools protocol.
Screenshots go to tmp_path, and also to $CONVSCOPE_SCREENSHOT_DIR when set.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from convscope.pipeline import build_report
from convscope.html.report import SECTIONS
from conftest import CHROMIUM, NO_CHROMIUM, fit_notebook_model, save_screenshot

WIDTHS = {"laptop": 1280, "phone": 400}  # CSS pixels
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(CHROMIUM is None, reason=NO_CHROMIUM),
]


@pytest.fixture(scope="module")
def report_path(tmp_path_factory) -> Path:
    """A report of a small CNN with every kind of figure, built the notebook way."""
    # RGB, so the colour figures are drawn too
    x, y, model, history = fit_notebook_model((16, 16, 3), num_classes=4, filters=6, epochs=2)
    folder = tmp_path_factory.mktemp("report")
    class_names = ["a class with a rather long name", "b", "c", "d"]  # long names must not widen the page
    return build_report(model, (x[48:], y[48:]), history=history, class_names=class_names,
                        out=folder / "report.html", train_data=(x[:48], y[:48]))


@pytest.mark.parametrize("device", list(WIDTHS))
def test_report_renders_in_chromium(browser, report_path, tmp_path, device):
    page = browser.new_page()
    page.set_viewport_size({"width": WIDTHS[device], "height": 900})
    console_errors, requests, failed = [], [], []
    page.on("console", lambda message: console_errors.append(message.text) if message.type == "error" else None)
    page.on("pageerror", lambda error: console_errors.append(str(error)))
    page.on("request", lambda request: requests.append(request.url))
    page.on("requestfailed", lambda request: failed.append(request.url))

    page.goto(report_path.as_uri(), wait_until="load")

    assert console_errors == []
    assert failed == []
    outside = [url for url in requests if not (url.startswith("data:") or url == report_path.as_uri())]
    assert outside == []
    images = page.eval_on_selector_all("img", "images => images.map(image => [image.alt, image.complete, image.naturalWidth])")
    assert len(images) > 20
    assert [alt for alt, complete, width in images if not complete or width == 0] == []
    headings = page.eval_on_selector_all("h2", "headings => headings.map(heading => [heading.id, heading.textContent])")
    assert [tuple(heading) for heading in headings] == list(SECTIONS)
    # Responsive: the page itself never scrolls sideways; wide tables scroll inside their wrapper.
    assert page.evaluate("document.documentElement.scrollWidth") <= WIDTHS[device]
    widest_image = page.eval_on_selector_all("img", "images => Math.max(...images.map(image => image.getBoundingClientRect().right))")
    assert widest_image <= WIDTHS[device]

    save_screenshot(page, tmp_path, f"report-{device}")
    page.close()


def test_report_prints_without_cutting_figures(browser, report_path, tmp_path):
    page = browser.new_page()
    page.goto(report_path.as_uri(), wait_until="load")
    page.emulate_media(media="print")
    rules = page.evaluate("getComputedStyle(document.querySelector('figure')).breakInside")
    assert rules == "avoid"
    pdf = tmp_path / "report.pdf"
    page.pdf(path=str(pdf), format="A4")  # headless Chromium only
    assert pdf.read_bytes().startswith(b"%PDF")
    page.close()
