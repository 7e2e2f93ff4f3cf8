"""PNG-compressed observations: both decoders agree with Pillow, layouts match ML-Agents."""

from __future__ import annotations

import io
import zlib

import numpy as np
import pytest
from PIL import Image

from unity_gym.exception import UnityObservationException
from unity_gym.rpc_utils import decode_png, decode_png_observation

pytestmark = pytest.mark.protocol

RNG = np.random.default_rng(7)


def _png(image: Image.Image, **options: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", **options)
    return buffer.getvalue()


def _pillow(png: bytes) -> np.ndarray:
    with Image.open(io.BytesIO(png)) as image:
        return np.asarray(image)


def _pixels(*shape: int) -> np.ndarray:
    return RNG.integers(0, 256, shape, dtype=np.uint8)


@pytest.mark.parametrize(
    "image",
    [
        Image.fromarray(_pixels(9, 13, 3), "RGB"),
        Image.fromarray(_pixels(9, 13, 4), "RGBA"),
        Image.fromarray(_pixels(9, 13), "L"),
        Image.fromarray(np.full((64, 84, 3), 37, np.uint8), "RGB"),  # compresses to almost nothing
    ],
    ids=["rgb", "rgba", "grey", "flat"],
)
@pytest.mark.parametrize("optimize", [False, True], ids=["default", "optimized"])
def test_unity_formats_decode_exactly_as_pillow(image: Image.Image, optimize: bool) -> None:
    png = _png(image, optimize=optimize)
    decoded = decode_png(png)
    expected = _pillow(png)
    assert decoded.dtype == np.uint8 and decoded.shape == expected.shape
    np.testing.assert_array_equal(decoded, expected)


@pytest.mark.parametrize(
    "image",
    [
        Image.fromarray(_pixels(6, 5, 3), "RGB").convert("P"),
        Image.fromarray(_pixels(6, 5, 2)),  # grey + alpha
        Image.fromarray(RNG.integers(0, 65535, (6, 5), dtype=np.uint16)),  # 16-bit grey
        Image.fromarray(_pixels(6, 5), "L").convert("1"),
    ],
    ids=["palette", "grey-alpha", "16-bit", "1-bit"],
)
def test_other_formats_keep_pillows_arrays(image: Image.Image) -> None:
    png = _png(image)
    decoded = decode_png(png)
    expected = _pillow(png)
    assert decoded.dtype == expected.dtype and decoded.shape == expected.shape
    np.testing.assert_array_equal(decoded, expected)


def test_unfiltered_zlib_png_as_the_players_write_it() -> None:
    pixels = _pixels(4, 3, 3)
    rows = b"".join(b"\x00" + row.tobytes() for row in pixels)  # filter type 0 per row

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return len(data).to_bytes(4, "big") + body + zlib.crc32(body).to_bytes(4, "big")

    header = (3).to_bytes(4, "big") + (4).to_bytes(4, "big") + bytes((8, 2, 0, 0, 0))
    png = (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )
    np.testing.assert_array_equal(decode_png(png), pixels)


@pytest.mark.parametrize("image", [Image.fromarray(_pixels(8, 8, 3), "RGB")], ids=["rgb"])
@pytest.mark.parametrize("damage", ["idat", "header"])
def test_corrupt_png_is_a_clear_error(image: Image.Image, damage: str) -> None:
    png = bytearray(_png(image))
    if damage == "idat":
        start = png.index(b"IDAT") + 4
        png[start : start + 20] = bytes(20)
    else:
        png[16:20] = bytes(4)  # width 0
    with pytest.raises(UnityObservationException, match="Could not decode a PNG observation"):
        decode_png_observation(bytes(png), (3, 8, 8))


def test_channel_first_float_in_unit_range() -> None:
    pixels = _pixels(5, 7, 3)
    observation = decode_png_observation(_png(Image.fromarray(pixels, "RGB")), (3, 5, 7))
    assert observation.dtype == np.float32 and observation.shape == (3, 5, 7)
    expected = np.moveaxis(pixels.astype(np.float32) / np.float32(255.0), 2, 0)
    np.testing.assert_array_equal(observation, expected)


def test_grayscale_observation_averages_rgb() -> None:
    pixels = _pixels(5, 7, 3)
    observation = decode_png_observation(_png(Image.fromarray(pixels, "RGB")), (1, 5, 7))
    scaled = pixels.astype(np.float32) / np.float32(255.0)
    np.testing.assert_allclose(observation[0], scaled.mean(axis=2), rtol=1e-6)


def test_stacked_pngs_with_channel_mapping() -> None:
    # Two RGB PNGs carry four channels: 0,0,1 | 2,3,-1 (the last one is padding).
    first, second = _pixels(4, 6, 3), _pixels(4, 6, 3)
    data = _png(Image.fromarray(first, "RGB")) + _png(Image.fromarray(second, "RGB"))
    observation = decode_png_observation(data, (4, 4, 6), [0, 0, 1, 2, 3, -1])
    scaled = np.concatenate([first, second], axis=2).astype(np.float32) / np.float32(255.0)
    np.testing.assert_allclose(observation[0], scaled[:, :, 0:2].mean(axis=2), rtol=1e-6)
    np.testing.assert_array_equal(observation[1], scaled[:, :, 2])
    np.testing.assert_array_equal(observation[2], scaled[:, :, 3])
    np.testing.assert_array_equal(observation[3], scaled[:, :, 4])


def test_wrong_shape_names_both_shapes() -> None:
    png = _png(Image.fromarray(_pixels(5, 7, 3), "RGB"))
    with pytest.raises(UnityObservationException, match=r"\(3, 5, 7\).*\(3, 7, 5\)"):
        decode_png_observation(png, (3, 7, 5))
