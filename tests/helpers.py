"""Small helpers shared by several test modules (import as `from helpers import ...`)."""

from __future__ import annotations

import io
import struct
import zlib

from PIL import Image


def png_with_size(width: int, height: int) -> bytes:
    """A PNG whose header claims width x height (the pixel data is a 1 x 1 image)."""
    buffer = io.BytesIO()
    Image.new("L", (1, 1)).save(buffer, "PNG")
    data = bytearray(buffer.getvalue())
    data[16:20], data[20:24] = struct.pack(">I", width), struct.pack(">I", height)
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])))
    return bytes(data)
