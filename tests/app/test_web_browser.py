"""End-to-end: the explorer page in headless Chromium (Debian's chromium, driven by Playwright)."""

from __future__ import annotations

import json
import os

import pytest
import torch

pytestmark = [pytest.mark.browser, pytest.mark.slow]

CHROMIUM = "/usr/bin/chromium"
if not os.path.exists(CHROMIUM):
    pytest.skip(f"{CHROMIUM} is missing (CI installs it: apt-get install chromium)", allow_module_level=True)

pytest.importorskip("uvicorn")
sync_api = pytest.importorskip("playwright.sync_api")

from cnnscope.app.cli import main  # noqa: E402
from cnnscope.app.explorer.hosts import LOOPBACK_HOSTS  # noqa: E402
from cnnscope.app.explorer.oips import OipSettings  # noqa: E402
from cnnscope.app.explorer.server import ServerThread  # noqa: E402
from cnnscope.app.explorer.web import create_app  # noqa: E402
from cnnscope.nn.checkpoint import load_checkpoint  # noqa: E402

CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run", "--disable-quic"]
TIMEOUT_MS = 60_000  # generous: the machine is shared


@pytest.fixture(scope="module")
def server(small_model_dir, mnist, tmp_path_factory):
    """The explorer on a free loopback port (uvicorn in a thread), as `cnnscope explore` runs it."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    model, config = load_checkpoint(small_model_dir)
    app = create_app(model, config, mnist, tmp_path_factory.mktemp("browser_cache"),
                     oip_settings=OipSettings(steps=60, restarts=2), precompute=True, allowed_hosts=LOOPBACK_HOSTS)
    with ServerThread(app) as url:
        yield {"url": url + "/", "model": model}
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def browser():
    with sync_api.sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture()
def page(browser, server):
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto(server["url"])
    page.wait_for_selector("body[data-ready='1']")
    yield page
    context.close()
    assert not errors, errors


def draw(page, points, steps: int = 12) -> None:
    """A mouse stroke through `points` (canvas pixel coordinates)."""
    box = page.locator("#draw").bounding_box()
    x0, y0 = box["x"], box["y"]
    page.mouse.move(x0 + points[0][0], y0 + points[0][1])
    page.mouse.down()
    for x, y in points[1:]:
        page.mouse.move(x0 + x, y0 + y, steps=steps)
    page.mouse.up()


def wait_for_updates(page, more_than: int) -> int:
    page.wait_for_function(f"window.cnnscope.updates > {more_than} && !window.cnnscope.drawing.inFlight"
                           " && !window.cnnscope.drawing.dirty")
    return page.evaluate("window.cnnscope.updates")


def layer_pictures(page) -> dict[str, str]:
    return page.evaluate("""() => Object.fromEntries([...document.querySelectorAll('canvas[data-layer]')]
        .map(c => [c.dataset.layer, c.toDataURL()]))""")


def test_drawing_a_stroke_shows_probabilities_and_changes_the_grids(page):
    blank = layer_pictures(page)
    draw(page, [(90, 60), (190, 60), (120, 240)])  # a "7"
    first = wait_for_updates(page, 0)
    probabilities = [float(p) for p in page.eval_on_selector_all("#probs .prob-row", "rows => rows.map(r => r.dataset.p)")]
    assert len(probabilities) == 10 and abs(sum(probabilities) - 1.0) < 1e-4
    shown = page.eval_on_selector_all("#probs .pct", "cells => cells.map(c => parseFloat(c.textContent))")
    assert abs(sum(shown) - 100.0) <= 0.6  # ten numbers rounded to 0.1%
    predicted = int(page.locator("#predicted").get_attribute("data-predicted"))
    assert predicted == max(range(10), key=lambda k: probabilities[k])
    assert page.locator("#source").text_content().startswith("Your drawing: predicted")
    after_first = layer_pictures(page)
    assert all(after_first[name] != blank[name] for name in blank)
    input_ink = page.evaluate("""() => { const d = document.getElementById('input').getContext('2d')
        .getImageData(0, 0, 28, 28).data; let s = 0; for (let i = 0; i < d.length; i += 4) s += d[i]; return s; }""")
    assert input_ink > 0

    draw(page, [(60, 150), (220, 150)])  # a cross bar: the drawing grows, the grids respond
    wait_for_updates(page, first)
    after_second = layer_pictures(page)
    assert all(after_second[name] != after_first[name] for name in blank)


def test_a_finger_tap_draws_too(browser, server):
    context = browser.new_context(viewport={"width": 800, "height": 900}, has_touch=True)
    try:
        page = context.new_page()
        page.set_default_timeout(TIMEOUT_MS)
        page.goto(server["url"])
        page.wait_for_selector("body[data-ready='1']")
        box = page.locator("#draw").bounding_box()
        page.touchscreen.tap(box["x"] + 140, box["y"] + 140)  # a dot: the page draws a filled circle
        wait_for_updates(page, 0)
        assert page.evaluate("window.cnnscope.view.source") == "drawing"
        assert abs(page.evaluate("window.cnnscope.view.probabilities.reduce((a, b) => a + b, 0)") - 1) < 1e-4
    finally:
        context.close()


def test_updates_never_queue_one_request_in_flight(page):
    in_flight, most = [0], [0]

    def started(request):
        if request.url.endswith("/api/draw"):
            in_flight[0] += 1
            most[0] = max(most[0], in_flight[0])

    def ended(request):
        if request.url.endswith("/api/draw"):
            in_flight[0] -= 1

    page.on("request", started)
    page.on("requestfinished", ended)
    page.on("requestfailed", ended)
    sent = [0]
    page.on("request", lambda r: sent.__setitem__(0, sent[0] + r.url.endswith("/api/draw")))
    moves = 80
    draw(page, [(140, 30), (140, 250), (60, 200), (200, 60)], steps=moves // 3)
    wait_for_updates(page, 0)
    assert most[0] == 1
    assert 1 <= sent[0] <= moves + 1  # throttled: at most one request per move, usually far fewer


def test_loading_test_image_n_shows_what_cnnscope_predict_says(page, small_model_dir, mnist, capsys):
    for index in (3, 1234):
        assert main(["predict", "--index", str(index), "--json", "--model", str(small_model_dir)]) == 0
        expected = json.loads(capsys.readouterr().out)["predicted"]
        before = page.evaluate("window.cnnscope.updates")
        page.fill("#test-index", str(index))
        page.click("#load-test")
        page.wait_for_function(f"window.cnnscope.updates > {before} && window.cnnscope.view.index === {index}")
        assert int(page.locator("#predicted").get_attribute("data-predicted")) == expected
        assert page.locator("#source").text_content().startswith(
            f"Test image #{index}: label {int(mnist.test_y[index])}, predicted {expected}")


def test_random_and_confusable_buttons_load_test_images(page):
    page.click("#random")
    page.wait_for_function("window.cnnscope.view && window.cnnscope.view.source === 'test'")
    page.click("#confusable")
    page.wait_for_function("window.cnnscope.confusableAt === 1 && window.cnnscope.view.index === window.cnnscope.confusable[0].index")
    view = page.evaluate("window.cnnscope.view")
    first = page.evaluate("window.cnnscope.confusable[0]")
    assert view["label"] == first["label"] and view["predicted"] == first["predicted"]
    assert first["wrong"] is True and first["label"] != first["predicted"]


def test_clicking_a_map_shows_its_activation_oip_and_top_images(page):
    page.fill("#test-index", "0")
    page.click("#load-test")
    page.wait_for_function("window.cnnscope.view && window.cnnscope.view.index === 0")
    canvas = page.locator("canvas[data-layer='Conv2D_2']")
    canvas.click(position={"x": 3, "y": 3})  # the first tile: map 0
    page.wait_for_selector("#panel:not([hidden])")
    assert page.locator("#panel-title").text_content() == "Conv2D_2 · map 0"
    page.wait_for_function("""() => { const img = document.getElementById('panel-oip');
        return img.dataset.map === 'Conv2D_2/0' && img.complete && img.naturalWidth > 0; }""")
    size = page.locator("#panel-oip").bounding_box()
    assert size["width"] > 0 and size["height"] > 0
    assert page.evaluate("document.getElementById('panel-oip').naturalWidth") == 112
    page.wait_for_function("document.querySelectorAll('#panel-top .thumb img').length === 9")
    page.wait_for_function("[...document.querySelectorAll('#panel-top img')].every(i => i.complete && i.naturalWidth === 28)")
    assert "mean" in page.locator("#panel-value").text_content()
    trust = page.locator("#panel-oip-trust li")  # how far the OIP can be trusted, each line explained
    page.wait_for_function("document.querySelectorAll('#panel-oip-trust li').length >= 4")
    assert "x the best test image" in trust.first.text_content() and trust.first.get_attribute("title")

    # a dense node, and a thumbnail loads its test image
    page.locator("canvas[data-layer='Dense_2']").click(position={"x": 3, "y": 3})
    page.wait_for_function("document.getElementById('panel-title').textContent === 'Dense_2 · node 0'")
    page.wait_for_function("document.getElementById('panel-oip').dataset.map === 'Dense_2/0'")
    page.wait_for_function("document.querySelectorAll('#panel-top .thumb').length === 9")
    first_top = int(page.locator("#panel-top .thumb").first.get_attribute("title").split("#")[1])
    page.locator("#panel-top .thumb").first.click()
    page.wait_for_function(f"window.cnnscope.view.index === {first_top}")


def test_the_starts_button_shows_a_maps_oips_from_4_starts_with_their_similarity(page):
    page.fill("#test-index", "0")
    page.click("#load-test")
    page.wait_for_function("window.cnnscope.view && window.cnnscope.view.index === 0")
    page.locator("canvas[data-layer='Conv2D_1']").click(position={"x": 3, "y": 3})
    page.wait_for_function("document.getElementById('panel-title').textContent === 'Conv2D_1 · map 0'")
    assert page.locator("#panel-starts-row img").count() == 0  # only when asked
    page.click("#panel-starts")
    page.wait_for_function("""() => { const imgs = [...document.querySelectorAll('#panel-starts-row img')];
        return imgs.length === 4 && imgs.every(i => i.complete && i.naturalWidth === 112); }""")
    assert page.locator("#panel-starts-row img.kept").count() == 1
    info = page.locator("#panel-starts-info").text_content()
    assert info.startswith("similarity")
    if "fewer" not in info:
        assert -1.0 <= float(info.split()[1]) <= 1.0


def test_zoo_and_confusion_tiles_are_clickable(page):
    page.click(".tab-button[data-tab='zoo']")
    page.select_option("#zoo-layer", "Conv2D_3")
    page.wait_for_function("document.querySelectorAll('.zoo-tile').length === 128")
    page.select_option("#zoo-layer", "Dense_2")  # 10 nodes: two requests of 8 and 2
    page.wait_for_function("document.querySelectorAll('.zoo-tile').length === 10")
    page.click("#zoo-compute")
    page.wait_for_function("document.getElementById('zoo-progress').textContent.startsWith('done')", timeout=180_000)
    page.wait_for_function("[...document.querySelectorAll('.zoo-tile img')].length === 10")
    page.wait_for_function("[...document.querySelectorAll('.zoo-tile img')].every(i => i.complete && i.naturalWidth > 0)")
    tile = page.locator(".zoo-tile[data-map='5']")  # its value over the best test image's, and the figures
    assert " · x" in tile.text_content() and "x the best test image" in tile.get_attribute("title")
    tile.click()
    page.wait_for_selector("#tab-explore.active")
    page.wait_for_function("document.getElementById('panel-title').textContent === 'Dense_2 · node 5'")
    page.wait_for_function("""() => { const img = document.getElementById('panel-oip');
        return img.dataset.map === 'Dense_2/5' && img.complete && img.naturalWidth > 0; }""")
    assert page.locator("#panel-oip-info").text_content().endswith("cached")  # computed by the zoo

    page.click(".tab-button[data-tab='confusion']")
    page.wait_for_function("document.querySelectorAll('#confusion td[data-cell]').length === 100")
    counts = page.eval_on_selector_all("#confusion td[data-cell]", "cells => cells.map(c => +c.textContent || 0)")
    assert sum(counts) == 10000
    page.click("#confusion td[data-cell='4,4']")
    page.wait_for_function("document.querySelectorAll('#cell-examples .thumb').length > 0")
    index = int(page.locator("#cell-examples .thumb").first.get_attribute("title").split("#")[1])
    page.locator("#cell-examples .thumb").first.click()
    page.wait_for_function(f"window.cnnscope.view && window.cnnscope.view.index === {index}")
    assert page.evaluate("window.cnnscope.view.label") == 4


def test_malformed_requests_from_the_page_get_4xx(page):
    answers = page.evaluate("""async () => {
        const post = (path, body, type = 'application/json') =>
            fetch(path, {method: 'POST', headers: {'Content-Type': type}, body}).then(async r => [r.status, (await r.json()).error]);
        return [
            await post('/api/draw', 'nonsense'),
            await post('/api/draw', JSON.stringify({width: 280, height: 280, pixels: 'AAAA'})),
            await post('/api/draw', JSON.stringify({width: 99999, height: 1, pixels: ''})),
            await post('/api/draw', 'x'.repeat(2100000)),
            await post('/api/draw', '{}', 'text/plain'),
            await post('/api/oip/Conv2D_1', JSON.stringify({maps: [999]})),
            await post('/api/oip/../../etc', JSON.stringify({maps: [0]})),
            await fetch('/api/test/123456').then(async r => [r.status, (await r.json()).error]),
        ];
    }""")
    statuses = [status for status, _ in answers]
    assert statuses == [400, 400, 413, 413, 415, 404, 404, 404]
    assert all(isinstance(message, str) and message for _, message in answers)
