"""Explorer under a bounded concurrent load: several clients drawing and browsing while OIPs compute.

    .venv/bin/python benchmarks/web_load.py [--model DIR] [--clients 6] [--requests 100] [--oip-chunks 4]

The server is the real `cnnscope explore` program in its own process (so its memory is its own),
on a free port. Each client thread keeps one HTTP connection and sends, in turn, a drawing update
(POST /api/draw, a 280x280 canvas of a test digit), a test-image view, a test image's PNG and the
top images of a map; one more thread asks for OIPs of Conv2D_3 in chunks of 16 maps (computed,
not cached: the cache folder is new). Reported: requests, concurrency, p50/p95 latency per kind,
errors (exceptions or non-2xx answers) and the server's resident memory before and after; then, in
this process, a plain eager forward pass of one image and its floor (`floor.py`) for the draw.
`tests/app/test_web_load.py` runs a small version and asserts zero errors.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

CNNSCOPE = Path(sys.executable).with_name("cnnscope")
KINDS = ("draw", "test view", "test png", "top images")


class Explorer:
    """`cnnscope explore` started on a free port in a subprocess: `with Explorer(model) as server:`."""

    def __init__(self, model: str | None, cache: str, threads: int = 1):
        argv = [str(CNNSCOPE), "explore", "--port", "0", "--cache", cache, "--threads", str(threads)]
        self.argv = argv + (["--model", model] if model else [])

    def __enter__(self) -> Explorer:
        self.process = subprocess.Popen(self.argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        line = self.process.stdout.readline()
        found = re.search(r"http://[^/ ]+/", line)
        if not found:
            self.process.kill()
            raise RuntimeError(f"explore did not start: {line}{self.process.stderr.read()}")
        self.url = found.group(0).rstrip("/")
        return self

    def rss_mb(self) -> float:
        import psutil

        return psutil.Process(self.process.pid).memory_info().rss / 2**20

    def __exit__(self, *exc) -> None:
        self.process.terminate()
        _, self.stderr = self.process.communicate(timeout=60)


def draw_bodies(count: int) -> list[bytes]:
    """Drawing requests: `count` test digits enlarged to a 280x280 canvas, as the page sends them."""
    from PIL import Image

    from cnnscope.data.mnist import load_mnist

    mnist = load_mnist()
    bodies = []
    for index in range(count):
        canvas = np.asarray(Image.fromarray(mnist.test_x[index]).resize((280, 280), Image.Resampling.BILINEAR))
        bodies.append(json.dumps({"width": 280, "height": 280,
                                  "pixels": base64.b64encode(canvas.tobytes()).decode()}).encode())
    return bodies


def run_load(url: str, clients: int, requests: int, oip_chunks: int, bodies: list[bytes]) -> dict:
    """`clients` threads of `requests` requests each, plus one thread of `oip_chunks` OIP requests.

    Returns:
        {"latency": {kind: [seconds]}, "errors": [text], "seconds": wall time, "oip_seconds": [...]}.
    """
    import httpx

    latency = {kind: [] for kind in (*KINDS, "oip")}
    errors: list[str] = []
    lock = threading.Lock()
    headers = {"content-type": "application/json"}

    def send(http, kind: str, method: str, path: str, **kwargs) -> None:
        started = time.perf_counter()
        try:
            answer = http.request(method, path, **kwargs)
            problem = None if answer.status_code < 300 else f"{method} {path}: {answer.status_code} {answer.text[:120]}"
        except httpx.HTTPError as exc:
            problem = f"{method} {path}: {type(exc).__name__}: {exc}"
        with lock:
            latency[kind].append(time.perf_counter() - started)
            if problem:
                errors.append(problem)

    def client(number: int) -> None:
        with httpx.Client(base_url=url, timeout=300) as http:
            for step in range(requests):
                index = (number * 997 + step * 31) % 10_000
                kind = KINDS[step % len(KINDS)]
                if kind == "draw":
                    send(http, kind, "POST", "/api/draw", content=bodies[step % len(bodies)], headers=headers)
                elif kind == "test view":
                    send(http, kind, "GET", f"/api/test/{index}")
                elif kind == "test png":
                    send(http, kind, "GET", f"/api/test/{index}/image.png")
                else:
                    send(http, kind, "GET", f"/api/top/Conv2D_2/{index % 64}")

    def oips() -> None:
        with httpx.Client(base_url=url, timeout=600) as http:
            for chunk in range(oip_chunks):
                maps = list(range(16 * chunk, 16 * chunk + 16))
                send(http, "oip", "POST", "/api/oip/Conv2D_3", json={"maps": maps})

    threads = [threading.Thread(target=client, args=(k,)) for k in range(clients)]
    threads.append(threading.Thread(target=oips))
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return {"latency": latency, "errors": errors, "seconds": time.perf_counter() - started}


def report(figures: dict, clients: int, rss: tuple[float, float]) -> str:
    latency = figures["latency"]
    total = sum(len(values) for values in latency.values())
    lines = [f"{total} requests from {clients} clients + 1 OIP client in {figures['seconds']:.1f} s, "
             f"errors {len(figures['errors'])}; server RSS {rss[0]:.0f} MB before, {rss[1]:.0f} MB after"]
    for kind, values in latency.items():
        if values:
            ms = np.array(values) * 1000
            lines.append(f"  {kind:<11} n={len(ms):4d}  p50 {np.percentile(ms, 50):8.1f} ms  "
                         f"p95 {np.percentile(ms, 95):8.1f} ms  max {ms.max():8.1f} ms")
    everything = np.array([v for kind in KINDS for v in latency[kind]]) * 1000
    lines.append(f"  all but OIPs: p50 {np.percentile(everything, 50):.1f} ms, p95 {np.percentile(everything, 95):.1f} ms")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None, help="checkpoint folder (default: the default model)")
    parser.add_argument("--clients", type=int, default=6, help="concurrent drawing/browsing clients (default 6)")
    parser.add_argument("--requests", type=int, default=100, help="requests per client (default 100)")
    parser.add_argument("--oip-chunks", type=int, default=4, help="OIP requests of 16 Conv2D_3 maps (default 4)")
    args = parser.parse_args()
    bodies = draw_bodies(20)
    with tempfile.TemporaryDirectory(prefix="web_load_") as cache, Explorer(args.model, cache) as server:
        import httpx

        httpx.get(f"{server.url}/api/confusion", timeout=300)  # the test-set pass, as after the page's first look
        before = server.rss_mb()
        figures = run_load(server.url, args.clients, args.requests, args.oip_chunks, bodies)
        after = server.rss_mb()
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs; model {args.model or 'default'}")
    print(report(figures, args.clients, (before, after)))
    for problem in figures["errors"][:10]:
        print("  error:", problem)
    draw = statistics.median(figures["latency"]["draw"])
    forward, floor = plain_forward(args.model)
    print(f"median draw {draw * 1000:.1f} ms under load = {draw / forward:.0f}x a plain eager forward pass of one "
          f"image ({forward * 1000:.2f} ms, this process, 1 thread; the draw answers every layer's maps as PNGs)")
    print(f"{floor.header()} (forward only, batch 1); the draw: {floor.describe(1, draw)}")


def plain_forward(model_dir: str | None):
    """Median seconds of `model(x)` for one test image (no grad, 1 thread) and the forward's floor."""
    import torch
    from floor import Floor

    from cnnscope.data.mnist import load_mnist, to_tensor
    from cnnscope.nn.checkpoint import load_model

    torch.set_num_threads(1)
    model, _ = load_model(model_dir)
    x, times = to_tensor(load_mnist().test_x[:1]), []
    with torch.no_grad():
        for _ in range(220):
            started = time.perf_counter()
            model(x)
            times.append(time.perf_counter() - started)
    return statistics.median(times[20:]), Floor.measure(model, None, batch=1, threads=1, backward="none")


if __name__ == "__main__":
    main()
