"""Image validation, decoding and preprocessing against the generated corpus."""

from __future__ import annotations

import contextlib
import io

import numpy as np
import pytest
from imagecorpus import (
    ImageCase,
    case_by_name,
    encode,
    exif_rotated_jpeg,
    gradient_rgb,
    image_cases,
    jpeg_bytes,
    png16_gray,
    png16_rgb,
)
from inferstack.bundle import InputSpec, Normalization
from inferstack.errors import ImageTooLarge, InvalidImage, UnsupportedMediaType
from inferstack.images import ImageLimits, draft_size_for, load_image, preprocess
from PIL import Image, ImageFile

SPEC = InputSpec(height=224, width=224)


@pytest.mark.parametrize("case", image_cases(), ids=lambda c: c.name)
@pytest.mark.parametrize("draft", [False, True], ids=["full", "draft"])
def test_corpus_case(case: ImageCase, draft: bool) -> None:
    draft_size = draft_size_for(SPEC) if draft else None
    if case.expected_error is not None:
        with pytest.raises(case.expected_error) as info:
            load_image(case.data, ImageLimits(), draft_size=draft_size)
        assert info.value.http_status == case.expected_status
        assert info.value.message
        return
    img = load_image(case.data, ImageLimits(), draft_size=draft_size)
    assert img.mode == "RGB"
    assert img.size == case.expected_size  # corpus images are small: no draft reduction
    pixels = preprocess(img, SPEC)
    assert pixels.shape == (224, 224, 3)
    assert pixels.dtype == np.uint8


def test_corpus_covers_every_status() -> None:
    assert {c.expected_status for c in image_cases()} == {200, 400, 413, 415}


def test_pillow_global_settings_untouched() -> None:
    before = (ImageFile.LOAD_TRUNCATED_IMAGES, Image.MAX_IMAGE_PIXELS)
    for case in image_cases():
        with contextlib.suppress(InvalidImage, ImageTooLarge, UnsupportedMediaType):
            load_image(case.data, ImageLimits(), draft_size=None)
    assert before == (ImageFile.LOAD_TRUNCATED_IMAGES, Image.MAX_IMAGE_PIXELS)
    assert before[0] is False


def test_exif_orientation_is_applied() -> None:
    # Stored landscape 96x48, left red / right blue, orientation 6 (rotate 90 clockwise).
    img = load_image(exif_rotated_jpeg(96, 48, 6), ImageLimits(), draft_size=None)
    assert img.size == (48, 96)  # portrait before any resize
    arr = np.asarray(img).astype(int)
    top, bottom = arr[:40].reshape(-1, 3).mean(0), arr[-40:].reshape(-1, 3).mean(0)
    assert top[0] > 200 and top[2] < 60  # red on top
    assert bottom[2] > 200 and bottom[0] < 60  # blue at the bottom


@pytest.mark.parametrize(
    ("orientation", "size"), [(1, (96, 48)), (3, (96, 48)), (6, (48, 96)), (8, (48, 96))]
)
def test_exif_orientations(orientation: int, size: tuple[int, int]) -> None:
    img = load_image(exif_rotated_jpeg(96, 48, orientation), ImageLimits(), draft_size=None)
    assert img.size == size


def test_exif_rotation_with_draft_mode() -> None:
    """A large rotated JPEG is drafted along its stored axes and still comes out upright."""
    big = Image.fromarray(gradient_rgb(2000, 1000))
    exif = Image.Exif()
    exif[0x0112] = 6
    data = encode(big, "JPEG", exif=exif.tobytes())
    # Upright the image is 1000x2000; a landscape target needs >= 200 px of upright width,
    # which only holds if the draft request is swapped to the stored (rotated) axes
    # (unswapped, 1/8 scale would do: 250x125 stored, 125 px wide upright).
    spec = InputSpec(height=100, width=200)
    draft = draft_size_for(spec)
    assert draft == (200, 100)
    img = load_image(data, ImageLimits(), draft_size=draft)
    assert img.width < img.height  # portrait
    assert img.width >= draft[0] and img.height >= draft[1]
    assert img.size == (250, 500)  # 1/4 scale is the smallest keeping both sides


def test_rgba_is_composited_on_white() -> None:
    img = load_image(case_by_name("rgba_png").data, ImageLimits(), draft_size=None)
    arr = np.asarray(img)
    assert (arr[:20] == 255).all()  # the transparent top half is white, not black
    assert arr[-10:].mean() < 250


def test_palette_transparency_is_white() -> None:
    src = Image.new("P", (32, 32), 1)
    src.putpalette([0, 0, 0, 255, 0, 0] + [0] * 762)
    src.paste(0, (0, 0, 32, 16))  # top half uses index 0, declared transparent
    img = load_image(encode(src, "PNG", transparency=0), ImageLimits(), draft_size=None)
    arr = np.asarray(img)
    assert (arr[:16] == 255).all()
    assert (arr[16:] == (255, 0, 0)).all()


@pytest.mark.parametrize("data_fn", [png16_gray, png16_rgb], ids=["gray16", "rgb16"])
def test_sixteen_bit_keeps_the_high_byte(data_fn) -> None:  # type: ignore[no-untyped-def]
    img = load_image(data_fn(64, 48), ImageLimits(), draft_size=None)
    arr = np.asarray(img).astype(int)
    expected = gradient_rgb(64, 48).astype(int)
    if data_fn is png16_gray:
        expected = np.repeat(expected[..., :1], 3, axis=-1)
    # Naive conversion clips every 16-bit value over 255 to white; ours keeps the picture.
    assert np.abs(arr - expected).max() <= 1


def test_cmyk_colours() -> None:
    red = Image.new("RGB", (32, 32), (255, 0, 0)).convert("CMYK")
    img = load_image(encode(red, "JPEG", quality=95), ImageLimits(), draft_size=None)
    r, g, b = np.asarray(img).reshape(-1, 3).mean(0)
    assert r > 200 and g < 60 and b < 60


def test_animated_gif_uses_first_frame() -> None:
    img = load_image(case_by_name("animated_gif").data, ImageLimits(), draft_size=None)
    r, g, b = np.asarray(img).reshape(-1, 3).mean(0)
    assert r > 200 and g < 30 and b < 30  # frame 0 is red, frames 1-2 green and blue


@pytest.mark.parametrize(
    ("limits", "error"),
    [
        (ImageLimits(max_bytes=100), ImageTooLarge),
        (ImageLimits(max_pixels=64 * 48 - 1), ImageTooLarge),
        (ImageLimits(min_side=49), InvalidImage),
        (ImageLimits(formats=frozenset({"PNG"})), UnsupportedMediaType),
    ],
)
def test_custom_limits(limits: ImageLimits, error: type[Exception]) -> None:
    data = jpeg_bytes(64, 48)
    load_image(data, ImageLimits(), draft_size=None)  # fine with the defaults
    with pytest.raises(error):
        load_image(data, limits, draft_size=None)


def test_draft_mode_reduces_large_jpeg() -> None:
    data = jpeg_bytes(1920, 1080)
    draft = draft_size_for(SPEC)
    assert draft == (224, 224)  # the 224 target itself (factor 1), no crop
    img = load_image(data, ImageLimits(), draft_size=draft)
    assert img.size == (480, 270)  # 1/8 would be 240x135: short side under 224
    wider = draft_size_for(SPEC, factor=2.0)
    assert load_image(data, ImageLimits(), draft_size=wider).size == (960, 540)
    assert load_image(data, ImageLimits(), draft_size=None).size == (1920, 1080)


def test_draft_size_accounts_for_crop() -> None:
    spec = InputSpec(height=224, width=224, crop_fraction=0.875)
    assert draft_size_for(spec) == (256, 256)
    assert draft_size_for(spec, factor=2.0) == (512, 512)


def test_draft_mode_applies_to_mpo() -> None:
    from imagecorpus import mpo_jpeg  # noqa: PLC0415

    img = load_image(mpo_jpeg(1920, 1080), ImageLimits(), draft_size=draft_size_for(SPEC))
    assert img.size == (480, 270)


def test_unexpected_plugin_error_is_invalid_image(monkeypatch: pytest.MonkeyPatch) -> None:
    """Whatever a decoder raises on hostile bytes becomes a 400, never a crash (a decoder
    failing with KeyError is simulated: no real file is known to trigger one)."""

    def broken_load(self: Image.Image) -> None:
        raise KeyError("unexpected")

    monkeypatch.setattr(ImageFile.ImageFile, "load", broken_load)
    with pytest.raises(InvalidImage, match="KeyError"):
        load_image(jpeg_bytes(32, 32), ImageLimits(), draft_size=None)


@pytest.mark.parametrize("mode", ["RGB", "RGBA", "L", "P"])
def test_other_formats_are_reduced_by_an_integer_factor(mode: str) -> None:
    """Non-JPEG images are box-reduced after decoding, never below the requested size."""
    src = Image.fromarray(gradient_rgb(1000, 600)).convert(mode)
    data = encode(src, "PNG")
    img = load_image(data, ImageLimits(), draft_size=(100, 100))
    assert img.size == (167, 100)  # factor min(1000 // 100, 600 // 100) = 6, rounded up
    assert img.mode == "RGB"
    assert load_image(data, ImageLimits(), draft_size=None).size == (1000, 600)
    assert load_image(data, ImageLimits(), draft_size=(400, 400)).size == (1000, 600)  # < 2x


def test_reduced_rgba_is_still_composited_on_white() -> None:
    arr = np.dstack([gradient_rgb(1200, 800), np.full((800, 1200), 255, np.uint8)])
    arr[:400, :, 3] = 0  # transparent top half
    img = load_image(encode(Image.fromarray(arr, "RGBA"), "PNG"), draft_size=(200, 200))
    assert img.size == (300, 200)
    out = np.asarray(img)
    assert (out[:95] == 255).all()  # transparent area white, no dark fringe bleeding in
    assert out[110:].mean() < 250


def test_reduced_png_keeps_the_picture() -> None:
    data = encode(Image.fromarray(gradient_rgb(1800, 1200, seed=4)), "PNG")
    full = preprocess(load_image(data, draft_size=None), SPEC).astype(float)
    reduced = preprocess(load_image(data, draft_size=draft_size_for(SPEC)), SPEC).astype(float)
    assert np.abs(full - reduced).mean() < 2.0


def test_draft_keeps_the_picture() -> None:
    """Drafted + resized equals full decode + resize within a few grey levels on average."""
    data = jpeg_bytes(1920, 1080, seed=3)
    full = preprocess(load_image(data, ImageLimits(), draft_size=None), SPEC).astype(float)
    drafted = preprocess(
        load_image(data, ImageLimits(), draft_size=draft_size_for(SPEC)), SPEC
    ).astype(float)
    assert np.abs(full - drafted).mean() < 3.0


# ----------------------------------------------------------------------------- preprocess


def _solid(colour: tuple[int, int, int], size: tuple[int, int] = (40, 30)) -> Image.Image:
    return Image.new("RGB", size, colour)


def test_preprocess_channel_order() -> None:
    rgb = preprocess(_solid((255, 10, 0)), InputSpec(height=8, width=8))
    bgr = preprocess(_solid((255, 10, 0)), InputSpec(height=8, width=8, channel_order="BGR"))
    assert tuple(rgb[0, 0]) == (255, 10, 0)
    assert tuple(bgr[0, 0]) == (0, 10, 255)
    assert bgr.shape == (8, 8, 3)


def test_preprocess_crop_fraction() -> None:
    img = Image.new("RGB", (100, 80), (0, 0, 255))  # blue border
    img.paste((255, 0, 0), (25, 20, 75, 60))  # red centre: the central half of each side
    whole = preprocess(img, InputSpec(height=16, width=16))
    cropped = preprocess(img, InputSpec(height=16, width=16, crop_fraction=0.5))
    assert (whole[0, 0] == (0, 0, 255)).all()
    assert (cropped == (255, 0, 0)).all()


@pytest.mark.parametrize("method", ["bilinear", "bicubic", "nearest", "area"])
def test_preprocess_resize_methods(method: str) -> None:
    img = Image.fromarray(gradient_rgb(300, 200))
    out = preprocess(img, InputSpec(height=20, width=30, resize=method))
    assert out.shape == (20, 30, 3)
    # All methods resample the same picture: close to each other on average.
    ref = preprocess(img, InputSpec(height=20, width=30, resize="area"))
    assert np.abs(out.astype(int) - ref.astype(int)).mean() < 12


def test_preprocess_nearest_differs_from_area() -> None:
    img = Image.fromarray(gradient_rgb(300, 200, seed=5))
    near = preprocess(img, InputSpec(height=20, width=30, resize="nearest"))
    area = preprocess(img, InputSpec(height=20, width=30, resize="area"))
    assert not np.array_equal(near, area)
    # Area averaging removes the per-pixel noise; nearest keeps it.
    assert np.std(np.diff(area.astype(int), axis=1)) < np.std(np.diff(near.astype(int), axis=1))


def test_preprocess_ignores_normalization() -> None:
    """preprocess returns pixels; normalization is the classifier's job (lookup table)."""
    spec = InputSpec(
        height=8, width=8, normalization=Normalization("mean_std", (1.0, 2.0, 3.0), (4.0, 5.0, 6.0))
    )
    assert tuple(preprocess(_solid((7, 8, 9)), spec)[0, 0]) == (7, 8, 9)


def test_preprocess_converts_non_rgb() -> None:
    out = preprocess(Image.new("L", (10, 10), 77), InputSpec(height=4, width=4))
    assert out.shape == (4, 4, 3)
    assert (out == 77).all()


def test_load_image_accepts_memoryview_like_bytes() -> None:
    data = bytearray(jpeg_bytes(32, 32))
    assert load_image(bytes(data), ImageLimits(), draft_size=None).size == (32, 32)
    assert load_image(io.BytesIO(data).getvalue(), draft_size=None).size == (32, 32)
