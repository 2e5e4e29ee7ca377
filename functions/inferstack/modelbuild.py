"""Build the model bundle: Keras ResNet50 -> full-integer int8 TFLite + labels + model.json.

TensorFlow is a build-time dependency only. It is imported lazily inside the functions that
need it, so importing this module (e.g. for the CLI's argument parser) costs nothing and the
functions (Lambda, batch worker) never load it.

How the conversion is done (TensorFlow 2.21, Keras 3):
- ``keras.applications.ResNet50`` with ImageNet weights, a local weights file, or seeded
  random weights (same compute cost, meaningless predictions, and the bundle says so).
- ``model.export()`` writes a SavedModel whose serving signature has a fixed input shape
  [1, H, W, 3]; ``tf.lite.TFLiteConverter.from_saved_model`` converts it. (With Keras 3,
  ``from_concrete_functions`` on a ``tf.function`` keeps resource variables that the
  calibrator cannot read, and ``from_keras_model`` leaves a dynamic batch dimension.)
- Full-integer post-training quantization: ``Optimize.DEFAULT`` + a representative dataset,
  ``supported_ops = [TFLITE_BUILTINS_INT8]`` (conversion fails rather than leaving a float
  op behind), int8 input and output tensors. int8 rather than uint8 because it is TFLite's
  current quantization spec (symmetric per-channel int8 weights); a uint8 interface would
  only add requantize ops at both ends. The runtime reads scale/zero point from the file.
- The representative images go through ``inferstack.images.preprocess`` and the same
  ``(pixel - mean) / std`` as the runtime, so the calibrated ranges are the ones served.
  Without a calibration folder, real photos shipped inside scikit-image are used (random
  noise would calibrate ranges no photo produces), with seeded random crops and flips.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
from PIL import Image

from inferstack.bundle import BUNDLE_FILES, InputSpec, Normalization, OutputSpec, write_bundle
from inferstack.errors import InferstackError
from inferstack.images import ImageLimits, draft_size_for, load_image, preprocess

Progress = Callable[[str], None]

# Keras "caffe" preprocessing for ResNet50: BGR channel order, ImageNet mean per channel
# (in B, G, R order), no scaling.
CAFFE_MEAN_BGR = (103.939, 116.779, 123.68)
CAFFE_STD = (1.0, 1.0, 1.0)
NUM_CLASSES = 1000
DEFAULT_NAME = "resnet50-int8"
DEFAULT_OUT = Path("build/model/resnet50-int8")
CALIBRATION_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp"})
WEIGHTS_SUFFIXES = (".h5", ".hdf5", ".keras")
LABELS_RESOURCE = "data/imagenet_classes.txt"

# Photos that ship inside the scikit-image wheel (no download), most photo-like first so a
# small calibration set still sees natural images. Grayscale ones are fed as RGB, as the
# runtime does with grayscale uploads.
SKIMAGE_PHOTOS = (
    "astronaut",
    "chelsea",
    "coffee",
    "rocket",
    "stereo_motorcycle",
    "camera",
    "coins",
    "hubble_deep_field",
    "immunohistochemistry",
    "retina",
    "moon",
    "grass",
    "gravel",
    "brick",
)

NO_INTERNET_HINT = (
    "This machine may have no internet access. Use --weights random (seeded random weights: "
    "same size and speed, meaningless predictions) or --weights PATH to a local Keras "
    "ResNet50 weights file (.h5 or .keras)."
)


class ModelBuildError(InferstackError):
    """The model cannot be built (weights unavailable, bad calibration data, conversion)."""

    code: ClassVar[str] = "model_build_failed"
    http_status: ClassVar[int] = 500


def _say(progress: Progress | None, message: str) -> None:
    if progress is not None:
        progress(message)


# --------------------------------------------------------------------------- metadata


def input_spec(input_size: int = 224) -> InputSpec:
    """What the runtime must feed the model; calibration uses exactly the same.

    crop_fraction 1.0: the whole upload is classified (what Keras documents for ResNet50:
    ``load_img(target_size=(224, 224))``); a 0.875 central crop gains ~1% top-1 on ImageNet's
    centred validation photos but cuts off objects near the edges of arbitrary uploads.
    """
    return InputSpec(
        height=input_size,
        width=input_size,
        channel_order="BGR",
        resize="bilinear",
        crop_fraction=1.0,
        normalization=Normalization("mean_std", CAFFE_MEAN_BGR, CAFFE_STD),
    )


def imagenet_labels() -> list[str]:
    """The 1000 ImageNet class names in Keras ResNet50 output order (shipped with the package).

    Keras downloads its class index at run time, which offline machines cannot do.
    """
    text = resources.files("inferstack").joinpath(LABELS_RESOURCE).read_text(encoding="utf-8")
    labels = [line.strip() for line in text.splitlines() if line.strip() and line[0] != "#"]
    if len(labels) != NUM_CLASSES:
        raise ModelBuildError(f"{LABELS_RESOURCE} has {len(labels)} classes, not {NUM_CLASSES}")
    return labels


def _created() -> str:
    """Build time; SOURCE_DATE_EPOCH (reproducible builds) overrides the clock."""
    epoch = os.environ.get("SOURCE_DATE_EPOCH", "").strip()
    if not epoch:
        return datetime.now(UTC).isoformat(timespec="seconds")
    if not epoch.isdigit():
        raise ModelBuildError(f"SOURCE_DATE_EPOCH must be seconds since 1970, got {epoch!r}")
    return datetime.fromtimestamp(int(epoch), UTC).isoformat(timespec="seconds")


def _notes(weights_kind: str, calibration: str, num_samples: int) -> str:
    parts = [
        "Keras ResNet50, full-integer post-training quantization (int8 weights, activations, "
        "input and output; TFLITE_BUILTINS_INT8 only).",
        f"Calibrated on {num_samples} images ({calibration}) preprocessed exactly as served: "
        "whole image resized bilinearly to the input size, RGB->BGR, minus the ImageNet "
        "channel means (Keras 'caffe' preprocessing).",
        "The output is the model's softmax, quantized (scale 1/256): no softmax at serving.",
    ]
    if weights_kind == "random":
        parts.append(
            "RANDOM WEIGHTS: the predictions are meaningless. This bundle has the size and "
            "the compute cost of the real model (for tests, demos and benchmarks where the "
            "ImageNet weights cannot be downloaded)."
        )
    return " ".join(parts)


# --------------------------------------------------------------------------- calibration


def _skimage_photo(name: str) -> Image.Image:
    try:
        from skimage import data as skdata  # noqa: PLC0415
    except ImportError as exc:
        raise ModelBuildError(
            "scikit-image is needed for the default calibration photos "
            "(pip install scikit-image), or pass a calibration folder"
        ) from exc
    array = getattr(skdata, name)()
    if isinstance(array, tuple):  # stereo pairs: keep the left view
        array = array[0]
    return Image.fromarray(np.asarray(array, dtype=np.uint8)).convert("RGB")


def _augment(img: Image.Image, rng: np.random.Generator) -> Image.Image:
    """A random crop (50-100% of each side) and a horizontal flip half of the time."""
    width, height = img.size
    cw = max(8, round(width * rng.uniform(0.5, 1.0)))
    ch = max(8, round(height * rng.uniform(0.5, 1.0)))
    left = int(rng.integers(0, width - cw + 1))
    top = int(rng.integers(0, height - ch + 1))
    img = img.crop((left, top, left + cw, top + ch))
    if rng.random() < 0.5:
        img = img.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    return img


def skimage_calibration(num: int, seed: int, spec: InputSpec) -> list[np.ndarray]:
    """``num`` preprocessed images: each shipped photo once whole, then augmented copies."""
    rng = np.random.default_rng(seed)
    photos = [_skimage_photo(name) for name in SKIMAGE_PHOTOS[: max(1, num)]]
    samples = []
    for i in range(num):
        img = photos[i % len(photos)]
        if i >= len(photos):
            img = _augment(img, rng)
        samples.append(preprocess(img, spec))
    return samples


def folder_calibration(
    folder: Path, num: int, seed: int, spec: InputSpec, progress: Progress | None = None
) -> list[np.ndarray]:
    """Up to ``num`` images from ``folder`` (recursively), decoded like the runtime decodes.

    Files are taken in sorted order, or a seeded random choice of ``num`` when there are
    more. Unreadable files are skipped (and reported); none readable is an error.
    """
    if not folder.is_dir():
        raise ModelBuildError(f"calibration folder not found: {folder}")
    files = sorted(
        p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in CALIBRATION_SUFFIXES
    )
    if len(files) > num:
        chosen = np.random.default_rng(seed).choice(len(files), size=num, replace=False)
        files = [files[i] for i in sorted(chosen)]
    limits = ImageLimits()
    samples = []
    for path in files:
        try:
            img = load_image(path.read_bytes(), limits, draft_size=draft_size_for(spec))
        except (InferstackError, OSError) as exc:
            _say(progress, f"skipping {path}: {exc}")
            continue
        samples.append(preprocess(img, spec))
    if not samples:
        suffixes = ", ".join(sorted(CALIBRATION_SUFFIXES))
        raise ModelBuildError(f"no readable images ({suffixes}) in calibration folder {folder}")
    return samples


def normalize(pixels: np.ndarray, spec: InputSpec) -> np.ndarray:
    """Preprocessed uint8 pixels -> the float model input [1, H, W, 3], as the runtime does."""
    norm = spec.normalization
    mean = np.asarray(norm.mean, dtype=np.float32)
    std = np.asarray(norm.std, dtype=np.float32)
    return ((pixels.astype(np.float32) - mean) / std)[None, ...]


# --------------------------------------------------------------------------- keras model


def _import_tensorflow() -> Any:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # keep C++ info logs off the console
    try:
        import tensorflow as tf  # noqa: PLC0415
    except ImportError as exc:
        raise ModelBuildError(
            "TensorFlow is needed to build a model: pip install -e '.[build]'"
        ) from exc
    import keras  # noqa: PLC0415

    if keras.backend.backend() != "tensorflow":
        raise ModelBuildError(
            f"the Keras backend is {keras.backend.backend()!r}; set KERAS_BACKEND=tensorflow"
        )
    return tf


def check_weights_arg(weights: str) -> None:
    """Refuse a bad ``weights`` value before spending seconds importing TensorFlow."""
    if weights in ("imagenet", "random"):
        return
    path = Path(weights)
    if not path.is_file():
        raise ModelBuildError(
            f"--weights must be 'imagenet', 'random' or a weights file; {path} does not exist"
        )
    if not path.name.endswith(WEIGHTS_SUFFIXES):
        raise ModelBuildError(f"weights file {path} must end with one of {WEIGHTS_SUFFIXES}")


def load_keras_model(
    weights: str, *, seed: int = 0, input_size: int = 224
) -> tuple[Any, dict[str, Any]]:
    """Keras ResNet50 with the requested weights, and the bundle's ``source`` facts."""
    check_weights_arg(weights)
    tf = _import_tensorflow()
    import keras  # noqa: PLC0415

    # Seeds Python, NumPy and TensorFlow: random weights are the same for the same seed.
    keras.utils.set_random_seed(seed)
    shape = (input_size, input_size, 3)
    source: dict[str, Any] = {
        "kind": "keras-resnet50",
        "weights": weights,
        "seed": seed,
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
    }
    if weights == "random":
        return keras.applications.ResNet50(weights=None, input_shape=shape), source
    if weights == "imagenet":
        try:
            model = keras.applications.ResNet50(weights="imagenet", input_shape=shape)
        except ValueError as exc:  # e.g. an input size the pretrained top does not accept
            raise ModelBuildError(f"cannot build ImageNet ResNet50: {exc}") from exc
        except Exception as exc:  # Keras raises a bare Exception when the download fails
            raise ModelBuildError(
                f"cannot download the ImageNet ResNet50 weights ({exc}). {NO_INTERNET_HINT}"
            ) from exc
        source["original_file"] = "resnet50_weights_tf_dim_ordering_tf_kernels.h5"
        return model, source
    return _model_from_file(Path(weights), shape, source)


def _model_from_file(
    path: Path, shape: tuple[int, int, int], source: dict[str, Any]
) -> tuple[Any, dict[str, Any]]:
    import keras  # noqa: PLC0415

    model = keras.applications.ResNet50(weights=None, input_shape=shape)
    try:
        model.load_weights(path)
    except Exception as exc:  # h5py/Keras raise many types for a wrong or corrupt file
        raise ModelBuildError(f"cannot load ResNet50 weights from {path}: {exc}") from exc
    source.update(
        weights=path.name,
        original_file=path.name,
        original_sha256=hashlib.sha256(path.read_bytes()).hexdigest(),
    )
    return model, source


# --------------------------------------------------------------------------- conversion


def convert_int8(
    model: Any,
    samples: Sequence[np.ndarray],
    spec: InputSpec,
    progress: Progress | None = None,
) -> bytes:
    """Full-integer int8 TFLite flatbuffer, calibrated on ``samples`` (preprocessed pixels)."""
    tf = _import_tensorflow()
    total = len(samples)
    every = max(1, total // 10)

    def representative() -> Iterator[list[np.ndarray]]:
        for i, pixels in enumerate(samples, start=1):
            if i == 1 or i % every == 0 or i == total:
                _say(progress, f"calibrating {i}/{total}")
            yield [normalize(pixels, spec)]

    signature = [tf.TensorSpec([1, spec.height, spec.width, 3], tf.float32, name="input")]
    with tempfile.TemporaryDirectory(prefix="inferstack-savedmodel-") as saved:
        _say(progress, "exporting SavedModel")
        model.export(saved, format="tf_saved_model", verbose=False, input_signature=signature)
        converter = tf.lite.TFLiteConverter.from_saved_model(saved)
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = representative
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        converter.inference_input_type = tf.int8
        converter.inference_output_type = tf.int8
        _say(progress, "converting to int8 TFLite")
        try:
            return converter.convert()
        except Exception as exc:  # the converter raises ConverterError and plain exceptions
            raise ModelBuildError(f"TFLite conversion failed: {exc}") from exc


def check_tflite(data: bytes, spec: InputSpec) -> dict[str, Any]:
    """Open the result with the serving runtime and check the int8 interface."""
    from inferstack.runtime import make_interpreter  # noqa: PLC0415

    with tempfile.TemporaryDirectory(prefix="inferstack-check-") as tmp:
        path = Path(tmp) / "model.tflite"
        path.write_bytes(data)
        interpreter = make_interpreter(path, 1)
        inp = interpreter.get_input_details()[0]
        out = interpreter.get_output_details()[0]
    expected_in = [1, spec.height, spec.width, 3]
    problems = []
    if inp["dtype"] != np.int8 or list(inp["shape"]) != expected_in:
        problems.append(f"input {inp['dtype'].__name__}{list(inp['shape'])}")
    if out["dtype"] != np.int8 or list(out["shape"]) != [1, NUM_CLASSES]:
        problems.append(f"output {out['dtype'].__name__}{list(out['shape'])}")
    if problems:
        raise ModelBuildError(f"unexpected tensors in the converted model: {', '.join(problems)}")
    return {"input": inp["quantization"], "output": out["quantization"]}


# --------------------------------------------------------------------------- bundle


def _check_out(out: Path) -> None:
    """Refuse to replace a folder that holds anything but a previous bundle."""
    if out.exists() and not out.is_dir():
        raise ModelBuildError(f"output path {out} exists and is not a folder")
    if out.is_dir():
        foreign = sorted(p.name for p in out.iterdir() if p.name not in BUNDLE_FILES)
        if foreign:
            raise ModelBuildError(
                f"output folder {out} holds files that are not a model bundle: {foreign[:5]}"
            )


def build_bundle(
    *,
    weights: str,
    out: Path,
    calibration_dir: Path | None = None,
    num_calibration: int = 100,
    seed: int = 0,
    progress: Callable[[str], None] | None = None,
    input_size: int = 224,
    name: str = DEFAULT_NAME,
    version: str = "1",
) -> Path:
    """Build a ResNet50 int8 bundle into ``out`` (model.tflite, labels.txt, model.json).

    ``weights``: "imagenet" (Keras download), "random" (seeded by ``seed``) or a path to a
    local Keras weights file. Returns ``out``. Raises ModelBuildError with a message meant
    for people (no traceback needed), e.g. when the ImageNet weights cannot be downloaded.
    """
    out = Path(out)
    if num_calibration < 1:
        raise ModelBuildError("num_calibration must be at least 1")
    _check_out(out)
    check_weights_arg(weights)
    created = _created()
    spec = input_spec(input_size)
    labels = imagenet_labels()
    started = time.perf_counter()

    _say(progress, f"loading ResNet50 ({weights} weights)")
    model, source = load_keras_model(weights, seed=seed, input_size=input_size)

    if calibration_dir is not None:
        _say(progress, f"reading calibration images from {calibration_dir}")
        samples = folder_calibration(Path(calibration_dir), num_calibration, seed, spec, progress)
        calibration = f"from {Path(calibration_dir).name}"
    else:
        _say(progress, f"preparing {num_calibration} calibration images (scikit-image photos)")
        samples = skimage_calibration(num_calibration, seed, spec)
        calibration = "photos shipped with scikit-image, seeded random crops and flips"

    tflite = convert_int8(model, samples, spec, progress)
    quantization = check_tflite(tflite, spec)
    _say(
        progress,
        f"converted after {time.perf_counter() - started:.0f} s: {len(tflite) / 2**20:.1f} MiB, "
        f"(scale, zero point) {quantization}",
    )

    source["created"] = created
    source["calibration"] = {"images": len(samples), "source": calibration}
    meaningful = weights != "random"
    metadata = {
        "name": name,
        "version": version,
        "input": spec.to_dict(),
        "output": OutputSpec(activation="softmax", label_offset=0).to_dict(),
        "source": source,
        "predictions_meaningful": meaningful,
        "notes": _notes("random" if not meaningful else "trained", calibration, len(samples)),
    }
    _say(progress, f"writing bundle to {out}")
    bundle = write_bundle(out, tflite=tflite, labels=labels, metadata=metadata, overwrite=True)
    _say(
        progress,
        f"done in {time.perf_counter() - started:.0f} s: {out}/model.tflite "
        f"{bundle.model_path.stat().st_size / 2**20:.1f} MiB, sha256 {bundle.sha256}",
    )
    return out


# --------------------------------------------------------------------------- command line


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``inferstack model build`` (also ``python -m inferstack.modelbuild``)."""
    parser.add_argument(
        "--weights",
        required=True,
        help="'imagenet' (downloaded by Keras, needs internet), 'random' (seeded, "
        "meaningless predictions) or PATH to a local Keras ResNet50 weights file",
    )
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="bundle folder to write")
    parser.add_argument(
        "--calibration-dir",
        type=Path,
        default=None,
        help="folder of JPEG/PNG/BMP images for calibration (default: photos shipped "
        "with scikit-image, augmented)",
    )
    parser.add_argument(
        "--num-calibration", type=int, default=100, help="calibration images (default 100)"
    )
    parser.add_argument("--seed", type=int, default=0, help="random weights and augmentation")
    parser.add_argument("--input-size", type=int, default=224, help="input height and width")
    parser.add_argument("--name", default=DEFAULT_NAME, help="bundle name in model.json")
    parser.add_argument("--version", default="1", help="bundle version in model.json")


def run(args: argparse.Namespace) -> int:
    """Run a build from parsed arguments; prints progress, returns the exit status."""

    def progress(message: str) -> None:
        print(f"[model build] {message}", file=sys.stderr, flush=True)

    try:
        out = build_bundle(
            weights=args.weights,
            out=args.out,
            calibration_dir=args.calibration_dir,
            num_calibration=args.num_calibration,
            seed=args.seed,
            progress=progress,
            input_size=args.input_size,
            name=args.name,
            version=args.version,
        )
    except ModelBuildError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        return 2
    print(out)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m inferstack.modelbuild",
        description="Build the ResNet50 int8 TFLite model bundle.",
    )
    add_arguments(parser)
    return run(parser.parse_args(argv))


__all__ = [
    "CAFFE_MEAN_BGR",
    "ModelBuildError",
    "add_arguments",
    "build_bundle",
    "check_tflite",
    "check_weights_arg",
    "convert_int8",
    "folder_calibration",
    "imagenet_labels",
    "input_spec",
    "load_keras_model",
    "main",
    "normalize",
    "run",
    "skimage_calibration",
]


if __name__ == "__main__":
    sys.exit(main())
