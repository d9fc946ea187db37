"""Width and height from an image's own header bytes, read before anything is decoded.

A frame's headers say how big it is, but the bytes may disagree: a PNG declaring 256x256 in
`lw-width`/`lw-height` can carry an IHDR of 30000x30000, and OpenCV would allocate 2.7 GB for it
before failing. Reading the size from the image header first lets the worker refuse such a frame
while it still costs nothing. Pure functions over bytes; no decoding library involved.
"""

from __future__ import annotations

import struct

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# Start-of-frame markers carry the size; C4 (DHT), C8 (JPG extension) and CC (DAC) share the range.
_JPEG_SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}
_JPEG_STANDALONE = {0x01, *range(0xD0, 0xD8)}  # TEM and RST0-7 have no length field


def png_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) from a PNG's IHDR chunk, or None when the bytes are not a PNG."""
    if len(data) < 24 or not data.startswith(_PNG_SIGNATURE) or data[12:16] != b"IHDR":
        return None
    width, height = struct.unpack(">II", data[16:24])
    return width, height


def jpeg_size(data: bytes, scan_limit: int = 1 << 20) -> tuple[int, int] | None:
    """(width, height) from the first start-of-frame segment, or None when none is found.

    Walks the marker segments from SOI; gives up at the start of scan (the size must come
    before it), at malformed lengths, or after `scan_limit` bytes (a huge EXIF block is legal,
    an endless one is not worth reading).
    """
    if len(data) < 4 or data[:2] != b"\xff\xd8":
        return None
    pos, end = 2, min(len(data), scan_limit)
    while pos + 4 <= end:
        if data[pos] != 0xFF:
            return None
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte before a marker
            pos += 1
            continue
        if marker in _JPEG_STANDALONE:
            pos += 2
            continue
        if marker in (0xD9, 0xDA):  # end of image, start of scan: no size seen before them
            return None
        (length,) = struct.unpack(">H", data[pos + 2 : pos + 4])
        if length < 2:
            return None
        if marker in _JPEG_SOF:
            if pos + 9 > len(data):
                return None
            height, width = struct.unpack(">HH", data[pos + 5 : pos + 9])
            return width, height
        pos += 2 + length
    return None


def declared_size(data: bytes, encoding: str) -> tuple[int, int] | None:
    """The size the image bytes declare for `encoding` ("jpeg" or "png"); None if unreadable."""
    if encoding == "png":
        return png_size(data)
    if encoding == "jpeg":
        return jpeg_size(data)
    return None
