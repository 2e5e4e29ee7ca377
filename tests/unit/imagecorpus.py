"""Generated image corpus: hostile, broken and unusual inputs with their expected outcome.

Shared by the core tests and the handler tests. Every case is built here from code (no
binary files in the repository). ``expected_status`` is the HTTP status the real-time API
must answer with the default limits (10 MiB, 40 Mpx, min side 8 px, JPEG/PNG/WEBP/BMP/GIF):
200 for images that must classify, 400/413/415 for the rest; ``expected_error`` is the
exception class ``inferstack.images.load_image`` raises (None when it must succeed).

Usage::

    from imagecorpus import image_cases
    @pytest.mark.parametrize("case", image_cases(), ids=lambda c: c.name)
"""

from __future__ import annotations

import functools
import io
import struct
import zlib
from dataclasses import dataclass

import numpy as np
from inferstack.errors import ImageTooLarge, InvalidImage, UnsupportedMediaType
from PIL import Image

EXIF_ORIENTATION = 0x0112
DEFAULT_MAX_BYTES = 10 * 2**20


@dataclass(frozen=True)
class ImageCase:
    name: str
    data: bytes
    content_type: str
    expected_status: int
    expected_error: type[Exception] | None = None
    # For successful cases: the (width, height) load_image must return without draft mode
    # (after EXIF rotation), so tests can check the decode did the right thing.
    expected_size: tuple[int, int] | None = None

    @property
    def code(self) -> str | None:
        return None if self.expected_error is None else self.expected_error.code  # type: ignore[attr-defined]

    def __repr__(self) -> str:  # keep pytest output readable: no megabytes of bytes
        return f"ImageCase({self.name!r}, {len(self.data)} bytes, {self.expected_status})"


# ----------------------------------------------------------------------------- builders


def gradient_rgb(width: int, height: int, seed: int = 0) -> np.ndarray:
    """A smooth RGB picture with some noise (compresses like a photo, not like a flat fill)."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    r = 255 * x / max(width - 1, 1)
    g = 255 * y / max(height - 1, 1)
    b = 127 + 100 * np.sin((x + y) / 17.0)
    img = np.stack([r, g, b], axis=-1) + rng.normal(0, 8, (height, width, 3))
    return np.clip(img, 0, 255).astype(np.uint8)


def encode(img: Image.Image, fmt: str, **params: object) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **params)
    return buf.getvalue()


def jpeg_bytes(
    width: int, height: int, *, quality: int = 90, seed: int = 0, **params: object
) -> bytes:
    """A photo-like JPEG, e.g. ``jpeg_bytes(1920, 1080)`` for a 1080p benchmark input."""
    return encode(
        Image.fromarray(gradient_rgb(width, height, seed)), "JPEG", quality=quality, **params
    )


def _png_chunk(kind: bytes, payload: bytes) -> bytes:
    return (
        struct.pack(">I", len(payload))
        + kind
        + payload
        + struct.pack(">I", zlib.crc32(kind + payload) & 0xFFFFFFFF)
    )


def raw_png(width: int, height: int, bit_depth: int, color_type: int, rows: bytes | None) -> bytes:
    """A PNG written by hand (Pillow cannot write 16-bit RGB or stream a huge image).

    ``rows``: the filtered scanlines (each starting with its filter byte); None writes all
    zero rows, streamed through zlib so even 30000x30000 costs a few hundred KB and < 1 s.
    """
    header = struct.pack(">IIBBBBB", width, height, bit_depth, color_type, 0, 0, 0)
    if rows is None:
        channels = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}[color_type]
        row = b"\x00" * (1 + (width * channels * bit_depth + 7) // 8)
        comp = zlib.compressobj(9)
        block = row * 256
        parts = [comp.compress(block) for _ in range(height // 256)]
        parts.append(comp.compress(row * (height % 256)))
        parts.append(comp.flush())
        idat = b"".join(parts)
    else:
        idat = zlib.compress(rows, 9)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", header)
        + _png_chunk(b"IDAT", idat)
        + _png_chunk(b"IEND", b"")
    )


def png16_rgb(width: int, height: int) -> bytes:
    """16-bit-per-channel RGB PNG with a gradient (high byte = visible value)."""
    pixels = gradient_rgb(width, height).astype(np.uint16) * 257  # 0..255 -> 0..65535
    rows = b"".join(b"\x00" + pixels[y].astype(">u2").tobytes() for y in range(height))
    return raw_png(width, height, 16, 2, rows)


def png16_gray(width: int, height: int) -> bytes:
    values = (gradient_rgb(width, height)[..., 0].astype(np.uint16) * 257).astype(np.uint16)
    return encode(Image.fromarray(values), "PNG")


def exif_rotated_jpeg(width: int = 96, height: int = 48, orientation: int = 6) -> bytes:
    """Landscape JPEG, left half red and right half blue, tagged with an EXIF orientation.

    Orientation 6 means "rotate 90 degrees clockwise to display": upright it is portrait
    (height x width) with red on top and blue at the bottom.
    """
    arr = np.zeros((height, width, 3), dtype=np.uint8)
    arr[:, : width // 2] = (255, 0, 0)
    arr[:, width // 2 :] = (0, 0, 255)
    img = Image.fromarray(arr)
    exif = Image.Exif()
    exif[EXIF_ORIENTATION] = orientation
    return encode(img, "JPEG", quality=95, exif=exif.tobytes())


def animated_gif(width: int = 64, height: int = 48, frames: int = 3) -> bytes:
    colours = [(255, 0, 0), (0, 255, 0), (0, 0, 255)]
    images = [Image.new("RGB", (width, height), colours[i % 3]) for i in range(frames)]
    return encode(images[0], "GIF", save_all=True, append_images=images[1:], duration=100, loop=0)


def palette_png(width: int = 64, height: int = 48, *, transparent: bool = False) -> bytes:
    img = Image.fromarray(gradient_rgb(width, height)).convert("P", palette=Image.Palette.ADAPTIVE)
    if transparent:
        return encode(img, "PNG", transparency=0)
    return encode(img, "PNG")


def rgba_png(width: int = 64, height: int = 48) -> bytes:
    arr = np.dstack([gradient_rgb(width, height), np.full((height, width), 128, np.uint8)])
    arr[: height // 2, :, 3] = 0  # top half fully transparent: must come out white
    return encode(Image.fromarray(arr, "RGBA"), "PNG")


def mpo_jpeg(width: int = 64, height: int = 48) -> bytes:
    """A multi-picture JPEG (MPO), as many cameras write: Pillow reports format "MPO"."""
    first = Image.fromarray(gradient_rgb(width, height))
    second = Image.new("RGB", (width, height), (0, 0, 255))
    return encode(first, "MPO", save_all=True, append_images=[second])


def over_byte_limit(limit: int = DEFAULT_MAX_BYTES) -> bytes:
    """A valid JPEG padded past ``limit`` bytes (JPEG decoders ignore trailing data)."""
    data = jpeg_bytes(64, 48)
    return data + b"\x00" * (limit + 1 - len(data))


# ----------------------------------------------------------------------------- corpus


@functools.cache
def image_cases() -> tuple[ImageCase, ...]:
    """Every case, built once per process."""
    small = Image.fromarray(gradient_rgb(64, 48))
    jpeg = jpeg_bytes(64, 48)
    octet = "application/octet-stream"
    return (
        # ---- refused: not an image / broken (400)
        ImageCase("empty", b"", "image/jpeg", 400, InvalidImage),
        ImageCase("text", b"hello, this is not an image\n" * 4, octet, 400, InvalidImage),
        ImageCase("html", b"<!doctype html><html><body>hi</body></html>", octet, 400, InvalidImage),
        ImageCase("truncated_jpeg", jpeg[: len(jpeg) // 2], "image/jpeg", 400, InvalidImage),
        ImageCase("jpeg_header_only", jpeg[:20], "image/jpeg", 400, InvalidImage),
        ImageCase(
            "jpeg_garbage_body",
            jpeg[:200]
            + bytes(np.random.default_rng(1).integers(0, 256, 2000, np.uint8))
            + jpeg[-2:],
            "image/jpeg",
            400,
            InvalidImage,
        ),
        ImageCase("truncated_png", encode(small, "PNG")[:-40], "image/png", 400, InvalidImage),
        ImageCase(
            "one_pixel_png",
            encode(Image.new("RGB", (1, 1), "red"), "PNG"),
            "image/png",
            400,
            InvalidImage,
        ),
        ImageCase(
            "tiny_4x4_jpeg",
            encode(Image.new("RGB", (4, 4), "red"), "JPEG"),
            "image/jpeg",
            400,
            InvalidImage,
        ),
        # ---- refused: too large (413)
        ImageCase(
            "png_bomb_30000x30000",
            raw_png(30000, 30000, 1, 0, None),
            "image/png",
            413,
            ImageTooLarge,
        ),
        ImageCase(
            "png_over_pixel_limit_7000x7000",
            raw_png(7000, 7000, 1, 0, None),
            "image/png",
            413,
            ImageTooLarge,
        ),
        ImageCase("over_byte_limit", over_byte_limit(), "image/jpeg", 413, ImageTooLarge),
        # ---- refused: a real image in a format outside the allow-list (415)
        ImageCase("tiff", encode(small, "TIFF"), octet, 415, UnsupportedMediaType),
        ImageCase("ico", encode(small, "ICO"), octet, 415, UnsupportedMediaType),
        # ---- must classify (200)
        ImageCase("jpeg", jpeg, "image/jpeg", 200, None, (64, 48)),
        ImageCase(
            "progressive_jpeg",
            encode(small, "JPEG", progressive=True),
            "image/jpeg",
            200,
            None,
            (64, 48),
        ),
        ImageCase("png_rgb", encode(small, "PNG"), "image/png", 200, None, (64, 48)),
        ImageCase("webp", encode(small, "WEBP"), "image/webp", 200, None, (64, 48)),
        ImageCase("bmp", encode(small, "BMP"), "image/bmp", 200, None, (64, 48)),
        ImageCase(
            "cmyk_jpeg", encode(small.convert("CMYK"), "JPEG"), "image/jpeg", 200, None, (64, 48)
        ),
        ImageCase(
            "grayscale_jpeg", encode(small.convert("L"), "JPEG"), "image/jpeg", 200, None, (64, 48)
        ),
        ImageCase(
            "grayscale_alpha_png",
            encode(small.convert("LA"), "PNG"),
            "image/png",
            200,
            None,
            (64, 48),
        ),
        ImageCase("png_16bit_gray", png16_gray(64, 48), "image/png", 200, None, (64, 48)),
        ImageCase("png_16bit_rgb", png16_rgb(64, 48), "image/png", 200, None, (64, 48)),
        ImageCase("rgba_png", rgba_png(), "image/png", 200, None, (64, 48)),
        ImageCase("palette_png", palette_png(), "image/png", 200, None, (64, 48)),
        ImageCase(
            "palette_transparent_png",
            palette_png(transparent=True),
            "image/png",
            200,
            None,
            (64, 48),
        ),
        ImageCase(
            "bilevel_png", encode(small.convert("1"), "PNG"), "image/png", 200, None, (64, 48)
        ),
        ImageCase(
            "exif_rotated_jpeg", exif_rotated_jpeg(96, 48, 6), "image/jpeg", 200, None, (48, 96)
        ),
        ImageCase("animated_gif", animated_gif(64, 48), "image/gif", 200, None, (64, 48)),
        ImageCase(
            "smallest_allowed_8x8",
            encode(Image.new("RGB", (8, 8), "red"), "PNG"),
            "image/png",
            200,
            None,
            (8, 8),
        ),
        ImageCase("mpo_jpeg", mpo_jpeg(), "image/jpeg", 200, None, (64, 48)),
        ImageCase("jpeg_as_octet_stream", jpeg, octet, 200, None, (64, 48)),
    )


def case_by_name(name: str) -> ImageCase:
    for case in image_cases():
        if case.name == name:
            return case
    raise KeyError(name)
