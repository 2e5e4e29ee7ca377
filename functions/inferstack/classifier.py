"""Classifier: preprocess -> quantize -> invoke -> dequantize -> softmax? -> top-k.

The interpreter is created once (per process) and reused. ``prepare`` (decode + preprocess)
touches no shared state and may run in many threads at once; the interpreter is not
thread-safe, so everything from setting the input tensor to reading the output runs under
an internal lock.

Input quantization goes through a per-channel 256-entry lookup table built once from
model.json (normalization) and the input tensor's own scale/zero point: any
``pixel -> (pixel - mean) / std -> quantize`` map of a uint8 pixel has only 256 possible
results per channel, so one ``np.take`` replaces the float arithmetic.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass, field
from typing import Any, TypedDict

import numpy as np

from inferstack.bundle import ModelBundle, Normalization, display_label, load_bundle
from inferstack.errors import BundleError, InvalidParameter, ModelUnavailable
from inferstack.images import DRAFT_FACTOR, ImageLimits, draft_size_for
from inferstack.runtime import make_interpreter

MAX_TOP_K = 1000

__all__ = [
    "Classification",
    "Classifier",
    "Prediction",
    "build_input_lut",
    "check_top_k",
    "softmax",
]


class Prediction(TypedDict):
    label: str
    index: int
    probability: float


@dataclass
class Classification:
    predictions: list[Prediction]
    timing_ms: dict[str, float] = field(default_factory=dict)  # decode, preprocess, infer, total

    def to_dict(self) -> dict[str, Any]:
        return {"predictions": self.predictions, "timing_ms": self.timing_ms}


def _quantization(detail: dict[str, Any]) -> tuple[float, int]:
    scale, zero_point = detail.get("quantization", (0.0, 0))
    return float(scale), int(zero_point)


def build_input_lut(
    normalization: Normalization, dtype: np.dtype, scale: float, zero_point: int
) -> np.ndarray:
    """A (3, 256) table: value fed to the model for each channel and uint8 pixel value.

    raw: the pixel itself is the quantized value (uint8), or pixel - 128 (int8), or the pixel
    as a float. mean_std: (pixel - mean) / std, quantized with the tensor's scale and zero
    point (rounded to nearest, saturated), or as float32 for a float input.
    """
    dtype = np.dtype(dtype)
    pixels = np.arange(256, dtype=np.float64)
    if normalization.type == "raw":
        if dtype == np.uint8:
            row = pixels
        elif dtype == np.int8:
            row = pixels - 128.0
        elif dtype.kind == "f":
            row = pixels
        else:
            raise BundleError(f"raw normalization cannot feed a {dtype} input tensor")
        return np.tile(row, (3, 1)).astype(dtype)
    mean = np.asarray(normalization.mean, dtype=np.float64)[:, None]
    std = np.asarray(normalization.std, dtype=np.float64)[:, None]
    real = (pixels[None, :] - mean) / std
    if dtype.kind == "f":
        return real.astype(dtype)
    if dtype.kind not in "iu":
        raise BundleError(f"unsupported input tensor type {dtype}")
    if scale == 0.0:
        raise BundleError("quantized input tensor has no scale; cannot apply mean_std")
    info = np.iinfo(dtype)
    quantized = np.rint(real / scale + zero_point)
    return np.clip(quantized, info.min, info.max).astype(dtype)


def softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - np.max(logits)
    exp = np.exp(shifted)
    return exp / np.sum(exp)


class Classifier:
    """A loaded model ready to classify images. Create with ``from_bundle``."""

    def __init__(
        self,
        bundle: ModelBundle,
        interpreter: Any,
        *,
        num_threads: int,
        draft_factor: float | None = DRAFT_FACTOR,
    ) -> None:
        self.bundle = bundle
        self.num_threads = num_threads
        self._interpreter = interpreter
        self._lock = threading.Lock()
        spec = bundle.metadata.input
        self.input_spec = spec
        self.input_detail = interpreter.get_input_details()[0]
        self.output_detail = interpreter.get_output_details()[0]

        shape = [int(x) for x in self.input_detail["shape"]]
        if len(shape) != 4 or shape[3] != 3 or shape[0] not in (1, -1):
            raise BundleError(f"model input must be [1, H, W, 3], got {shape}")
        if (shape[1], shape[2]) != (spec.height, spec.width):
            raise BundleError(
                f"model.json says input {spec.height}x{spec.width}, "
                f"the tflite input is {shape[1]}x{shape[2]}"
            )
        self._input_dtype = np.dtype(self.input_detail["dtype"])
        in_scale, in_zero = _quantization(self.input_detail)
        self._lut = build_input_lut(spec.normalization, self._input_dtype, in_scale, in_zero)
        # Fast path: raw uint8 input is the pixels themselves, no table lookup at all.
        self._identity_input = spec.normalization.type == "raw" and self._input_dtype == np.uint8
        # Same table for every channel (raw, or equal mean/std): one lookup for all of them.
        self._shared_lut = bool((self._lut == self._lut[0]).all())

        self._out_scale, self._out_zero = _quantization(self.output_detail)
        self._apply_softmax = bundle.metadata.output.activation == "none"
        self._offset = bundle.metadata.output.label_offset
        num_outputs = int(self.output_detail["shape"][-1])
        self.num_classes = num_outputs - self._offset
        self.labels = self._display_labels(bundle.labels, num_outputs)
        # JPEGs are decoded at reduced size (draft mode) down to draft_factor x the input
        # size; None decodes every image at full size.
        self.draft_size = None if draft_factor is None else draft_size_for(spec, draft_factor)

    def _display_labels(self, labels: tuple[str, ...], num_outputs: int) -> tuple[str, ...]:
        if len(labels) == num_outputs:
            kept = labels[self._offset :]
        elif len(labels) == num_outputs - self._offset:
            kept = labels
        else:
            raise BundleError(
                f"labels.txt has {len(labels)} lines; the model has {num_outputs} outputs "
                f"with label_offset {self._offset}"
            )
        return tuple(display_label(line) for line in kept)

    @classmethod
    def from_bundle(
        cls,
        bundle: ModelBundle,
        *,
        num_threads: int | None = None,
        draft_factor: float | None = DRAFT_FACTOR,
    ) -> Classifier:
        from inferstack.runtime import available_cpus  # noqa: PLC0415

        threads = num_threads if num_threads is not None else available_cpus()
        try:
            interpreter = make_interpreter(bundle.model_path, threads)
        except (ValueError, RuntimeError) as exc:
            # The sha256 matched, so the file is what was published: it is not a usable model.
            raise ModelUnavailable(f"cannot load {bundle.model_path}: {exc}") from exc
        return cls(bundle, interpreter, num_threads=threads, draft_factor=draft_factor)

    @classmethod
    def from_uri(
        cls,
        uri: str | os.PathLike[str],
        *,
        num_threads: int | None = None,
        draft_factor: float | None = DRAFT_FACTOR,
        **load_kwargs: Any,
    ) -> Classifier:
        """Load the bundle (folder or s3://, ``load_bundle`` keywords) and the interpreter."""
        return cls.from_bundle(
            load_bundle(uri, **load_kwargs), num_threads=num_threads, draft_factor=draft_factor
        )

    # ------------------------------------------------------------------ stages

    def prepare(self, data: bytes, limits: ImageLimits | None = None) -> np.ndarray:
        """Decode + preprocess only (thread-safe): HxWx3 uint8 in the model's channel order."""
        from inferstack.pipeline import Pipeline  # noqa: PLC0415

        return Pipeline(self, limits).prepare(data).pixels

    def quantize(self, pixels: np.ndarray) -> np.ndarray:
        """The model input tensor [1, H, W, 3] for preprocessed pixels."""
        if pixels.dtype != np.uint8 or pixels.shape != (
            self.input_spec.height,
            self.input_spec.width,
            3,
        ):
            raise ValueError(
                f"expected {self.input_spec.height}x{self.input_spec.width}x3 uint8 pixels, "
                f"got {pixels.shape} {pixels.dtype}"
            )
        if self._identity_input:
            tensor = np.ascontiguousarray(pixels)
        elif self._shared_lut:
            tensor = np.take(self._lut[0], pixels)
        else:
            # One take per channel into strided views of the output: about 3x faster than a
            # single take over a combined (3*256) table, which needs an intp index array.
            tensor = np.empty(pixels.shape, dtype=self._lut.dtype)
            for channel in range(3):
                np.take(self._lut[channel], pixels[..., channel], out=tensor[..., channel])
        return tensor[None, ...]

    def _invoke(self, tensor: np.ndarray) -> np.ndarray:
        with self._lock:
            self._interpreter.set_tensor(self.input_detail["index"], tensor)
            self._interpreter.invoke()
            # get_tensor copies, so the result stays valid once the lock is released; some
            # models answer [1, 1, 1, N] rather than [1, N].
            return self._interpreter.get_tensor(self.output_detail["index"]).reshape(-1)

    def probabilities(self, raw_output: np.ndarray) -> np.ndarray:
        """Dequantized class probabilities with the background (label offset) removed."""
        values = raw_output.astype(np.float32)
        if raw_output.dtype.kind in "iu" and self._out_scale != 0.0:
            values = (values - self._out_zero) * self._out_scale
        if self._apply_softmax:
            values = softmax(values)
        return values[self._offset :]

    def top_k(self, probs: np.ndarray, k: int) -> list[Prediction]:
        k = min(k, probs.shape[0])
        if k < probs.shape[0]:
            candidates = np.argpartition(-probs, k - 1)[:k]
        else:
            candidates = np.arange(probs.shape[0])
        # Highest first; ties broken by class index so results are deterministic.
        order = candidates[np.lexsort((candidates, -probs[candidates]))]
        return [
            {"label": self.labels[i], "index": int(i), "probability": float(probs[i])}
            for i in order
        ]

    # ------------------------------------------------------------------ public API

    def classify_array(self, pixels: np.ndarray, *, top_k: int = 5) -> list[Prediction]:
        """Classify pixels returned by ``prepare``/``preprocess``."""
        check_top_k(top_k)
        return self.top_k(self.probabilities(self._invoke(self.quantize(pixels))), top_k)

    def classify_bytes(
        self, data: bytes, *, top_k: int = 5, limits: ImageLimits | None = None
    ) -> Classification:
        """The whole path for one image (``inferstack.pipeline.Pipeline.run``)."""
        from inferstack.pipeline import Pipeline  # noqa: PLC0415

        return Pipeline(self, limits).run(data, top_k=top_k)

    def describe(self) -> dict[str, Any]:
        """model.json plus the tensor details the runtime read from the tflite file."""
        from inferstack.runtime import tensor_summary  # noqa: PLC0415

        return {
            "path": str(self.bundle.path),
            "metadata": self.bundle.metadata.to_dict(),
            "input_tensor": tensor_summary(self.input_detail),
            "output_tensor": tensor_summary(self.output_detail),
            "num_classes": self.num_classes,
            "num_threads": self.num_threads,
        }


def check_top_k(top_k: int) -> None:
    """InvalidParameter (422) unless ``top_k`` is an integer in 1..MAX_TOP_K."""
    if (
        isinstance(top_k, bool)
        or not isinstance(top_k, int | np.integer)
        or not (1 <= top_k <= MAX_TOP_K)
    ):
        raise InvalidParameter(f"top_k must be an integer from 1 to {MAX_TOP_K}, got {top_k!r}")
