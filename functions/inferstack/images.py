"""Image validation, decoding and preprocessing (Pillow).

Order of checks, cheapest first, so hostile input is refused before any pixel is decoded:
byte limit -> format identification from the header (allow-list) -> pixel limit and minimum
side from the header -> (JPEG) draft mode to decode at reduced size -> decode -> EXIF
orientation -> mode conversion to RGB.

Decisions:
- An image smaller than ``min_side`` (default 8 px, e.g. a 1x1 pixel) is refused with
  InvalidImage (400): upscaling it to 224x224 yields a flat colour whose "prediction" means
  nothing, and a caller sending one is almost always sending the wrong bytes.
- Truncated files are refused (InvalidImage); ``ImageFile.LOAD_TRUNCATED_IMAGES`` is never
  changed because it is process-global and would silently grey-fill corrupt uploads.
- Pillow's own ``Image.MAX_IMAGE_PIXELS`` is left alone (process-global); our limit is
  checked from the header first, and Pillow's DecompressionBombError is mapped to
  ImageTooLarge for the sizes Pillow refuses by itself.
"""

from __future__ import annotations

import io
import math
import struct
import zlib
from dataclasses import dataclass, field

import numpy as np
from PIL import Image, ImageOps, JpegImagePlugin, UnidentifiedImageError

from inferstack.bundle import InputSpec
from inferstack.errors import ImageError, ImageTooLarge, InvalidImage, UnsupportedMediaType

DEFAULT_MAX_BYTES = 10 * 2**20
DEFAULT_MAX_PIXELS = 40_000_000
DEFAULT_MIN_SIDE = 8
DEFAULT_FORMATS = frozenset({"JPEG", "PNG", "WEBP", "BMP", "GIF"})

# JPEG draft mode decodes at 1/2, 1/4 or 1/8 scale inside libjpeg (IDCT scaling): less IDCT
# and colour conversion work, and a proper low-pass downscale (each output pixel comes from
# the low frequencies of its 8x8 block). The draft is asked for at least DRAFT_FACTOR times
# the size the resize step needs. Factor 1 (the default) stops at the smallest scale that
# still covers the model input; factor 2 (what Pillow's ``thumbnail`` does) keeps one more
# 2x of resolution for the final resize. Measured with both fixture MobileNetV2s on 8 real
# photos (the 4 fixtures and 4 scikit-image samples) at 800x600, 720p, 1080p and 6 Mpx,
# JPEG q85 and q95, against a full-size decode: top-1 unchanged 64/64 with both factors;
# the top-5 set unchanged 48-51/64 (factor 1) vs 57-59/64 (factor 2); mean L1 distance of
# the 1000 probabilities 0.04-0.06 vs 0.02-0.03, about what re-encoding a JPEG at q95
# instead of q90 changes (0.03). Factor 1 saves ~2.3 ms of CPU per 1080p JPEG (decode and
# resize), 4% of a ResNet-50 2-thread invoke and 2.5% of the batch worker's CPU per image.
# ``Classifier.from_bundle(draft_factor=2.0 | None)`` trades that back for fidelity.
DRAFT_FACTOR = 1.0

RESAMPLING = {
    "bilinear": Image.Resampling.BILINEAR,
    "bicubic": Image.Resampling.BICUBIC,
    "nearest": Image.Resampling.NEAREST,
    # Area averaging: Pillow's BOX filter averages every source pixel under the target one.
    "area": Image.Resampling.BOX,
}

# EXIF orientations that swap width and height (transpose/rotate by 90 or 270 degrees).
_SWAPS_AXES = frozenset({5, 6, 7, 8})
_EXIF_ORIENTATION = 0x0112

# Modes Image.reduce averages correctly (not palette indices, bilevel or CMYK).
_REDUCIBLE_MODES = frozenset({"RGB", "RGBA", "L", "LA"})

# Exceptions Pillow raises on corrupt data, depending on the plugin.
_DECODE_ERRORS = (OSError, SyntaxError, ValueError, EOFError, struct.error, zlib.error, IndexError)

__all__ = [
    "DEFAULT_FORMATS",
    "ImageError",
    "ImageLimits",
    "ImageTooLarge",
    "InvalidImage",
    "UnsupportedMediaType",
    "draft_size_for",
    "load_image",
    "preprocess",
]


@dataclass(frozen=True)
class ImageLimits:
    max_bytes: int = DEFAULT_MAX_BYTES
    max_pixels: int = DEFAULT_MAX_PIXELS
    min_side: int = DEFAULT_MIN_SIDE
    formats: frozenset[str] = field(default_factory=lambda: DEFAULT_FORMATS)


def draft_size_for(spec: InputSpec, factor: float = DRAFT_FACTOR) -> tuple[int, int]:
    """The smallest (width, height) a JPEG may be drafted to without hurting the resize.

    The crop keeps ``crop_fraction`` of each side, so the full image must be at least
    target / crop_fraction to leave the crop ``factor`` times larger than the target.
    """
    scale = factor / spec.crop_fraction
    return (math.ceil(spec.width * scale), math.ceil(spec.height * scale))


def _open(data: bytes, limits: ImageLimits) -> Image.Image:
    """Identify the image from its header only (no pixel data is decoded here)."""
    try:
        return Image.open(io.BytesIO(data), formats=sorted(limits.formats))
    except Image.DecompressionBombError as exc:
        raise ImageTooLarge(f"image too large: {exc}") from exc
    except UnidentifiedImageError:
        pass
    except (*_DECODE_ERRORS, MemoryError) as exc:
        raise InvalidImage(f"cannot read image header: {exc}") from exc
    except Exception as exc:  # untrusted bytes: see load_image
        raise InvalidImage(f"cannot read image header: {type(exc).__name__}: {exc}") from exc
    # Not an allowed format: tell "a real image of another format" (415) from "not an
    # image at all" (400) by identifying it with every plugin, header only.
    try:
        other = Image.open(io.BytesIO(data))
        fmt = other.format
        other.close()
    except Image.DecompressionBombError:
        fmt = "an unsupported format"
    except Exception as exc:  # unidentified or broken: not an image we know
        raise InvalidImage("not a recognised image (empty, corrupt or not an image)") from exc
    allowed = ", ".join(sorted(limits.formats))
    raise UnsupportedMediaType(f"image format {fmt} is not supported (allowed: {allowed})")


def _orientation(img: Image.Image) -> int:
    """The EXIF orientation (1..8); 1 when absent or unreadable."""
    try:
        value = img.getexif().get(_EXIF_ORIENTATION, 1)
    except Exception:  # broken EXIF must not fail an otherwise valid image
        return 1
    return value if isinstance(value, int) and 1 <= value <= 8 else 1


def _sixteen_bit_to_l(img: Image.Image) -> Image.Image:
    """16/32-bit grayscale to 8-bit by keeping the high byte (Pillow's convert would clip)."""
    arr = np.asarray(img)
    if arr.dtype.kind == "f":
        arr = np.clip(arr, 0, 255).astype(np.uint8)
    elif img.mode.startswith("I;16") or arr.max(initial=0) > 255:
        arr = (arr.astype(np.uint32) >> 8).clip(0, 255).astype(np.uint8)
    else:
        arr = arr.clip(0, 255).astype(np.uint8)
    return Image.fromarray(arr, "L")


def _composite_on_white(img: Image.Image) -> Image.Image:
    rgba = img.convert("RGBA")
    background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
    return Image.alpha_composite(background, rgba).convert("RGB")


def _to_rgb(img: Image.Image) -> Image.Image:
    mode = img.mode
    if mode == "RGB":
        return img
    if mode in ("RGBA", "LA", "PA", "RGBa", "La") or (mode == "P" and "transparency" in img.info):
        return _composite_on_white(img)
    if mode in ("I", "F") or mode.startswith("I;16"):
        return _sixteen_bit_to_l(img).convert("RGB")
    # L, 1, P (opaque), CMYK (Pillow handles Adobe's inverted CMYK JPEGs), YCbCr, LAB, HSV.
    return img.convert("RGB")


def _reduce(img: Image.Image, min_size: tuple[int, int]) -> Image.Image:
    """Shrink by an integer factor (box average) while staying >= ``min_size``.

    The non-JPEG counterpart of draft mode: a 12 Mpx PNG is brought near the size the resize
    needs before any further full-size copy (mode conversion, alpha compositing) is made.
    Pillow's reduce premultiplies alpha for RGBA/LA, so transparent pixels do not bleed.
    """
    factor = min(img.width // max(1, min_size[0]), img.height // max(1, min_size[1]))
    if factor < 2:
        return img
    return img.reduce(factor)


def load_image(
    data: bytes,
    limits: ImageLimits | None = None,
    *,
    draft_size: tuple[int, int] | None = None,
) -> Image.Image:
    """Validate and decode ``data`` into an upright RGB image.

    ``draft_size`` (width, height): the image may come back smaller than its file says, but
    never smaller than this: JPEGs are decoded at the smallest 1/2, 1/4, 1/8 scale that stays
    at least this large, other formats are box-reduced by an integer factor after decoding
    (see ``draft_size_for``). None: full size. Raises InvalidImage, ImageTooLarge or
    UnsupportedMediaType; never anything else for bad input.
    """
    limits = limits or ImageLimits()
    if not data:
        raise InvalidImage("empty image")
    if len(data) > limits.max_bytes:
        raise ImageTooLarge(f"image is {len(data)} bytes, over the limit of {limits.max_bytes}")
    img = _open(data, limits)
    width, height = img.size
    if width * height > limits.max_pixels:
        raise ImageTooLarge(
            f"image is {width}x{height} = {width * height} pixels, "
            f"over the limit of {limits.max_pixels}"
        )
    if min(width, height) < limits.min_side:
        raise InvalidImage(
            f"image is {width}x{height}, smaller than the minimum side of {limits.min_side} px"
        )
    # JpegImageFile also covers MPO (multi-picture JPEGs written by many cameras).
    if draft_size is not None and isinstance(img, JpegImagePlugin.JpegImageFile):
        dw, dh = draft_size
        # JPEG EXIF sits in the header (APP1), readable before decoding; the draft applies
        # to the stored pixels, so a 90-degree orientation swaps the requested sides.
        if _orientation(img) in _SWAPS_AXES:
            dw, dh = dh, dw
        img.draft("RGB", (dw, dh))
    try:
        img.load()
        # Read after load: PNG and WebP may store EXIF after the pixel data.
        if _orientation(img) != 1:
            img = ImageOps.exif_transpose(img)
        if draft_size is not None and img.mode in _REDUCIBLE_MODES:
            img = _reduce(img, draft_size)  # before the mode conversion's full-size copies
        img = _to_rgb(img)
        return img if draft_size is None else _reduce(img, draft_size)
    except Image.DecompressionBombError as exc:
        raise ImageTooLarge(f"image too large: {exc}") from exc
    except MemoryError as exc:
        raise ImageTooLarge("image too large to decode") from exc
    except _DECODE_ERRORS as exc:
        raise InvalidImage(f"cannot decode image: {exc}") from exc
    except Exception as exc:
        # Any other failure while parsing untrusted bytes (a plugin's KeyError, TypeError,
        # ...) is still the input's fault: answer 400, never crash the request with a 500.
        raise InvalidImage(f"cannot decode image: {type(exc).__name__}: {exc}") from exc


def _crop_box(width: int, height: int, fraction: float) -> tuple[int, int, int, int] | None:
    """Central region keeping ``fraction`` of each side, or None for the whole image."""
    if fraction >= 1.0:
        return None
    cw, ch = max(1, round(width * fraction)), max(1, round(height * fraction))
    left, top = (width - cw) // 2, (height - ch) // 2
    return (left, top, left + cw, top + ch)


def preprocess(img: Image.Image, input_spec: InputSpec) -> np.ndarray:
    """Crop + resize to the model's input and return HxWx3 uint8 in the model's channel order.

    The crop is a real crop (no pixel outside it leaks into the resize filter's support).
    """
    if img.mode != "RGB":
        img = _to_rgb(img)
    box = _crop_box(img.width, img.height, input_spec.crop_fraction)
    if box is not None:
        img = img.crop(box)
    size = (input_spec.width, input_spec.height)
    if img.size != size:
        img = img.resize(size, RESAMPLING[input_spec.resize])
    pixels = np.asarray(img, dtype=np.uint8)
    if input_spec.channel_order == "BGR":
        # A view, not a copy: the classifier's quantize step reads channel by channel anyway,
        # and copying 224x224x3 would cost as much as quantizing it (~0.25 ms).
        pixels = pixels[..., ::-1]
    return pixels
