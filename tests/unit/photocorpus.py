"""Real photos as JPEGs at the sizes users upload, and the top-1 agreement of the production
decode (JPEG draft mode) with a full-size decode: the accuracy check of any decode change.

Photos: the four in ``../shared/fixtures/imagenet`` and four shipped with scikit-image, each
at 800x600, 1280x720, 1920x1080 and 3000x2000, JPEG quality 85 and 95 (64 images). Used by
tests/unit/test_decode_agreement.py and printed by ``make bench``.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

from PIL import Image

FIXTURE_PHOTOS = ("bird.bmp", "cat.bmp", "grace_hopper.bmp", "parrot.jpg")
SKIMAGE_PHOTOS = ("astronaut", "chelsea", "coffee", "rocket")
SIZES = ((800, 600), (1280, 720), (1920, 1080), (3000, 2000))
QUALITIES = (85, 95)


def photos(fixtures: Path) -> list[tuple[str, Image.Image]]:
    from skimage import data as skdata  # noqa: PLC0415

    found = [(name, Image.open(fixtures / name).convert("RGB")) for name in FIXTURE_PHOTOS]
    found += [(n, Image.fromarray(getattr(skdata, n)()).convert("RGB")) for n in SKIMAGE_PHOTOS]
    return found


def photo_jpegs(fixtures: Path) -> list[tuple[str, bytes]]:
    """(label, JPEG bytes) for every photo, size and quality."""
    out = []
    for name, img in photos(fixtures):
        for width, height in SIZES:
            resized = img.resize((width, height), Image.Resampling.BICUBIC)
            for quality in QUALITIES:
                buf = io.BytesIO()
                resized.save(buf, "JPEG", quality=quality)
                out.append((f"{name}@{width}x{height}q{quality}", buf.getvalue()))
    return out


def top1_agreement(classifier: Any, jpegs: list[tuple[str, bytes]]) -> tuple[int, list[str]]:
    """How many images get the same top-1 class through the production pipeline (draft
    decode) as through a full-size decode, and the labels of those that do not."""
    from inferstack.images import load_image  # noqa: PLC0415
    from inferstack.pipeline import Pipeline  # noqa: PLC0415

    class FullDecode(Pipeline):
        def decode(self, data: bytes) -> Image.Image:
            return load_image(data, self.limits, draft_size=None)

    production, full = Pipeline(classifier), FullDecode(classifier)
    differ = [
        label
        for label, data in jpegs
        if production.run(data, top_k=1).predictions[0]["index"]
        != full.run(data, top_k=1).predictions[0]["index"]
    ]
    return len(jpegs) - len(differ), differ
