"""The explorer's FastAPI app: one named function per route, registered by `create_app`.

Handlers are thin shells over the app's `Explorer` (`request.app.state.explorer`); work that
takes more than a moment (a drawing update, OIPs) runs in a worker thread, so the server keeps
answering. Every error is JSON {"error": message} with a 4xx status.
"""

from __future__ import annotations

import contextlib
import threading
import time
from importlib import resources
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from cnnscope.app.explorer.decoding import (
    MAX_CANVAS_SIDE,
    MAX_OIP_MAPS,
    MAX_OIP_STARTS,
    RequestError,
    decode_maps,
    decode_starts,
    read_body,
)
from cnnscope.app.explorer.explorer import Explorer
from cnnscope.app.explorer.oips import OipSettings
from cnnscope.app.explorer.server import HostCheck
from cnnscope.data.mnist import Mnist
from cnnscope.errors import UserError
from cnnscope.nn.model import CNN

STATIC = resources.files("cnnscope") / "app" / "web_static"
PICTURE_HEADERS = {"Cache-Control": "max-age=86400"}


def create_app(model: CNN, config: dict, mnist: Mnist, cache_dir: str | Path, *,
               oip_settings: OipSettings | None = None, precompute: bool = False,
               allowed_hosts: list[str] | tuple[str, ...] | None = None) -> FastAPI:
    """The explorer's FastAPI app.

    Args:
        model, config, mnist, cache_dir, oip_settings: as for `Explorer`.
        precompute: start the test-set pass in the background when the server starts.
        allowed_hosts: if given (e.g. `hosts.LOOPBACK_HOSTS`), refuse requests whose Host
            header names anything else.

    Returns:
        The app; its `state.explorer` is the `Explorer` behind it.
    """
    app = FastAPI(title="cnnscope explorer", docs_url=None, redoc_url=None, openapi_url=None, lifespan=lifespan)
    app.state.explorer = Explorer(model, config, mnist, cache_dir, oip_settings)
    app.state.precompute = precompute
    if allowed_hosts is not None:
        app.add_middleware(HostCheck, hosts=allowed_hosts)
    for error, handler in ERROR_HANDLERS:
        app.add_exception_handler(error, handler)
    app.add_api_route("/", page, methods=["GET"], include_in_schema=False)
    app.mount("/static", StaticFolder(directory=str(STATIC)), name="static")
    for method, path, handler in ROUTES:
        picture = handler.__name__ in PICTURE_ROUTES
        app.add_api_route(path, handler, methods=[method], openapi_extra=REQUEST_BODIES.get(handler.__name__),
                          responses={**ERROR_RESPONSES, **(PNG_RESPONSE if picture else {})},
                          response_class=Response if picture else JSONResponse)
    return app


class StaticFolder(StaticFiles):
    """The page's files; a path with a NUL byte is not found (404) instead of failing in `os.stat`
    (Starlette already answers 404 for paths outside the folder, also percent-encoded ones)."""

    def lookup_path(self, path: str):
        if "\x00" in path:
            return "", None
        return super().lookup_path(path)


@contextlib.asynccontextmanager
async def lifespan(app: FastAPI):
    """Starts the test-set pass (confusion matrix, top images) while the user starts drawing."""
    if app.state.precompute:
        threading.Thread(target=app.state.explorer.test_stats, name="cnnscope-test-stats", daemon=True).start()
    yield


def explorer_of(request: Request) -> Explorer:
    return request.app.state.explorer


def json_bytes(body: bytes, seconds: float | None = None) -> Response:
    """Ready JSON bytes as a response, with the compute time as a Server-Timing header."""
    headers = {"Server-Timing": f"compute;dur={seconds * 1000:.2f}"} if seconds is not None else None
    return Response(body, media_type="application/json", headers=headers)


# ---- routes ---------------------------------------------------------------------------------
def page():
    return FileResponse(str(STATIC / "index.html"), media_type="text/html")


def info(request: Request):
    return explorer_of(request).info()


async def draw(request: Request):
    body = await read_body(request)
    started = time.perf_counter()
    payload = await run_in_threadpool(explorer_of(request).draw_response, body)
    return json_bytes(payload, time.perf_counter() - started)


def test_view(index: int, request: Request):
    return explorer_of(request).test_view(index)


def test_image(index: int, request: Request):
    return Response(explorer_of(request).test_png(index), media_type="image/png", headers=PICTURE_HEADERS)


def confusable(request: Request):
    return explorer_of(request).confusable()


def confusion(request: Request):
    return explorer_of(request).confusion()


def top(layer: str, index: int, request: Request):
    return explorer_of(request).top_images(layer, index)


async def oip(layer: str, request: Request):
    body = await read_body(request)
    maps, starts = decode_maps(body), decode_starts(body)
    return await run_in_threadpool(explorer_of(request).oip, layer, maps, starts)


def oip_image(layer: str, index: int, request: Request):
    return Response(explorer_of(request).oip_png(layer, index), media_type="image/png", headers=PICTURE_HEADERS)


def oip_trust(layer: str, index: int, request: Request):
    return explorer_of(request).oip_trust(layer, index)


def zoo(layer: str, request: Request):
    return explorer_of(request).zoo(layer)


# the JSON bodies the handlers read themselves (`read_body`), described for the OpenAPI schema
_JSON_BODY = "application/json"
REQUEST_BODIES = {
    "draw": {"requestBody": {"required": True, "content": {_JSON_BODY: {"schema": {
        "type": "object", "required": ["width", "height", "pixels"],
        "properties": {"width": {"type": "integer", "minimum": 1, "maximum": MAX_CANVAS_SIDE},
                       "height": {"type": "integer", "minimum": 1, "maximum": MAX_CANVAS_SIDE},
                       "pixels": {"type": "string", "description": "base64 of width*height gray bytes"}}}}}}},
    "oip": {"requestBody": {"required": True, "content": {_JSON_BODY: {"schema": {
        "type": "object", "required": ["maps"],
        "properties": {"maps": {"type": "array", "items": {"type": "integer"}, "minItems": 1, "maxItems": MAX_OIP_MAPS},
                       "starts": {"type": "integer", "minimum": 1, "maximum": MAX_OIP_STARTS}}}}}}},
}
_ERROR_BODY = {_JSON_BODY: {"schema": {"type": "object", "properties": {"error": {"type": "string"}}}}}
ERROR_RESPONSES = {status: {"description": text, "content": _ERROR_BODY} for status, text in (
    (400, "malformed request"), (404, "no such layer, map, image or cached OIP"), (413, "request too large"),
    (415, "body is not JSON"), (422, "malformed path or query"))}

PICTURE_ROUTES = {"test_image", "oip_image"}
PNG_RESPONSE = {200: {"description": "a PNG picture", "content": {"image/png": {"schema": {"type": "string",
                                                                                         "format": "binary"}}}}}

ROUTES = (
    ("GET", "/api/info", info),
    ("POST", "/api/draw", draw),
    ("GET", "/api/test/{index}", test_view),
    ("GET", "/api/test/{index}/image.png", test_image),
    ("GET", "/api/confusable", confusable),
    ("GET", "/api/confusion", confusion),
    ("GET", "/api/top/{layer}/{index}", top),
    ("POST", "/api/oip/{layer}", oip),
    ("GET", "/api/oip/{layer}/{index}/image.png", oip_image),
    ("GET", "/api/oip/{layer}/{index}/trust", oip_trust),
    ("GET", "/api/zoo/{layer}", zoo),
)


# ---- errors: JSON {"error": message} ----------------------------------------------------------
async def request_error(request: Request, exc: RequestError):
    return JSONResponse({"error": str(exc)}, status_code=exc.status)


async def user_error(request: Request, exc: UserError):
    return JSONResponse({"error": str(exc)}, status_code=400)


async def validation_error(request: Request, exc: RequestValidationError):
    problems = "; ".join(f"{'.'.join(str(p) for p in e.get('loc', ()))}: {e.get('msg')}" for e in exc.errors())
    return JSONResponse({"error": problems or "malformed request"}, status_code=422)


async def http_error(request: Request, exc: StarletteHTTPException):
    return JSONResponse({"error": str(exc.detail)}, status_code=exc.status_code)


ERROR_HANDLERS = (
    (RequestError, request_error),
    (UserError, user_error),
    (RequestValidationError, validation_error),
    (StarletteHTTPException, http_error),
)
