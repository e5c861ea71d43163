"""The live viewer in a real browser: headless Chromium draws, uploads and picks, and the page answers.

Needs Debian's chromium (or CONVSCOPE_CHROMIUM) and the playwright package, as
test_report_browser.py. Screenshots go to tmp_path, and also to
$CONVSCOPE_SCREENSHOT_DIR when set.
"""

from __future__ import annotations


import numpy as np
import pytest

from convscope.viewer import ViewSession, start
from conftest import CHROMIUM, NO_CHROMIUM, save_screenshot
from test_view import png, trained_run

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(CHROMIUM is None, reason=NO_CHROMIUM),
]


@pytest.fixture(scope="module")
def served(tmp_path_factory, small_data):
    """The viewer on a free port, serving a small CNN trained two epochs on 384 sample digits."""
    run = trained_run(tmp_path_factory.mktemp("view") / "run", small_data, epochs=2, batch_size=32)
    running = start(ViewSession.from_run(run.path), port=0)
    yield running, run
    running.stop()


def test_draw_upload_and_pick_in_chromium(browser, served, small_data, tmp_path):
    running, run = served
    page = browser.new_page()
    page.set_viewport_size({"width": 1280, "height": 900})
    console_errors, requests = [], []
    page.on("console", lambda message: console_errors.append(message.text) if message.type == "error" else None)
    page.on("pageerror", lambda error: console_errors.append(str(error)))
    page.on("request", lambda request: requests.append(request.url))
    layers = [layer.name for layer in run.load_model().layers]

    page.goto(running.url, wait_until="load")
    page.wait_for_selector(".bar-row")  # the page opens on test image 0

    # 1. Draw a stroke with the mouse on a cleared canvas.
    page.click("#clear")
    box = page.locator("#draw").bounding_box()
    with page.expect_response(lambda response: "/api/predict" in response.url and response.request.method == "POST") as drawn:
        page.mouse.move(box["x"] + box["width"] * 0.5, box["y"] + box["height"] * 0.2)
        page.mouse.down()
        for step in range(1, 11):
            page.mouse.move(box["x"] + box["width"] * 0.5, box["y"] + box["height"] * (0.2 + 0.06 * step), steps=2)
        page.mouse.up()
    assert drawn.value.ok
    page.wait_for_function(f"document.querySelectorAll('.layer').length === {len(layers)}")
    assert page.locator(".bar-row").count() == 10
    assert page.eval_on_selector_all(".layer h3", "titles => titles.map(title => title.firstChild.textContent)") == layers
    lit = page.evaluate("""() => {
        const canvas = document.getElementById('draw');
        const data = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
        let lit = 0;
        for (let i = 0; i < data.length; i += 4) if (data[i] > 0) lit++;
        return [lit, canvas.width, canvas.height];
    }""")
    assert lit[1:] == [28, 28] and 20 < lit[0] < 28 * 28 / 2  # a vertical stroke, not a filled canvas
    assert page.locator("#gradcam").get_attribute("src").startswith("data:image/png")
    save_screenshot(page, tmp_path, "view-drawn")

    # 2. Upload a PNG (a test image at four times its size: prepared as convscope predict prepares it).
    seven = np.kron(small_data.display_images(small_data.x_test[0]), np.ones((4, 4, 1), np.uint8))
    upload = tmp_path / "upload.png"
    upload.write_bytes(png(seven))
    with page.expect_response(lambda response: "/api/predict" in response.url) as uploaded:
        page.set_input_files("#file", str(upload))
    assert uploaded.value.ok
    page.wait_for_function("document.getElementById('input-note').textContent.startsWith('upload.png')")
    save_screenshot(page, tmp_path, "view-uploaded")

    # 3. Click a confusion-matrix cell and see its images.
    page.click(".tabs button[data-tab=confusion]")
    confusion = np.array(run.read_metrics()["evaluation"]["confusion_matrix"])
    off_diagonal = confusion - np.diag(np.diag(confusion))
    true, predicted = np.unravel_index(np.argmax(off_diagonal), confusion.shape)
    page.click(f"table.confusion td[data-true='{true}'][data-predicted='{predicted}']")
    page.wait_for_function(f"document.querySelectorAll('#thumbnails .thumb').length === {min(int(confusion[true, predicted]), 48)}")
    captions = page.eval_on_selector_all("#thumbnails .thumb span", "spans => spans.map(span => span.textContent)")
    assert all(caption.endswith(f" {true}→{predicted}") for caption in captions)
    with page.expect_response(lambda response: "/api/predict" in response.url):
        page.click("#thumbnails .thumb >> nth=0")
    save_screenshot(page, tmp_path, "view-confusion-cell")

    # 4. Click a cell of the first convolution: its receptive field and worked sum.
    image = page.locator(".layer[data-layer=conv1] img")
    image.scroll_into_view_if_needed()
    scale = image.bounding_box()["width"] / image.evaluate("image => image.naturalWidth")
    with page.expect_response(lambda response: "/api/explain" in response.url) as explained:
        image.click(position={"x": 13.5 * scale, "y": 13.5 * scale})  # cell (13, 13) of channel 0: on the digit
    assert explained.value.ok
    worked = explained.value.json()["worked"]
    assert (worked["top"], worked["left"]) == (13, 13) and np.abs(np.array(worked["pixels"])).sum() > 0
    page.wait_for_selector("#cell .worked")
    assert "The network computed" in page.inner_text("#cell")
    highlighted = page.evaluate("""() => {
        const canvas = document.getElementById('highlight');
        const data = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
        let lit = 0;
        for (let i = 3; i < data.length; i += 4) if (data[i] > 0) lit++;
        return lit;
    }""")
    assert highlighted > 0
    save_screenshot(page, tmp_path, "view-explained", full_page=False)  # what the window shows: the input column stays beside the layers

    assert console_errors == []
    origin = running.url.split("?")[0]
    assert [url for url in requests if not (url.startswith(origin) or url.startswith("data:"))] == []
    page.close()


def test_phone_width_does_not_scroll_sideways(browser, served, tmp_path):
    running, _ = served
    page = browser.new_page()
    page.set_viewport_size({"width": 400, "height": 800})
    page.goto(running.url, wait_until="load")
    page.wait_for_selector(".layer")
    assert page.evaluate("document.documentElement.scrollWidth") <= 400
    save_screenshot(page, tmp_path, "view-phone")
    page.close()
