"""The explorer's web app: draw a digit or pick a test image and watch every layer respond.

`create_app(model, config, mnist, cache_dir)` returns a FastAPI app whose endpoints are thin
shells over `Explorer`, which holds the model, the test set and the caches and does the work
with the library (`preprocess.mnist_style`, `model.activations`, the OIP engine, `render`).
The page (`web_static/`) draws activation grids itself from compact bytes, so a drawing
update carries numbers, not pictures.

Endpoints (JSON unless noted; errors are 4xx with {"error": message}):
  GET  /                               the page (and /static/* its files)
  GET  /api/info                       model, viewable layers, colour map, test-set size
  POST /api/draw                       {"width", "height", "pixels": base64 gray8} -> view
  GET  /api/test/{index}               view of test image `index`
  GET  /api/test/{index}/image.png     the test image itself (28x28 PNG)
  GET  /api/confusable                 misclassified and closest-call test images
  GET  /api/confusion                  confusion matrix, with test indices per cell
  GET  /api/top/{layer}/{map}          the 9 test images that activate the map most
  POST /api/oip/{layer}                {"maps": [...]} -> OIPs (computed in a worker thread, cached)
  GET  /api/oip/{layer}/{map}/image.png   a cached OIP picture (404 until computed)
  GET  /api/zoo/{layer}                which OIPs of the layer are cached, with their URLs

The server never opens a path sent by the browser: layers are checked against the model's
names, maps and indices against their ranges, and cache files are named by the server.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import json
import socket
import threading
import time
from dataclasses import asdict, dataclass
from importlib import resources
from pathlib import Path

import numpy as np
import torch
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from cnnscope import __version__
from cnnscope.analysis.evaluation import Evaluation
from cnnscope.data.images import mnist_style
from cnnscope.data.mnist import Mnist, to_tensor
from cnnscope.errors import UserError
from cnnscope.files import save_image, write_json
from cnnscope.nn.model import CNN

VIEW_KINDS = ("conv", "pool", "dense")  # layers the page shows
MAX_BODY_BYTES = 2_000_000  # a 1024x1024 canvas in base64 is 1.4 MB
MAX_CANVAS_SIDE = 1024
MAX_OIP_MAPS = 32  # maps per OIP request
ZOO_CHUNK = 8  # maps per zoo request: small, so a clicked map's OIP never waits long behind the zoo
TOP_COUNT = 9
CELL_EXAMPLES = 60  # test indices listed per confusion-matrix cell
CONFUSABLE_COUNT = 100
STATS_BATCH = 250
OIP_SCALE = 4  # OIP pictures are stored upscaled (nearest) 4x: 112x112
COLORMAP = "viridis"


class RequestError(UserError):
    """A malformed or oversized request; `status` is the HTTP status to answer with."""

    def __init__(self, message: str, status: int = 400):
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class OipSettings:
    """How the explorer computes a map's OIP with `oip.find_oips` (part of the cache key).

    `restarts` noise starts per map, best kept; `precursor` long-range candidates per start are
    screened for `precursor_steps` steps first (the articles' "precursor"), which wakes up maps
    that stay at zero from plain noise.
    """

    steps: int = 300
    restarts: int = 2
    precursor: int = 8
    precursor_steps: int = 20
    seed: int = 0

    def key(self) -> str:
        text = json.dumps({**asdict(self), "cnnscope": __version__}, sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:12]


@dataclass
class TestStats:
    """One batched pass over the test set: class probabilities and each map's mean activation."""

    probabilities: np.ndarray  # N x classes
    map_means: dict[str, np.ndarray]  # layer -> N x maps (dense layers: node values)
    seconds: float


def weights_hash(model: CNN) -> str:
    """SHA-256 over the model's spec and weights (names, shapes, dtypes and bytes)."""
    digest = hashlib.sha256(json.dumps(model.spec.to_dict(), sort_keys=True).encode())
    for name, tensor in sorted(model.state_dict().items()):
        array = tensor.detach().to("cpu").contiguous().numpy()
        digest.update(f"{name}:{array.dtype}:{array.shape}".encode())
        digest.update(array.tobytes())
    return digest.hexdigest()


def last_layer_probabilities(model: CNN, output: torch.Tensor) -> torch.Tensor:
    """Class probabilities from the last layer's output, in double precision for the page."""
    return model.output_probabilities(output.double())


def b64(array: np.ndarray) -> str:
    return base64.b64encode(np.ascontiguousarray(array, dtype=np.uint8).tobytes()).decode("ascii")


def rounded(values: np.ndarray, digits: int = 5) -> list[float]:
    return np.round(np.asarray(values, dtype=np.float64), digits).tolist()


def encode_layer(output: np.ndarray) -> dict:
    """One image's layer output -> compact JSON: per-map uint8 (min..max) for C x H x W, floats for units."""
    if output.ndim == 1:
        return {"shape": list(output.shape), "values": rounded(output)}
    low = output.min(axis=(1, 2))
    high = output.max(axis=(1, 2))
    span = np.where(high > low, high - low, 1.0)
    scaled = (output - low[:, None, None]) / span[:, None, None]
    data = np.rint(scaled * 255.0).astype(np.uint8)
    return {
        "shape": list(output.shape),
        "data": b64(data),
        "min": rounded(low),
        "max": rounded(high),
        "mean": rounded(output.mean(axis=(1, 2))),
    }


def decode_canvas(body: bytes) -> np.ndarray:
    """A draw request body -> H x W uint8 gray array; RequestError if it is malformed."""
    if len(body) > MAX_BODY_BYTES:
        raise RequestError(f"request body is {len(body)} bytes; the limit is {MAX_BODY_BYTES}", 413)
    try:
        payload = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise RequestError(f"body is not valid JSON: {exc}") from None
    if not isinstance(payload, dict):
        raise RequestError('body must be a JSON object {"width", "height", "pixels"}')
    width, height, pixels = payload.get("width"), payload.get("height"), payload.get("pixels")
    for name, value in (("width", width), ("height", height)):
        if not isinstance(value, int) or isinstance(value, bool):
            raise RequestError(f"{name} must be an integer, got {value!r}")
        if not 1 <= value <= MAX_CANVAS_SIDE:
            raise RequestError(f"{name} must be between 1 and {MAX_CANVAS_SIDE}, got {value}", 413 if value > MAX_CANVAS_SIDE else 400)
    if not isinstance(pixels, str):
        raise RequestError("pixels must be a base64 string of width*height gray bytes")
    try:
        raw = base64.b64decode(pixels, validate=True)
    except (binascii.Error, ValueError):
        raise RequestError("pixels is not valid base64") from None
    if len(raw) != width * height:
        raise RequestError(f"pixels holds {len(raw)} bytes; expected width*height = {width * height}")
    return np.frombuffer(raw, dtype=np.uint8).reshape(height, width)


class Explorer:
    """What the page asks for, computed with the library; thread-safe for the server's threads."""

    def __init__(self, model: CNN, config: dict, mnist: Mnist, cache_dir: str | Path,
                 oip_settings: OipSettings | None = None):
        self.model = model.eval()
        self.config = config or {}
        self.device = next(model.parameters()).device
        self.layers = [spec.name for spec in model.spec.layers if spec.kind in VIEW_KINDS]
        self.last_layer = model.layer_names[-1]
        self.test_x, self.test_y = mnist.images("test")
        self.oip_settings = oip_settings or OipSettings()
        self.weights_hash = weights_hash(model)
        self.cache_dir = Path(cache_dir) / "oip" / self.weights_hash[:16]
        self._stats: TestStats | None = None
        self._stats_lock = threading.Lock()
        self._oip_lock = threading.Lock()  # one OIP computation at a time; drawing never waits for it

    # ---- checks ----------------------------------------------------------------------
    def check_layer(self, layer: str) -> str:
        if layer not in self.layers:
            raise RequestError(f"unknown layer {layer!r}; valid layers: {', '.join(self.layers)}", 404)
        return layer

    def map_count(self, layer: str) -> int:
        return self.model.output_shape(self.check_layer(layer))[0]

    def check_map(self, layer: str, index: int) -> int:
        count = self.map_count(layer)
        if not 0 <= index < count:
            raise RequestError(f"map {index} is out of range for {layer}: 0..{count - 1}", 404)
        return index

    def check_index(self, index: int) -> int:
        if not 0 <= index < len(self.test_y):
            raise RequestError(f"test index {index} is out of range: 0..{len(self.test_y) - 1}", 404)
        return index

    # ---- views -----------------------------------------------------------------------
    def info(self) -> dict:
        import matplotlib

        lut = (matplotlib.colormaps[COLORMAP](np.linspace(0, 1, 256))[:, :3] * 255 + 0.5).astype(np.uint8)
        metrics = self.config.get("metrics", {}) if isinstance(self.config.get("metrics"), dict) else {}
        return {
            "layers": [
                {"name": name, "kind": self.model.layer_spec(name).kind, "shape": list(self.model.output_shape(name))}
                for name in self.layers
            ],
            "classes": self.model.num_classes,
            "test_count": int(len(self.test_y)),
            "colormap": {"name": COLORMAP, "lut": b64(lut)},
            "weights": self.weights_hash[:16],
            "recipe": self.config.get("recipe"),
            "metrics": {k: v for k, v in metrics.items() if isinstance(v, int | float | str)},
            "oip_settings": asdict(self.oip_settings),
            "limits": {"max_body_bytes": MAX_BODY_BYTES, "max_canvas_side": MAX_CANVAS_SIDE,
                       "max_oip_maps": MAX_OIP_MAPS},
        }

    def view(self, image: np.ndarray) -> dict:
        """A 28x28 uint8 image -> input bytes, probabilities and every viewable layer's output."""
        x = to_tensor(image[None]).to(self.device)
        wanted = self.layers if self.last_layer in self.layers else [*self.layers, self.last_layer]
        with torch.no_grad():
            outputs = self.model.activations(x, wanted)
            probabilities = last_layer_probabilities(self.model, outputs[self.last_layer][0]).cpu().numpy()
        return {
            "input": b64(image),
            "probabilities": rounded(probabilities, 6),
            "predicted": int(probabilities.argmax()),
            "layers": {name: encode_layer(outputs[name][0].float().cpu().numpy()) for name in self.layers},
        }

    def draw(self, canvas: np.ndarray) -> dict:
        """A drawn canvas (gray, any size) -> the view of its MNIST-style 28x28 image."""
        try:
            image = mnist_style(canvas)
        except UserError as exc:
            raise RequestError(str(exc), 422) from None
        return {"source": "drawing", **self.view(image)}

    def draw_response(self, body: bytes) -> bytes:
        """The whole drawing update: request bytes -> response bytes (what the benchmark times)."""
        return json.dumps(self.draw(decode_canvas(body)), separators=(",", ":")).encode()

    def test_view(self, index: int) -> dict:
        self.check_index(index)
        view = self.view(self.test_x[index])
        return {"source": "test", "index": index, "label": int(self.test_y[index]), **view}

    # ---- test-set statistics -----------------------------------------------------------
    def test_stats(self) -> TestStats:
        """Computed once, on first need (or by `precompute`), in batches."""
        with self._stats_lock:
            if self._stats is None:
                self._stats = self._compute_test_stats()
            return self._stats

    def _compute_test_stats(self) -> TestStats:
        started = time.perf_counter()
        wanted = self.layers if self.last_layer in self.layers else [*self.layers, self.last_layer]
        means: dict[str, list[np.ndarray]] = {name: [] for name in self.layers}
        probabilities = []
        with torch.no_grad():
            for start in range(0, len(self.test_x), STATS_BATCH):
                while self._oip_lock.locked():  # a clicked map's OIP goes first (the CPU is small)
                    time.sleep(0.01)
                x = to_tensor(self.test_x[start:start + STATS_BATCH]).to(self.device)
                outputs = self.model.activations(x, wanted)
                for name in self.layers:
                    out = outputs[name]
                    means[name].append((out.mean(dim=(2, 3)) if out.dim() == 4 else out).float().cpu().numpy())
                probabilities.append(last_layer_probabilities(self.model, outputs[self.last_layer]).cpu().numpy())
        probs = np.concatenate(probabilities)
        return TestStats(probs, {k: np.concatenate(v) for k, v in means.items()}, time.perf_counter() - started)

    def evaluation(self) -> Evaluation:
        """The test-set evaluation (accuracy, confusion, mistakes) from the one batched pass."""
        return Evaluation(self.test_stats().probabilities, self.test_y.astype(np.int64), "test")

    def confusion(self) -> dict:
        evaluation = self.evaluation()
        matrix = evaluation.confusion()
        predicted, labels = evaluation.predictions, evaluation.labels
        confidence = evaluation.probabilities[np.arange(len(labels)), predicted]
        cells = {}
        for true, guess in zip(*np.nonzero(matrix), strict=True):
            members = np.flatnonzero((labels == true) & (predicted == guess))
            members = members[np.argsort(-confidence[members], kind="stable")][:CELL_EXAMPLES]
            cells[f"{true},{guess}"] = members.tolist()
        return {"matrix": matrix.tolist(), "accuracy": evaluation.accuracy, "cells": cells, "cell_limit": CELL_EXAMPLES}

    def confusable(self) -> dict:
        """Misclassified test images (most confident first), then the closest correct calls."""
        evaluation = self.evaluation()
        probabilities, predicted, labels = evaluation.probabilities, evaluation.predictions, evaluation.labels
        wrong = np.array([m.index for m in evaluation.most_confident_mistakes(len(labels))], dtype=np.int64)
        ordered = np.sort(probabilities, axis=1)
        margin = ordered[:, -1] - ordered[:, -2]
        right = np.flatnonzero(predicted == labels)
        close = right[np.argsort(margin[right], kind="stable")]
        picked = np.concatenate([wrong, close])[:CONFUSABLE_COUNT]
        runner_up = np.argsort(probabilities, axis=1)[:, -2]
        return {"examples": [
            {"index": int(i), "label": int(labels[i]), "predicted": int(predicted[i]),
             "runner_up": int(runner_up[i]), "confidence": round(float(probabilities[i, predicted[i]]), 4),
             "wrong": bool(predicted[i] != labels[i])}
            for i in picked
        ], "misclassified": evaluation.errors}

    def top_images(self, layer: str, index: int) -> dict:
        self.check_map(layer, index)
        stats = self.test_stats()
        values = stats.map_means[layer][:, index]
        top = np.argsort(-values, kind="stable")[:TOP_COUNT]
        predicted = stats.probabilities.argmax(axis=1)
        return {"layer": layer, "map": index, "images": [
            {"index": int(i), "label": int(self.test_y[i]), "predicted": int(predicted[i]),
             "value": round(float(values[i]), 5), "url": f"/api/test/{int(i)}/image.png"}
            for i in top
        ]}

    def test_png(self, index: int) -> bytes:
        from io import BytesIO

        from PIL import Image

        self.check_index(index)
        buffer = BytesIO()
        Image.fromarray(self.test_x[index]).save(buffer, format="PNG")
        return buffer.getvalue()

    # ---- OIPs ------------------------------------------------------------------------
    def oip_paths(self, layer: str, index: int) -> tuple[Path, Path]:
        """Cache files of one map's OIP (named by the server from checked values only)."""
        self.check_map(layer, index)
        stem = self.cache_dir / layer / f"{index:04d}-{self.oip_settings.key()}"
        return stem.with_suffix(".png"), stem.with_suffix(".json")

    def oip_url(self, layer: str, index: int) -> str:
        return f"/api/oip/{layer}/{index}/image.png?v={self.weights_hash[:8]}{self.oip_settings.key()}"

    def cached_oip(self, layer: str, index: int) -> dict | None:
        png, sidecar = self.oip_paths(layer, index)
        if not (png.exists() and sidecar.exists()):
            return None
        try:
            record = json.loads(sidecar.read_text())
        except (OSError, json.JSONDecodeError):
            return None
        return {**record, "url": self.oip_url(layer, index), "cached": True}

    def oip(self, layer: str, maps: list[int]) -> dict:
        """OIPs of some maps of a layer: cached ones read, missing ones computed in one batch."""
        self.check_layer(layer)
        if not maps:
            raise RequestError("maps is empty; ask for at least one map")
        if len(maps) > MAX_OIP_MAPS:
            raise RequestError(f"at most {MAX_OIP_MAPS} maps per request, got {len(maps)}", 413)
        maps = list(dict.fromkeys(self.check_map(layer, m) for m in maps))
        records = {m: self.cached_oip(layer, m) for m in maps}
        missing = [m for m, r in records.items() if r is None]
        if missing:
            with self._oip_lock:  # another request may have computed them meanwhile
                records.update({m: self.cached_oip(layer, m) for m in missing})
                missing = [m for m in missing if records[m] is None]
                if missing:
                    records.update(self._compute_oips(layer, missing))
        return {"layer": layer, "oips": [records[m] for m in maps]}

    def _compute_oips(self, layer: str, maps: list[int]) -> dict[int, dict]:
        started = time.perf_counter()
        results = compute_map_oips(self.model, layer, maps, self.oip_settings)
        seconds = time.perf_counter() - started
        records = {}
        for index, result in zip(maps, results, strict=True):
            png, sidecar = self.oip_paths(layer, index)
            save_image(png, result.picture)
            record = {"layer": layer, "map": index, "value": result.value, "reacted": result.reacted,
                      "steps_used": result.steps_used, "start": result.start, "seconds": round(seconds / len(maps), 4),
                      "batch_seconds": round(seconds, 4), "batch_size": len(maps),
                      "settings": asdict(self.oip_settings), "weights": self.weights_hash,
                      "cnnscope": __version__}
            write_json(sidecar, record)
            records[index] = {**record, "url": self.oip_url(layer, index), "cached": False}
        return records

    def oip_png(self, layer: str, index: int) -> bytes:
        png, _ = self.oip_paths(layer, index)
        if not png.exists():
            raise RequestError(f"no OIP computed yet for {layer} map {index}; POST /api/oip/{layer} first", 404)
        return png.read_bytes()

    def zoo(self, layer: str) -> dict:
        count = self.map_count(layer)
        tiles = []
        for index in range(count):
            record = self.cached_oip(layer, index)
            tiles.append({"map": index, "url": record["url"] if record else None,
                          "reacted": record["reacted"] if record else None})
        return {"layer": layer, "count": count, "maps": tiles, "chunk": ZOO_CHUNK}


@dataclass
class MapOip:
    picture: np.ndarray  # H x W x 3 uint8, contrast-enhanced, colour-mapped, upscaled
    value: float  # the map's mean activation reached
    reacted: bool
    steps_used: int
    start: str  # "noise" or "precursor" (a long-range candidate won)


def compute_map_oips(model: CNN, layer: str, maps: list[int], settings: OipSettings) -> list[MapOip]:
    """OIPs of some maps of a layer with the OIP engine (`oip.find_oips`, all maps in one batch).

    Starts are seeded by the map, not its place in the batch, so a map computed alone or within
    a zoo chunk gets the same picture.
    """
    from cnnscope.figures.render import colorize, enhance_contrast, upscale
    from cnnscope.optvis.ascent import AscentSettings
    from cnnscope.optvis.oip import find_oips, map_objectives

    run = find_oips(model, map_objectives(model, layer, maps), AscentSettings(steps=settings.steps, snapshot_steps=()),
                    restarts=settings.restarts, precursor=settings.precursor,
                    precursor_steps=settings.precursor_steps, seed=settings.seed)
    out = []
    for i in range(len(maps)):
        image = run.images[i, 0].detach().cpu().numpy()
        picture = upscale(colorize(enhance_contrast(image), COLORMAP, 0.0, 1.0), OIP_SCALE)
        out.append(MapOip(picture, round(float(run.final[i]), 5), bool(run.reacted[i]), int(run.steps_used[i]),
                          run.start_kind[i]))
    return out


LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")


def host_name(header: str) -> str:
    """The host of a Host header without the port: "127.0.0.1:8000" -> "127.0.0.1", "[::1]:80" -> "::1"."""
    header = header.strip().lower()
    if header.startswith("["):
        return header[1:header.find("]")] if "]" in header else header
    return header.rsplit(":", 1)[0] if header.count(":") == 1 else header


class HostCheck:
    """ASGI middleware: answer 400 unless the Host header names one of `hosts`.

    A page on another site cannot read this server's answers (same-origin policy) unless it
    rebinds its own domain name to 127.0.0.1 ("DNS rebinding"); its requests then carry its
    own name in the Host header, and this check refuses them.
    """

    def __init__(self, app, hosts):
        self.app = app
        self.hosts = {h.lower() for h in hosts}

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http":
            header = dict(scope.get("headers") or []).get(b"host", b"").decode("latin-1")
            if host_name(header) not in self.hosts:
                response = JSONResponse({"error": f"host {header!r} is not allowed; use http://127.0.0.1"}, 400)
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)


def create_app(model: CNN, config: dict, mnist: Mnist, cache_dir: str | Path, *,
               oip_settings: OipSettings | None = None, precompute: bool = False,
               allowed_hosts: list[str] | tuple[str, ...] | None = None) -> FastAPI:
    """The explorer's FastAPI app.

    `precompute=True` starts the test-set pass in the background; `allowed_hosts` (e.g.
    `LOOPBACK_HOSTS`) refuses requests whose Host header names anything else.
    """
    explorer = Explorer(model, config, mnist, cache_dir, oip_settings)
    static = resources.files("cnnscope") / "app" / "web_static"

    @contextlib.asynccontextmanager
    async def lifespan(app):
        if precompute:  # the test-set pass (confusion matrix, top images) while the user starts drawing
            threading.Thread(target=explorer.test_stats, name="cnnscope-test-stats", daemon=True).start()
        yield

    app = FastAPI(title="cnnscope explorer", docs_url=None, redoc_url=None, openapi_url=None, lifespan=lifespan)
    app.state.explorer = explorer
    if allowed_hosts is not None:
        app.add_middleware(HostCheck, hosts=allowed_hosts)

    @app.exception_handler(RequestError)
    async def _request_error(request: Request, exc: RequestError):
        return JSONResponse({"error": str(exc)}, status_code=exc.status)

    @app.exception_handler(UserError)
    async def _user_error(request: Request, exc: UserError):
        return JSONResponse({"error": str(exc)}, status_code=400)

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request: Request, exc: RequestValidationError):
        problems = "; ".join(f"{'.'.join(str(p) for p in e.get('loc', ()))}: {e.get('msg')}" for e in exc.errors())
        return JSONResponse({"error": problems or "malformed request"}, status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException):
        return JSONResponse({"error": str(exc.detail)}, status_code=exc.status_code)

    async def read_body(request: Request) -> bytes:
        """The body, refused with 413 as soon as it passes MAX_BODY_BYTES (declared or streamed)."""
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > MAX_BODY_BYTES:
            raise RequestError(f"request body is {declared} bytes; the limit is {MAX_BODY_BYTES}", 413)
        content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if content_type != "application/json":
            raise RequestError(f"content type must be application/json, got {content_type or 'none'!r}", 415)
        chunks, size = [], 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > MAX_BODY_BYTES:
                raise RequestError(f"request body exceeds the limit of {MAX_BODY_BYTES} bytes", 413)
            chunks.append(chunk)
        return b"".join(chunks)

    def json_bytes(body: bytes, seconds: float | None = None) -> Response:
        headers = {"Server-Timing": f"compute;dur={seconds * 1000:.2f}"} if seconds is not None else None
        return Response(body, media_type="application/json", headers=headers)

    @app.get("/", include_in_schema=False)
    def index():
        return FileResponse(str(static / "index.html"), media_type="text/html")

    app.mount("/static", StaticFiles(directory=str(static)), name="static")

    @app.get("/api/info")
    def info():
        return explorer.info()

    @app.post("/api/draw")
    async def draw(request: Request):
        body = await read_body(request)
        started = time.perf_counter()
        payload = await run_in_threadpool(explorer.draw_response, body)
        return json_bytes(payload, time.perf_counter() - started)

    @app.get("/api/test/{index}")
    def test_view(index: int):
        return explorer.test_view(index)

    @app.get("/api/test/{index}/image.png")
    def test_image(index: int):
        return Response(explorer.test_png(index), media_type="image/png",
                        headers={"Cache-Control": "max-age=86400"})

    @app.get("/api/confusable")
    def confusable():
        return explorer.confusable()

    @app.get("/api/confusion")
    def confusion():
        return explorer.confusion()

    @app.get("/api/top/{layer}/{index}")
    def top(layer: str, index: int):
        return explorer.top_images(layer, index)

    @app.post("/api/oip/{layer}")
    async def oip(layer: str, request: Request):
        body = await read_body(request)
        try:
            payload = json.loads(body)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise RequestError(f"body is not valid JSON: {exc}") from None
        maps = payload.get("maps") if isinstance(payload, dict) else None
        if not isinstance(maps, list) or not all(isinstance(m, int) and not isinstance(m, bool) for m in maps):
            raise RequestError('body must be {"maps": [integers]}')
        return await run_in_threadpool(explorer.oip, layer, maps)

    @app.get("/api/oip/{layer}/{index}/image.png")
    def oip_image(layer: str, index: int):
        return Response(explorer.oip_png(layer, index), media_type="image/png",
                        headers={"Cache-Control": "max-age=86400"})

    @app.get("/api/zoo/{layer}")
    def zoo(layer: str):
        return explorer.zoo(layer)

    return app


def bind_socket(host: str = "127.0.0.1", port: int = 0) -> socket.socket:
    """A bound TCP socket for uvicorn (`server.run(sockets=[...])`); port 0 picks a free one.

    Created with IPPROTO_TCP: asyncio turns on TCP_NODELAY only for such sockets, and without
    it every small answer waits ~40 ms for the client's delayed ACK.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise UserError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    return sock


class ServerThread:
    """The app served by uvicorn in a background thread (tests, benchmarks): `with ServerThread(app) as url:`."""

    def __init__(self, app: FastAPI, host: str = "127.0.0.1", port: int = 0):
        import uvicorn

        self.sock = bind_socket(host, port)
        self.server = uvicorn.Server(uvicorn.Config(app, log_level="warning"))
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True)
        self.url = f"http://{host}:{self.sock.getsockname()[1]}"

    def __enter__(self) -> str:
        self.thread.start()
        while not self.server.started:
            if not self.thread.is_alive():
                raise RuntimeError("the explorer server did not start")
            time.sleep(0.02)
        return self.url

    def __exit__(self, *exc) -> None:
        self.server.should_exit = True
        self.thread.join(30)
        self.sock.close()
