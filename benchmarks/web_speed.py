"""Explorer speed: server time per drawing update, first and cached OIPs, drawing during an OIP.

    .venv/bin/python benchmarks/web_speed.py [--model DIR] [--updates 200] [--threads 1]

A drawing update is what the server does for one POST /api/draw: parse and check the body,
convert the canvas the MNIST way (`data.images.mnist_style`), one forward pass with the
outputs of every conv/pool/dense layer, and encode the JSON answer (`Explorer.draw_response`).
The canvases are a real stroke growing point by point (200 updates = 200 prefixes of it).
The baseline is a bare forward pass of one image, measured in the same run; the ratios are
the numbers to compare across machines. Timings on a shared machine are noisy: medians.
"""

from __future__ import annotations  # noqa: I001  (cnnscope before torch)

import cnnscope  # noqa: F401  (first: sets OMP_WAIT_POLICY before torch loads)
import argparse
import base64
import functools
import json
import math
import os
import statistics
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw


def stroke_canvases(count: int, size: int = 280) -> list[np.ndarray]:
    """`count` canvases of a "2" drawn point by point (each one a longer prefix of the stroke)."""
    t = np.linspace(0, 1, count + 1)
    points = []
    for s in t:  # an arc over the top, a diagonal down-left, a bar to the right
        if s < 0.45:
            a = math.pi * (1.1 - 1.3 * s / 0.45)
            points.append((140 + 70 * math.cos(a), 100 - 60 * math.sin(a)))
        elif s < 0.8:
            u = (s - 0.45) / 0.35
            points.append((190 - 120 * u, 110 + 120 * u))
        else:
            u = (s - 0.8) / 0.2
            points.append((70 + 140 * u, 230))
    canvases = []
    picture = Image.new("L", (size, size))
    pen = ImageDraw.Draw(picture)
    for k in range(1, count + 1):
        pen.line([points[k - 1], points[k]], fill=255, width=18, joint="curve")
        pen.ellipse([points[k][0] - 9, points[k][1] - 9, points[k][0] + 9, points[k][1] + 9], fill=255)
        canvases.append(np.asarray(picture).copy())
    return canvases


def body_of(canvas: np.ndarray) -> bytes:
    height, width = canvas.shape
    return json.dumps({"width": width, "height": height,
                       "pixels": base64.b64encode(canvas.tobytes()).decode()}).encode()


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(values, q))


def timed(function, *args) -> tuple[float, object]:
    started = time.perf_counter()
    result = function(*args)
    return time.perf_counter() - started, result


def describe(name: str, seconds: list[float], baseline: float | None = None) -> None:
    ms = [s * 1000 for s in seconds]
    ratio = f"  = {statistics.median(seconds) / baseline:5.1f} x bare forward" if baseline else ""
    print(f"  {name:<42} median {statistics.median(ms):7.2f} ms   p95 {percentile(ms, 95):7.2f} ms"
          f"   (n={len(ms)}){ratio}")


def http_round_trips(model, config, mnist, cache, bodies, picks):
    """Round-trip times of drawing updates and cached OIPs through a real server."""
    import httpx

    from cnnscope.app.explorer.server import ServerThread
    from cnnscope.app.explorer.web import create_app

    app = create_app(model, config, mnist, cache)
    draw, oip, png = [], [], []
    headers = {"content-type": "application/json"}
    with ServerThread(app) as url, httpx.Client(base_url=url, timeout=60) as http:
        def post_draw(body: bytes):
            return http.post("/api/draw", content=body, headers=headers)

        for body in bodies[:20]:
            http.post("/api/draw", content=body, headers=headers)
        for body in bodies:
            seconds, response = timed(post_draw, body)
            assert response.status_code == 200
            draw.append(seconds)
        for layer, index in picks:
            for _ in range(10):
                seconds, response = timed(functools.partial(http.post, f"/api/oip/{layer}", json={"maps": [index]}))
                oip.append(seconds)
                url = response.json()["oips"][0]["url"]
                png.append(timed(http.get, url)[0])
    return draw, oip, png


PICKS = [("Conv2D_1", 3), ("Max_Pool_1", 7), ("Conv2D_2", 11), ("Max_Pool_2", 20), ("Conv2D_3", 40),
         ("Conv2D_3", 77), ("Dense_1", 5), ("Dense_2", 2), ("Dense_2", 8)]  # maps whose OIPs are timed


def drawing_updates(explorer, model, x, bodies, canvases) -> float:
    """Times drawing updates against a bare forward pass; returns the baseline (median seconds)."""
    from cnnscope.app.explorer.decoding import decode_canvas
    from cnnscope.data.images import mnist_style

    forward, convert, full, sizes = [], [], [], []
    for body, canvas in zip(bodies, canvases, strict=True):
        with torch.no_grad():
            forward.append(timed(model, x)[0])
        convert.append(timed(mnist_style, canvas)[0])
        seconds, answer = timed(explorer.draw_response, body)
        full.append(seconds)
        sizes.append(len(answer))
    baseline = statistics.median(forward)
    print(f"\nDrawing updates ({len(bodies)}, a stroke growing point by point; answer {statistics.median(sizes) / 1024:.0f} KB JSON):")
    describe("bare forward pass, 1 image (baseline)", forward)
    describe("mnist_style conversion of a 280x280 canvas", convert, baseline)
    describe("full update: parse+convert+forward+encode", full, baseline)
    decode = [timed(decode_canvas, b)[0] for b in bodies[:50]]
    describe("  of which body parse + checks", decode, baseline)
    print(f"  target < 50 ms median: {'MET' if statistics.median(full) < 0.05 else 'MISSED'} "
          f"({0.05 / statistics.median(full):.0f}x under the limit)")
    return baseline


def first_and_cached_oips(explorer) -> None:
    """Times each picked map's first OIP (computed) and ten more (from the cache)."""
    first, cached, png = [], [], []
    print(f"\nOIPs of single maps ({explorer.oip_settings.steps} steps x {explorer.oip_settings.restarts} restarts, one batch):")
    for layer, index in PICKS:
        seconds, answer = timed(explorer.oip, layer, [index])
        record = answer["oips"][0]
        assert record["cached"] is False
        first.append(seconds)
        print(f"  first  {layer:>10}:{index:<3} {seconds * 1000:7.0f} ms  value {record['value']:9.3f}  "
              f"reacted {record['reacted']}")
        for _ in range(10):
            seconds, answer = timed(explorer.oip, layer, [index])
            assert answer["oips"][0]["cached"] is True
            cached.append(seconds)
            png.append(timed(explorer.oip_png, layer, index)[0])
    describe("first OIP of a map (compute + write PNG/JSON)", first)
    describe("OIP from the cache (record)", cached)
    describe("OIP picture from the cache (PNG bytes)", png)
    print(f"  first OIP: max {max(first):.2f} s; first/cached median ratio {statistics.median(first) / statistics.median(cached):.0f}x")
    print(f"  targets: first < 2 s {'MET' if max(first) < 2 else 'MISSED'} (max), "
          f"cached < 50 ms {'MET' if statistics.median(cached) < 0.05 else 'MISSED'} (median)")


def drawing_during_a_zoo_chunk(explorer, bodies, baseline: float) -> None:
    """Times drawing updates while a 32-map OIP batch is computed in another thread."""
    zoo_seconds = {}

    def zoo_chunk():
        zoo_seconds["t"] = timed(explorer.oip, "Conv2D_3", list(range(96, 128)))[0]

    worker = threading.Thread(target=zoo_chunk)
    worker.start()
    during = []
    k = 0
    while worker.is_alive():
        during.append(timed(explorer.draw_response, bodies[k % len(bodies)])[0])
        k += 1
    worker.join()
    print(f"\nDrawing while a 32-map Conv2D_3 zoo chunk is computed in another thread ({zoo_seconds['t']:.1f} s):")
    describe("full update during the OIP computation", during, baseline)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None, help="checkpoint folder (default: the default model)")
    parser.add_argument("--updates", type=int, default=200, help="drawing updates to time (default 200)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1, as `cnnscope explore`)")
    args = parser.parse_args()

    from cnnscope.app.explorer.explorer import Explorer
    from cnnscope.data.mnist import load_mnist, to_tensor
    from cnnscope.nn.checkpoint import load_model

    torch.set_num_threads(args.threads)
    model, config = load_model(args.model)
    mnist = load_mnist()
    cache = Path(tempfile.mkdtemp(prefix="web_speed_"))
    explorer = Explorer(model, config, mnist, cache)
    print(f"model {args.model or 'default'}, torch {torch.__version__}, {args.threads} thread(s), "
          f"OIP settings {explorer.oip_settings}")
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs (on a shared machine absolute times "
          "are noisy, ratios less so)")

    canvases = stroke_canvases(args.updates)
    bodies = [body_of(c) for c in canvases]
    x = to_tensor(mnist.test_x[:1])
    for _ in range(20):  # warm up
        with torch.no_grad():
            model(x)
        explorer.draw_response(bodies[-1])

    baseline = drawing_updates(explorer, model, x, bodies, canvases)
    from floor import Floor

    floor = Floor.measure(model, None, batch=1, threads=args.threads, backward="none")
    print(f"  {floor.header()} (forward only, batch 1)")
    print(f"  bare forward pass: {floor.describe(1, baseline)}")
    first_and_cached_oips(explorer)
    http_draw, http_oip, http_png = http_round_trips(model, config, mnist, cache, bodies, PICKS)
    print("\nThrough HTTP (uvicorn on 127.0.0.1, httpx keep-alive client; includes the client's own time):")
    describe("POST /api/draw round trip", http_draw, baseline)
    describe("POST /api/oip (cached) round trip", http_oip)
    describe("GET OIP PNG (cached) round trip", http_png)
    drawing_during_a_zoo_chunk(explorer, bodies, baseline)


if __name__ == "__main__":
    main()
