"""The report in a real browser: headless Chromium at laptop and phone width.

Needs a Chromium binary (Debian's `chromium` package; or set CONVSCOPE_CHROMIUM)
and the `playwright` Python package, which drives it over the DevTools protocol.
Screenshots go to tmp_path, and also to $CONVSCOPE_SCREENSHOT_DIR when set.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from convscope.pipeline import build_report
from convscope.html.report import SECTIONS
from conftest import fit_notebook_model

CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
WIDTHS = {"laptop": 1280, "phone": 400}  # CSS pixels


def find_chromium() -> str | None:
    for candidate in (os.environ.get("CONVSCOPE_CHROMIUM"), "chromium", "chromium-browser", "google-chrome"):
        if candidate and (shutil.which(candidate) or Path(candidate).is_file()):
            return shutil.which(candidate) or candidate
    return None


CHROMIUM = find_chromium()
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(CHROMIUM is None, reason="no Chromium binary found (install Debian's chromium or set CONVSCOPE_CHROMIUM)"),
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


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    sync_api = pytest.importorskip("playwright.sync_api", reason="the playwright package is not installed (pip install playwright)")
    profile = tmp_path_factory.mktemp("chromium-profile")
    with sync_api.sync_playwright() as playwright:
        # A persistent context is how Playwright passes --user-data-dir; Chromium's own profile stays out of $HOME.
        context = playwright.chromium.launch_persistent_context(
            str(profile), executable_path=CHROMIUM, headless=True, args=CHROMIUM_FLAGS[1:],
        )
        yield context
        context.close()


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

    screenshot = tmp_path / f"report-{device}.png"
    page.screenshot(path=str(screenshot), full_page=True)
    assert screenshot.stat().st_size > 0
    if os.environ.get("CONVSCOPE_SCREENSHOT_DIR"):
        folder = Path(os.environ["CONVSCOPE_SCREENSHOT_DIR"])
        folder.mkdir(parents=True, exist_ok=True)
        shutil.copy(screenshot, folder / screenshot.name)
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
