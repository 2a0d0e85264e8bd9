"""Still images: size from the header, bounded decoding, and 8-bit BGR frames.

Uploaded images are untrusted: a few kilobytes of JPEG can declare 30000x40000
pixels. The size is read from the JPEG or PNG header first and an image above
the pixel cap is refused before any pixel buffer exists. Every array that
reaches a detector is 3-channel BGR uint8: grayscale is expanded, alpha is
dropped (as OpenCV's colour decoding does), and 16-bit data keeps its high
byte, following the dtype rather than a fixed divisor.
"""

from __future__ import annotations

import logging
import struct
from pathlib import Path

import cv2
import numpy as np

from vision.errors import FrameError

logger = logging.getLogger(__name__)

DEFAULT_MAX_PIXELS = 50_000_000
# JPEG start-of-frame markers carry the size; C4 (DHT), C8 (JPG) and CC (DAC)
# share the range but are not frames.
_JPEG_SOF = {0xC0 + n for n in range(16)} - {0xC4, 0xC8, 0xCC}
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# Enough of a file to find the JPEG frame header behind EXIF and ICC blocks.
_HEADER_READ_BYTES = 1 << 20


def image_size_from_header(
    source: bytes | bytearray | memoryview | str | Path,
) -> tuple[int, int]:
    """Width and height declared by a JPEG or PNG header, without decoding.

    ``source`` is the encoded bytes or a path. Raises FrameError for other
    formats or a truncated header.
    """
    if isinstance(source, str | Path):
        with open(source, "rb") as handle:
            head = handle.read(_HEADER_READ_BYTES)
        name = str(source)
    else:
        head = bytes(source[:_HEADER_READ_BYTES])
        name = "image bytes"

    if head.startswith(_PNG_SIGNATURE):
        return _png_size(head, name)
    if head.startswith(b"\xff\xd8"):
        return _jpeg_size(head, name)
    raise FrameError(f"{name}: not a JPEG or PNG file (starts with {head[:8]!r})")


def _png_size(head: bytes, name: str) -> tuple[int, int]:
    if len(head) < 24 or head[12:16] != b"IHDR":
        raise FrameError(f"{name}: PNG without an IHDR header")
    width, height = struct.unpack(">II", head[16:24])
    return width, height


def _jpeg_size(head: bytes, name: str) -> tuple[int, int]:
    pos = 2
    while pos + 4 <= len(head):
        if head[pos] != 0xFF:
            raise FrameError(f"{name}: corrupt JPEG header at byte {pos}")
        marker = head[pos + 1]
        if marker == 0xFF:  # fill byte before a marker
            pos += 1
            continue
        if marker in (0x01, *range(0xD0, 0xD8)):  # markers without a length
            pos += 2
            continue
        (length,) = struct.unpack(">H", head[pos + 2 : pos + 4])
        if marker in _JPEG_SOF:
            if pos + 9 > len(head):
                break
            height, width = struct.unpack(">HH", head[pos + 5 : pos + 9])
            return width, height
        if marker == 0xDA:  # scan data starts without a frame header
            break
        pos += 2 + length
    raise FrameError(f"{name}: JPEG header declares no frame size")


def read_image(path: str | Path, *, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Decode an image file into a BGR uint8 array, refusing oversized ones.

    The pixel count is checked from the header before decoding. Raises
    FrameError for a missing, unreadable, oversized or undecodable file.
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise FrameError(f"{path}: cannot read image file: {exc}") from exc

    is_jpeg = data.startswith(b"\xff\xd8")
    if is_jpeg or data.startswith(_PNG_SIGNATURE):
        width, height = image_size_from_header(data)
        check_pixel_count(width, height, max_pixels, name=str(path))

    # JPEG is always 8-bit and decodes with EXIF orientation applied, as
    # ultralytics reads it; other formats keep depth and channels for to_bgr8.
    flags = cv2.IMREAD_COLOR if is_jpeg else cv2.IMREAD_UNCHANGED
    image = cv2.imdecode(np.frombuffer(data, np.uint8), flags)
    if image is None:
        raise FrameError(f"{path}: OpenCV cannot decode this image")
    if not (is_jpeg or data.startswith(_PNG_SIGNATURE)):
        check_pixel_count(image.shape[1], image.shape[0], max_pixels, name=str(path))
    return to_bgr8(image)


def check_pixel_count(width: int, height: int, max_pixels: int, *, name: str) -> None:
    """Raise FrameError when ``width x height`` is empty or over ``max_pixels``."""
    if width <= 0 or height <= 0:
        raise FrameError(f"{name}: image declares an empty size {width}x{height}")
    if width * height > max_pixels:
        raise FrameError(
            f"{name}: image of {width}x{height} = {width * height / 1e6:.1f} MP "
            f"is over the cap of {max_pixels / 1e6:.1f} MP"
        )


def to_bgr8(array: np.ndarray) -> np.ndarray:
    """Return ``array`` as a contiguous HxWx3 BGR uint8 image.

    Accepts 2-D grayscale, HxWx1, HxWx3 (BGR) and HxWx4 (BGRA, alpha dropped),
    in uint8 or uint16 (high byte kept). Raises FrameError for anything else.
    """
    if not isinstance(array, np.ndarray):
        raise FrameError(f"image: expected a numpy array, got {type(array).__name__}")
    if array.ndim not in (2, 3) or (
        array.ndim == 3 and array.shape[2] not in (1, 3, 4)
    ):
        raise FrameError(
            f"image: expected HxW, HxWx1, HxWx3 or HxWx4, got shape {array.shape}"
        )
    if array.size == 0:
        raise FrameError(f"image: empty image of shape {array.shape}")

    if array.dtype == np.uint16:
        array = (array >> 8).astype(np.uint8)
    elif array.dtype != np.uint8:
        raise FrameError(
            f"image: expected uint8 or uint16 pixels, got {array.dtype}; scale "
            "float images to 8-bit explicitly"
        )

    channels = 1 if array.ndim == 2 else array.shape[2]
    if channels == 1:
        return cv2.cvtColor(array.reshape(array.shape[:2]), cv2.COLOR_GRAY2BGR)
    if channels == 4:
        return cv2.cvtColor(array, cv2.COLOR_BGRA2BGR)
    return np.ascontiguousarray(array)
