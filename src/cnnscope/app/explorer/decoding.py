"""Request bodies read and checked: size limits, the drawing canvas, the list of maps.

Every check raises `RequestError` with the HTTP status to answer with, before any work starts.
"""

from __future__ import annotations

import base64
import binascii
import json

import numpy as np

from cnnscope.errors import UserError

MAX_BODY_BYTES = 2_000_000  # a 1024x1024 canvas in base64 is 1.4 MB
MAX_CANVAS_SIDE = 1024
MAX_OIP_MAPS = 32  # maps per OIP request
MAX_OIP_STARTS = 8  # starts per map in an OIP request's gallery
MAX_JSON_BRACKETS = 64  # [ and { in a request body (the page sends at most two), so also its nesting


class RequestError(UserError):
    """A malformed or oversized request; `status` is the HTTP status to answer with."""

    def __init__(self, message: str, status: int = 400):
        super().__init__(message)
        self.status = status


def is_integer(value) -> bool:
    """Whether a decoded JSON value is an integer (JSON `true` decodes to a bool, which is not)."""
    return isinstance(value, int) and not isinstance(value, bool)


async def read_body(request) -> bytes:
    """A JSON request's body, refused with 413 as soon as it passes MAX_BODY_BYTES (declared or streamed).

    Args:
        request: the Starlette request.

    Returns:
        The body bytes; RequestError 413 if too large, 415 unless the content type is JSON.
    """
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


def decode_json(body: bytes):
    """The decoded JSON of a body; RequestError 400 if it is not JSON or holds more than MAX_JSON_BRACKETS brackets."""
    if body.count(b"[") + body.count(b"{") > MAX_JSON_BRACKETS:  # bounds the nesting before the decoder recurses
        raise RequestError(f"body holds more than {MAX_JSON_BRACKETS} brackets; the explorer's requests need two")
    try:
        return json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise RequestError(f"body is not valid JSON: {type(exc).__name__}: {str(exc)[:200]}") from None



def decode_canvas(body: bytes) -> np.ndarray:
    """A draw request body -> H x W uint8 gray array.

    Args:
        body: JSON {"width", "height", "pixels"}, pixels the base64 of width*height gray bytes.

    Returns:
        The canvas; RequestError (400, or 413 when too large) if the body is malformed.
    """
    if len(body) > MAX_BODY_BYTES:
        raise RequestError(f"request body is {len(body)} bytes; the limit is {MAX_BODY_BYTES}", 413)
    payload = decode_json(body)
    if not isinstance(payload, dict):
        raise RequestError('body must be a JSON object {"width", "height", "pixels"}')
    width, height = check_side("width", payload.get("width")), check_side("height", payload.get("height"))
    raw = decode_pixels(payload.get("pixels"))
    if len(raw) != width * height:
        raise RequestError(f"pixels holds {len(raw)} bytes; expected width*height = {width * height}")
    return np.frombuffer(raw, dtype=np.uint8).reshape(height, width)


def check_side(name: str, value) -> int:
    """A canvas side: an integer 1..MAX_CANVAS_SIDE (413 when larger, else 400)."""
    if not is_integer(value):
        raise RequestError(f"{name} must be an integer, got {value!r}")
    if not 1 <= value <= MAX_CANVAS_SIDE:
        status = 413 if value > MAX_CANVAS_SIDE else 400
        raise RequestError(f"{name} must be between 1 and {MAX_CANVAS_SIDE}, got {value}", status)
    return value


def decode_pixels(pixels) -> bytes:
    """The canvas bytes from their base64 text."""
    if not isinstance(pixels, str):
        raise RequestError("pixels must be a base64 string of width*height gray bytes")
    try:
        return base64.b64decode(pixels, validate=True)
    except (binascii.Error, ValueError):
        raise RequestError("pixels is not valid base64") from None


def decode_maps(body: bytes) -> list[int]:
    """An OIP request body {"maps": [integers]} -> the map indices (ranges are checked later)."""
    payload = decode_json(body)
    maps = payload.get("maps") if isinstance(payload, dict) else None
    if not isinstance(maps, list) or not all(is_integer(m) for m in maps):
        raise RequestError('body must be {"maps": [integers]}')
    return maps


def decode_starts(body: bytes) -> int:
    """An OIP request's optional "starts" (1..MAX_OIP_STARTS, default 1: the kept OIP only)."""
    payload = decode_json(body)
    starts = payload.get("starts", 1) if isinstance(payload, dict) else 1
    if not is_integer(starts) or not 1 <= starts <= MAX_OIP_STARTS:
        raise RequestError(f"starts must be an integer in 1..{MAX_OIP_STARTS}, got {json.dumps(starts)}")
    return starts
