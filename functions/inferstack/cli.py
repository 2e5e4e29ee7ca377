"""The ``inferstack`` command line.

One function adds each command group to the parser (``_add_model_commands``,
``_add_classify_command``, ...); a new group is one more function in ``COMMAND_GROUPS``.
Heavy imports (numpy, Pillow, the TFLite runtime, boto3, TensorFlow) happen inside the
commands, so ``--help`` stays instant.

Exit status: 0 success; 1 some images could not be classified (each has an error line);
2 usage errors, a model that cannot be loaded, or an image file that cannot be read.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from itertools import islice
from pathlib import Path
from typing import Any

from inferstack import __version__
from inferstack.aws.cli import add_aws_commands
from inferstack.aws.rollout import add_rollout_commands
from inferstack.batch.cli import add_batch_commands
from inferstack.errors import InferstackError
from inferstack.local.cli import add_local_commands

EXIT_OK = 0
EXIT_IMAGE_FAILED = 1
EXIT_USAGE = 2

# Normalization presets; mean/std given in RGB order and reversed when the model takes BGR.
PREPROCESS_PRESETS: dict[str, dict[str, Any]] = {
    "raw": {"channel_order": "RGB", "normalization": None},
    "caffe": {"channel_order": "BGR", "mean": (123.68, 116.779, 103.939), "std": (1.0, 1.0, 1.0)},
    "tf": {"channel_order": "RGB", "mean": (127.5, 127.5, 127.5), "std": (127.5, 127.5, 127.5)},
    "torch": {
        "channel_order": "RGB",
        "mean": (123.675, 116.28, 103.53),
        "std": (58.395, 57.12, 57.375),
    },
}
BACKGROUND_LABELS = frozenset({"background", "__background__", "unused", "dummy", "none"})


class CliError(Exception):
    """A problem reported as one line on stderr with exit status 2 (no traceback)."""


Handler = Callable[[argparse.Namespace], int]
SubParsers = Any  # argparse's _SubParsersAction is private


def _err(message: str) -> None:
    print(f"inferstack: error: {message}", file=sys.stderr)


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def _fraction(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not 0.0 < value <= 1.0:
        raise argparse.ArgumentTypeError(f"must be in (0, 1], got {value}")
    return value


def _load_classifier(uri: str, *, threads: int | None, cache_dir: Path | None) -> Any:
    from inferstack.bundle import load_bundle  # noqa: PLC0415
    from inferstack.classifier import Classifier  # noqa: PLC0415

    return Classifier.from_bundle(load_bundle(uri, cache_dir=cache_dir), num_threads=threads)


# ----------------------------------------------------------------------------- model build


def _cmd_model_build(args: argparse.Namespace) -> int:
    try:
        from inferstack import modelbuild  # noqa: PLC0415
    except ImportError as exc:
        raise CliError(
            f"model build is not available ({exc}); it needs TensorFlow: "
            "pip install 'inferstack[build]'"
        ) from exc

    def progress(message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    try:
        result = modelbuild.build_bundle(
            weights=args.weights,
            out=args.out,
            calibration_dir=args.calibration_dir,
            num_calibration=args.num_calibration,
            seed=args.seed,
            progress=progress,
        )
    except ImportError as exc:
        raise CliError(
            f"model build needs TensorFlow ({exc}): pip install 'inferstack[build]'"
        ) from exc
    path = getattr(result, "path", result if result is not None else args.out)
    print(json.dumps({"bundle": str(path)}))
    return EXIT_OK


# ----------------------------------------------------------------------------- model import


def _labels_have_background(labels: Sequence[str]) -> bool:
    return bool(labels) and labels[0].split(", ")[0].strip().lower() in BACKGROUND_LABELS


def resolve_label_offset(choice: str, num_outputs: int, labels: Sequence[str]) -> int:
    """The label offset for ``--label-offset`` auto|0|1, checked against the label count."""
    n = len(labels)
    if choice == "auto":
        if n == num_outputs - 1:
            offset = 1  # labels for the real classes only; output 0 is background
        elif n == num_outputs:
            offset = 1 if num_outputs == 1001 and _labels_have_background(labels) else 0
        else:
            raise CliError(
                f"labels file has {n} lines but the model has {num_outputs} outputs: "
                "expected the same number, or one fewer (background class at index 0)"
            )
        return offset
    offset = int(choice)
    if n not in (num_outputs, num_outputs - offset):
        raise CliError(
            f"labels file has {n} lines; with --label-offset {offset} the model's "
            f"{num_outputs} outputs need {num_outputs} or {num_outputs - offset}"
        )
    return offset


def _normalization(preset: str, channel_order: str) -> dict[str, Any]:
    spec = PREPROCESS_PRESETS[preset]
    if spec.get("normalization", True) is None:
        return {"type": "raw"}
    mean, std = list(spec["mean"]), list(spec["std"])
    if channel_order == "BGR":
        mean.reverse()
        std.reverse()
    return {"type": "mean_std", "mean": mean, "std": std}


def _inspect_tflite(path: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    from inferstack.runtime import make_interpreter  # noqa: PLC0415

    try:
        interpreter = make_interpreter(path, 1)
    except (ValueError, RuntimeError) as exc:
        raise CliError(f"{path} is not a usable TFLite model: {exc}") from exc
    return interpreter.get_input_details()[0], interpreter.get_output_details()[0]


def _warn_saturation(normalization: dict[str, Any], input_detail: dict[str, Any]) -> None:
    """Warn when the chosen normalization clips many pixel values at the input's range."""
    import numpy as np  # noqa: PLC0415

    from inferstack.bundle import Normalization  # noqa: PLC0415
    from inferstack.classifier import build_input_lut  # noqa: PLC0415

    dtype = np.dtype(input_detail["dtype"])
    if normalization["type"] != "mean_std" or dtype.kind not in "iu":
        return
    scale, zero_point = input_detail["quantization"]
    norm = Normalization("mean_std", tuple(normalization["mean"]), tuple(normalization["std"]))
    lut = build_input_lut(norm, dtype, float(scale), int(zero_point))
    info = np.iinfo(dtype)
    clipped = float(np.mean((lut == info.min) | (lut == info.max)))
    if clipped > 0.1:
        print(
            f"inferstack: warning: {clipped:.0%} of pixel values saturate the input tensor's "
            f"range (scale {scale:.6g}, zero point {zero_point}); is --preprocess right?",
            file=sys.stderr,
        )


def _cmd_model_import(args: argparse.Namespace) -> int:
    from inferstack.bundle import write_bundle  # noqa: PLC0415
    from inferstack.runtime import output_is_softmax  # noqa: PLC0415

    tflite: Path = args.tflite
    if not tflite.is_file():
        raise CliError(f"tflite file not found: {tflite}")
    if not args.labels.is_file():
        raise CliError(f"labels file not found: {args.labels}")
    labels = [line.strip() for line in args.labels.read_text(encoding="utf-8").splitlines()]
    while labels and not labels[-1]:
        labels.pop()

    input_detail, output_detail = _inspect_tflite(tflite)
    shape = [int(x) for x in input_detail["shape"]]
    if len(shape) != 4 or shape[3] != 3:
        raise CliError(f"model input must be [1, height, width, 3], got {shape}")
    num_outputs = int(output_detail["shape"][-1])

    if args.output_activation == "auto":
        found = output_is_softmax(tflite)
        if found is None:
            raise CliError(
                "cannot inspect the model graph with this runtime; "
                "pass --output-activation softmax|none"
            )
        activation = "softmax" if found else "none"
    else:
        activation = args.output_activation
    offset = resolve_label_offset(args.label_offset, num_outputs, labels)

    channel_order = args.channel_order or PREPROCESS_PRESETS[args.preprocess]["channel_order"]
    normalization = _normalization(args.preprocess, channel_order)
    _warn_saturation(normalization, input_detail)
    metadata = {
        "schema_version": 1,
        "name": args.name or tflite.stem,
        "version": args.version,
        "input": {
            "height": shape[1],
            "width": shape[2],
            "channel_order": channel_order,
            "resize": args.resize,
            "crop_fraction": args.crop_fraction,
            "normalization": normalization,
        },
        "output": {"activation": activation, "label_offset": offset},
        "source": {
            "kind": "import",
            "weights": tflite.name,
            "original_file": tflite.name,
            "preprocess": args.preprocess,
            "created": datetime.now(UTC).replace(microsecond=0).isoformat(),
        },
        "predictions_meaningful": True,
        "notes": f"imported from {tflite.name} with --preprocess {args.preprocess}",
    }
    bundle = write_bundle(
        args.out, tflite=tflite, labels=labels, metadata=metadata, overwrite=args.force
    )
    print(json.dumps({"bundle": str(bundle.path), **bundle.metadata.to_dict()}, indent=2))
    return EXIT_OK


# ----------------------------------------------------------------------------- model info


def _cmd_model_info(args: argparse.Namespace) -> int:
    classifier = _load_classifier(args.model, threads=1, cache_dir=args.cache_dir)
    info = classifier.describe()
    info["num_labels"] = len(classifier.bundle.labels)
    print(json.dumps(info, indent=2))
    return EXIT_OK


def _add_model_commands(subparsers: SubParsers) -> None:
    model = subparsers.add_parser(
        "model",
        help="build, import and inspect model bundles; the status of a model rollout",
        description="Model bundles.",
    )
    commands = model.add_subparsers(dest="model_command", metavar="COMMAND", required=True)

    build = commands.add_parser(
        "build",
        help="build the int8 ResNet-50 bundle from Keras (needs TensorFlow)",
        description="Convert Keras ResNet50 into a full-integer int8 TFLite bundle.",
    )
    build.add_argument(
        "--weights",
        required=True,
        metavar="imagenet|random|PATH",
        help="'imagenet' (downloaded by Keras), 'random' (seeded), or a weights file",
    )
    build.add_argument("--out", required=True, type=Path, metavar="DIR", help="bundle folder")
    build.add_argument(
        "--calibration-dir",
        type=Path,
        metavar="DIR",
        help="images for the representative dataset (default: synthetic)",
    )
    build.add_argument(
        "--num-calibration",
        type=_positive_int,
        default=100,
        metavar="N",
        help="calibration images to use (default: %(default)s)",
    )
    build.add_argument("--seed", type=int, default=0, help="random seed (default: %(default)s)")
    build.set_defaults(func=_cmd_model_build)

    imp = commands.add_parser(
        "import",
        help="make a bundle from an existing .tflite and labels file",
        description="Write a model bundle (model.tflite, labels.txt, model.json) from a "
        "TFLite classifier. Input size and quantization are read from the model.",
    )
    imp.add_argument("--tflite", required=True, type=Path, metavar="FILE")
    imp.add_argument(
        "--labels", required=True, type=Path, metavar="FILE", help="one class per line"
    )
    imp.add_argument(
        "--preprocess",
        required=True,
        choices=sorted(PREPROCESS_PRESETS),
        help="raw: uint8 pixels fed as-is; caffe: BGR minus ImageNet mean; "
        "tf: (x-127.5)/127.5; torch: ImageNet mean/std",
    )
    imp.add_argument("--out", required=True, type=Path, metavar="DIR", help="bundle folder")
    imp.add_argument("--name", help="model name (default: the tflite file name)")
    imp.add_argument("--version", default="1", help="model version (default: %(default)s)")
    imp.add_argument(
        "--channel-order",
        choices=("RGB", "BGR"),
        help="channel order fed to the model (default: BGR for caffe, RGB otherwise)",
    )
    imp.add_argument(
        "--resize",
        choices=("bilinear", "bicubic", "nearest", "area"),
        default="bilinear",
        help="resize method (default: %(default)s)",
    )
    imp.add_argument(
        "--crop-fraction",
        type=_fraction,
        default=1.0,
        metavar="F",
        help="keep the central F of each side before resizing (default: %(default)s)",
    )
    imp.add_argument(
        "--output-activation",
        choices=("auto", "softmax", "none"),
        default="auto",
        help="softmax: outputs are probabilities; none: logits; auto: read the graph",
    )
    imp.add_argument(
        "--label-offset",
        choices=("auto", "0", "1"),
        default="auto",
        help="1 if output 0 is a background class (default: %(default)s)",
    )
    imp.add_argument("--force", action="store_true", help="replace an existing --out folder")
    imp.set_defaults(func=_cmd_model_import)

    info = commands.add_parser(
        "info",
        help="print model.json and the tensor details of a bundle",
        description="Load a bundle (verifying its sha256) and describe it.",
    )
    info.add_argument("--model", required=True, metavar="DIR_OR_S3URI")
    info.add_argument("--cache-dir", type=Path, metavar="DIR", help="cache for s3:// bundles")
    info.set_defaults(func=_cmd_model_info)
    add_rollout_commands(commands)


# ----------------------------------------------------------------------------- classify


@dataclass
class _Prepared:
    """One image after reading + decoding + preprocessing (in a prefetch thread)."""

    path: str
    prepared: Any = None  # inferstack.pipeline.Prepared when the image is usable
    error: dict[str, str] | None = None
    status: int = EXIT_OK


def _prepare_file(pipeline: Any, path: str) -> _Prepared:
    try:
        data = Path(path).read_bytes()
    except FileNotFoundError:
        error = {"code": "file_not_found", "message": "no such file"}
        return _Prepared(path, error=error, status=EXIT_USAGE)
    except OSError as exc:
        error = {"code": "file_unreadable", "message": exc.strerror or str(exc)}
        return _Prepared(path, error=error, status=EXIT_USAGE)
    try:
        prepared = pipeline.prepare(data)
    except InferstackError as exc:
        return _Prepared(path, error=exc.to_dict(), status=EXIT_IMAGE_FAILED)
    return _Prepared(path, prepared)


def _prefetched(pipeline: Any, paths: Sequence[str], workers: int) -> Iterator[_Prepared]:
    """Images prepared by ``workers`` threads ahead of the interpreter, in input order.

    At most 2 x workers images are in flight, so memory stays flat for any number of files.
    """
    window = 2 * workers
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="prepare") as pool:
        pending: deque[Future[_Prepared]] = deque()
        remaining = iter(paths)
        for path in islice(remaining, window):
            pending.append(pool.submit(_prepare_file, pipeline, path))
        while pending:
            done = pending.popleft().result()
            for path in islice(remaining, 1):
                pending.append(pool.submit(_prepare_file, pipeline, path))
            yield done


def _classify_prepared(pipeline: Any, item: _Prepared, top_k: int, timing: bool) -> dict:
    if item.error is not None:
        return {"image": item.path, "error": item.error}
    # As the API reports it; the time an image waited in the prefetch queue is excluded.
    result = pipeline.classify(item.prepared, top_k=top_k)
    record: dict[str, Any] = {"image": item.path, "predictions": result.predictions}
    if timing:
        record["timing_ms"] = result.timing_ms
    return record


def _cmd_classify(args: argparse.Namespace) -> int:
    from inferstack.pipeline import Pipeline  # noqa: PLC0415
    from inferstack.runtime import available_cpus  # noqa: PLC0415

    classifier = _load_classifier(args.model, threads=args.threads, cache_dir=args.cache_dir)
    pipeline = Pipeline(classifier)
    status = EXIT_OK
    workers = max(1, min(4, available_cpus()))
    for item in _prefetched(pipeline, args.images, workers):
        record = _classify_prepared(pipeline, item, args.top_k, args.timing)
        print(json.dumps(record), flush=True)
        if item.error is not None:
            print(f"inferstack: {item.path}: {item.error['message']}", file=sys.stderr)
        status = max(status, item.status)
    return status


def _add_classify_command(subparsers: SubParsers) -> None:
    classify = subparsers.add_parser(
        "classify",
        help="classify image files, one JSON line per image",
        description='Print {"image": PATH, "predictions": [...]} or {"image": PATH, '
        '"error": {"code", "message"}} per image. Exit status 1 if an image could '
        "not be classified, 2 if a file could not be read or the model not loaded.",
    )
    classify.add_argument("--model", required=True, metavar="DIR_OR_S3URI")
    classify.add_argument(
        "--top-k", type=_positive_int, default=5, metavar="K", help="default: %(default)s"
    )
    classify.add_argument(
        "--threads",
        type=_positive_int,
        metavar="N",
        help="interpreter threads (default: the CPUs this process may use)",
    )
    classify.add_argument("--cache-dir", type=Path, metavar="DIR", help="cache for s3:// bundles")
    classify.add_argument(
        "--timing",
        action="store_true",
        help="add timing_ms (decode, preprocess, infer, total) to each line",
    )
    classify.add_argument("images", nargs="+", metavar="IMAGE")
    classify.set_defaults(func=_cmd_classify)


# ----------------------------------------------------------------------------- entry point

COMMAND_GROUPS: list[Callable[[SubParsers], None]] = [
    _add_model_commands,
    _add_classify_command,
    add_batch_commands,
    add_local_commands,
    add_aws_commands,
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="inferstack",
        description="Serverless TFLite image classification: model bundles, local "
        "classification, batch jobs and the local cloud.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for add_group in COMMAND_GROUPS:
        add_group(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args))
    except (CliError, InferstackError) as exc:
        _err(str(exc))
        return EXIT_USAGE
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # `inferstack classify ... | head`: the reader left; not an error worth a traceback.
        sys.stderr.close()
        return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
