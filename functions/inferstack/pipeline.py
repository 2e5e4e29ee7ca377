"""The one decode -> preprocess -> infer path, timed, behind a small interface.

Every entry point classifies through ``Pipeline``: the real-time handler (its subclass wraps
each stage in an X-Ray subsegment), ``inferstack classify`` and the batch worker (both run
``prepare`` in their prefetch threads and ``classify`` on the interpreter's thread).

Stages and their hooks, each small enough to override alone:

- ``stage(name)``: a context manager around every stage (tracing); a no-op by default;
- ``decode(data)``: validation and decoding (``images.load_image``, JPEG draft mode);
- ``preprocess(img)``: crop, resize, channel order (``images.preprocess``);
- ``infer(pixels, top_k, classifier)``: quantize, invoke, top-k (``Classifier.classify_array``).

``prepare`` (decode + preprocess) touches no shared state: call it from as many threads as
you like. ``classify`` takes the classifier to run on, so a worker with several
interpreters hands each image to whichever is free.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from inferstack.images import ImageLimits, load_image, preprocess

if TYPE_CHECKING:
    import numpy as np
    from PIL import Image

    from inferstack.classifier import Classification, Classifier, Prediction

__all__ = ["Pipeline", "Prepared"]


@dataclass
class Prepared:
    """An image ready for the interpreter: model-sized pixels and the time they took."""

    pixels: np.ndarray
    timing_ms: dict[str, float] = field(default_factory=dict)  # decode, preprocess


class Pipeline:
    """decode -> preprocess -> infer for one model, with per-stage timing in milliseconds."""

    def __init__(self, classifier: Classifier, limits: ImageLimits | None = None) -> None:
        self.classifier = classifier
        self.limits = limits or ImageLimits()

    # ------------------------------------------------------------------ hooks

    @contextlib.contextmanager
    def stage(self, name: str) -> Iterator[None]:
        """Wraps each stage (``decode``, ``preprocess``, ``infer``); tracing goes here."""
        yield

    def decode(self, data: bytes) -> Image.Image:
        return load_image(data, self.limits, draft_size=self.classifier.draft_size)

    def preprocess(self, img: Image.Image) -> np.ndarray:
        return preprocess(img, self.classifier.input_spec)

    def infer(self, pixels: np.ndarray, top_k: int, classifier: Classifier) -> list[Prediction]:
        return classifier.classify_array(pixels, top_k=top_k)

    # ------------------------------------------------------------------ the path

    def _timed(self, name: str, fn: Any, *args: Any) -> tuple[Any, float]:
        with self.stage(name):
            start = time.perf_counter()
            result = fn(*args)
            return result, _ms(time.perf_counter() - start)

    def prepare(self, data: bytes) -> Prepared:
        """Decode + preprocess (thread-safe). Raises the ImageError subclasses."""
        img, decode_ms = self._timed("decode", self.decode, data)
        pixels, preprocess_ms = self._timed("preprocess", self.preprocess, img)
        return Prepared(pixels, {"decode": decode_ms, "preprocess": preprocess_ms})

    def classify(
        self, prepared: Prepared, *, top_k: int = 5, classifier: Classifier | None = None
    ) -> Classification:
        """Infer on ``classifier`` (default: this pipeline's); ``total`` sums the stages."""
        from inferstack.classifier import Classification  # noqa: PLC0415

        chosen = classifier or self.classifier
        predictions, infer_ms = self._timed("infer", self.infer, prepared.pixels, top_k, chosen)
        timing = {**prepared.timing_ms, "infer": infer_ms}
        timing["total"] = round(sum(timing.values()), 3)
        return Classification(predictions=predictions, timing_ms=timing)

    def run(self, data: bytes, *, top_k: int = 5) -> Classification:
        """The whole path for one image."""
        from inferstack.classifier import check_top_k  # noqa: PLC0415

        check_top_k(top_k)  # before any decoding: a bad parameter costs nothing
        return self.classify(self.prepare(data), top_k=top_k)


def _ms(seconds: float) -> float:
    return round(seconds * 1000.0, 3)
