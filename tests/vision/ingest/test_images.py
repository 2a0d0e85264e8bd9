"""Still-image decoding: header sizes, the pixel cap, and 8-bit BGR frames."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from vision.errors import FrameError
from vision.ingest import images
from vision.ingest.images import image_size_from_header, read_image, to_bgr8


def small_jpeg() -> bytes:
    gradient = np.tile(np.arange(64, dtype=np.uint8)[None, :, None] * 4, (64, 1, 3))
    ok, encoded = cv2.imencode(".jpg", gradient)
    assert ok
    return encoded.tobytes()


def patch_sof_size(jpeg: bytes, width: int, height: int) -> bytes:
    """Rewrite the frame header's size fields, leaving the data a 64x64 image."""
    data = bytearray(jpeg)
    sof = data.index(b"\xff\xc0")
    data[sof + 5 : sof + 9] = height.to_bytes(2, "big") + width.to_bytes(2, "big")
    return bytes(data)


def test_jpeg_and_png_sizes_come_from_the_header(tmp_path, shared_dir):
    cv2.imwrite(str(tmp_path / "wide.png"), np.zeros((30, 70, 3), np.uint8))

    assert image_size_from_header(small_jpeg()) == (64, 64)
    assert image_size_from_header(tmp_path / "wide.png") == (70, 30)
    assert image_size_from_header(shared_dir / "data/images/bus.jpg") == (810, 1080)


def test_decompression_bomb_is_refused_from_its_header_alone(tmp_path, monkeypatch):
    bomb = tmp_path / "bomb.jpg"
    bomb.write_bytes(patch_sof_size(small_jpeg(), 20000, 20000))

    def no_decoding(*args, **kwargs):
        raise AssertionError("the image was decoded before its size was checked")

    monkeypatch.setattr(images.cv2, "imdecode", no_decoding)

    assert bomb.stat().st_size < 10_000
    assert image_size_from_header(bomb) == (20000, 20000)
    with pytest.raises(
        FrameError, match=r"20000x20000 = 400.0 MP is over the cap of 50.0 MP"
    ):
        read_image(bomb)


def test_pixel_cap_is_a_parameter(tmp_path):
    path = tmp_path / "small.jpg"
    path.write_bytes(small_jpeg())

    assert read_image(path, max_pixels=4096).shape == (64, 64, 3)
    with pytest.raises(FrameError, match="over the cap"):
        read_image(path, max_pixels=4095)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"GIF89a....", "not a JPEG or PNG"),
        (b"\xff\xd8\xff\xda\x00\x02", "declares no frame size"),
        (b"\x89PNG\r\n\x1a\n\x00\x00", "without an IHDR"),
    ],
)
def test_unreadable_headers_raise_frame_error(content, message):
    with pytest.raises(FrameError, match=message):
        image_size_from_header(content)


def test_missing_and_undecodable_files_raise_frame_error(tmp_path):
    (tmp_path / "truncated.png").write_bytes(
        cv2.imencode(".png", np.zeros((8, 8), np.uint8))[1].tobytes()[:40]
    )

    with pytest.raises(FrameError, match="cannot read"):
        read_image(tmp_path / "absent.jpg")
    with pytest.raises(FrameError, match="cannot decode"):
        read_image(tmp_path / "truncated.png")


def test_png_with_alpha_and_16_bits_reads_as_bgr8(tmp_path):
    rgba16 = np.zeros((20, 30, 4), np.uint16)
    rgba16[..., 2] = 65535  # red
    rgba16[..., 3] = 1000  # nearly transparent
    cv2.imwrite(str(tmp_path / "deep.png"), rgba16)

    image = read_image(tmp_path / "deep.png")

    assert image.dtype == np.uint8 and image.shape == (20, 30, 3)
    assert image[0, 0].tolist() == [0, 0, 255]


@pytest.mark.parametrize(
    ("array", "pixel"),
    [
        (np.full((4, 5), 7, np.uint8), [7, 7, 7]),
        (np.full((4, 5, 1), 7, np.uint8), [7, 7, 7]),
        (np.full((4, 5, 3), (1, 2, 3), np.uint8), [1, 2, 3]),
        (np.full((4, 5, 4), (1, 2, 3, 0), np.uint8), [1, 2, 3]),
        (np.full((4, 5), 65535, np.uint16), [255, 255, 255]),
        (np.full((4, 5, 3), (256, 511, 40000), np.uint16), [1, 1, 156]),
    ],
    ids=["gray", "gray-1", "bgr", "bgra", "gray-16", "bgr-16"],
)
def test_to_bgr8_converts_by_shape_and_dtype(array, pixel):
    image = to_bgr8(array)

    assert image.shape == (4, 5, 3) and image.dtype == np.uint8
    assert image.flags.c_contiguous
    assert image[0, 0].tolist() == pixel


@pytest.mark.parametrize(
    "array",
    [
        np.zeros((0, 5, 3), np.uint8),
        np.zeros((4, 5, 2), np.uint8),
        np.zeros((4, 5, 3), np.float64),
        np.zeros((4, 5, 3), np.int32),
        np.zeros(5, np.uint8),
    ],
    ids=["empty", "2-channel", "float", "int32", "1-D"],
)
def test_to_bgr8_refuses_what_is_not_an_image(array):
    with pytest.raises(FrameError):
        to_bgr8(array)


def test_to_bgr8_refuses_non_arrays():
    with pytest.raises(FrameError, match="numpy array"):
        to_bgr8([[1, 2], [3, 4]])  # type: ignore[arg-type]
