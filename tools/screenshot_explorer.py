"""Make docs/images/explore.png: the explorer with a drawn "4" and the panel of its most active Conv2D_3 map.

    .venv/bin/python tools/screenshot_explorer.py [--model DIR] [--out docs/images/explore.png]

Needs Debian's /usr/bin/chromium (Playwright drives it). Prints what the screenshot shows, for the caption.
"""

from __future__ import annotations

import argparse
import tempfile

import cnnscope  # noqa: F401  (first: sets OMP_WAIT_POLICY before torch loads)

CHROMIUM = "/usr/bin/chromium"
# a "4" on the 280x280 canvas: the left arm, the bar, the stem
STROKES = [[(95, 50), (75, 120), (70, 165), (190, 160)], [(165, 55), (160, 150), (158, 240)]]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None, help="checkpoint folder (default: the default model)")
    parser.add_argument("--out", default="docs/images/explore.png")
    args = parser.parse_args()

    import numpy as np
    from playwright.sync_api import sync_playwright

    from cnnscope.app.explorer.hosts import LOOPBACK_HOSTS
    from cnnscope.app.explorer.server import ServerThread
    from cnnscope.app.explorer.web import create_app
    from cnnscope.data.mnist import load_mnist_for_model
    from cnnscope.nn.checkpoint import load_model

    model, config = load_model(args.model)
    mnist = load_mnist_for_model(config, None)
    app = create_app(model, config, mnist, tempfile.mkdtemp(prefix="explore_shot_"), precompute=True,
                     allowed_hosts=LOOPBACK_HOSTS)
    with ServerThread(app) as url, sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"])
        page = browser.new_page(viewport={"width": 1400, "height": 900})
        page.set_default_timeout(120_000)
        page.goto(url + "/")
        page.wait_for_selector("body[data-ready='1']")
        box = page.locator("#draw").bounding_box()
        for stroke in STROKES:
            page.mouse.move(box["x"] + stroke[0][0], box["y"] + stroke[0][1])
            page.mouse.down()
            for x, y in stroke[1:]:
                page.mouse.move(box["x"] + x, box["y"] + y, steps=15)
            page.mouse.up()
        page.wait_for_function("window.cnnscope.updates > 0 && !window.cnnscope.drawing.inFlight"
                               " && !window.cnnscope.drawing.dirty")
        view = page.evaluate("window.cnnscope.view")
        values = np.asarray(page.evaluate("window.cnnscope.layout['Conv2D_3'].values"), dtype=float)
        maps = values.reshape(128, -1).mean(axis=1)
        best = int(maps.argmax())
        page.evaluate(f"selectMap('Conv2D_3', {best})")
        page.wait_for_function(f"""() => {{ const img = document.getElementById('panel-oip');
            return img.dataset.map === 'Conv2D_3/{best}' && img.complete && img.naturalWidth > 0; }}""")
        page.wait_for_function("document.querySelectorAll('#panel-top .thumb img').length === 9")
        page.wait_for_function("document.querySelectorAll('#panel-oip-trust li').length > 0")
        page.wait_for_timeout(300)
        page.screenshot(path=args.out)
        print(f"wrote {args.out}: predicted {view.get('predicted')}, panel Conv2D_3 map {best} "
              f"(mean activation {maps[best]:.2f}); panel text: {page.locator('#panel-value').text_content()!r}; "
              f"OIP {page.locator('#panel-oip-info').text_content()!r}, trust: "
              f"{page.locator('#panel-oip-trust li').all_text_contents()}")
        browser.close()


if __name__ == "__main__":
    main()
