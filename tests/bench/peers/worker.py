"""One peer's per-image CPU time and latency, measured the same way for every peer.

Started by ``bench_peers.py`` with the Python of the peer's own virtualenv (this file needs
only NumPy, Pillow and the peer's runtime; the project's ``functions/`` folder is put on
``sys.path`` for the pipelines that reuse its image code). Not a pytest test.

Every pipeline takes the JPEG's bytes and returns the top-5 class indices. Per image, the
wall time (``perf_counter``) and the process CPU time of all threads (``process_time``)
around that call are recorded: warm-up calls first, then ``--iterations`` calls on the
1080p JPEG (p50/p90), then one pass over the batch images (mean per image).

The process is pinned to the first ``--threads`` CPUs before anything is imported, and the
runtime gets the same thread count. With ``--cold`` only the first request of this fresh
process is made (the parent times the process from spawn to answer).

The answer is one line on stdout: ``RESULT {json}``.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

PEERS = (
    "ours",
    "tflite-runtime",
    "onnxruntime-fp32",
    "onnxruntime-int8",
    "naive",
    "per-request-load",
)

Predict = Callable[[bytes], list[int]]


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    index = (len(ordered) - 1) * q
    low, high = int(index), min(int(index) + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (index - low)


def top5(probs: Any) -> list[int]:
    import numpy as np  # noqa: PLC0415

    flat = np.asarray(probs).reshape(-1)
    best = np.argpartition(-flat, 5)[:5]
    return [int(i) for i in best[np.argsort(-flat[best], kind="stable")]]


# ----------------------------------------------------------------------------- pipelines


def classifier_pipeline(bundle: Path, threads: int) -> tuple[Predict, dict[str, Any]]:
    """The project's own classifier: draft-mode decode, LUT quantize, invoke, top-5.

    With ai-edge-litert installed this is ours; in the tflite-runtime virtualenv the same
    code runs on tflite-runtime (inferstack.runtime falls back to it).
    """
    from inferstack.classifier import Classifier  # noqa: PLC0415
    from inferstack.runtime import interpreter_class  # noqa: PLC0415

    classifier = Classifier.from_uri(bundle, num_threads=threads)

    def predict(data: bytes) -> list[int]:
        return [p["index"] for p in classifier.classify_bytes(data, top_k=5).predictions]

    return predict, {"runtime": interpreter_class().__module__}


def onnx_pipeline(bundle: Path, model: Path, threads: int) -> tuple[Predict, dict[str, Any]]:
    """ONNX Runtime on the project's image path (draft decode + resize), float input."""
    import numpy as np  # noqa: PLC0415
    import onnxruntime as ort  # noqa: PLC0415
    from inferstack.bundle import load_bundle  # noqa: PLC0415
    from inferstack.images import ImageLimits, draft_size_for, load_image, preprocess  # noqa: PLC0415

    spec = load_bundle(bundle).metadata.input
    mean = np.asarray(spec.normalization.mean, dtype=np.float32)
    std = np.asarray(spec.normalization.std, dtype=np.float32)
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    # Idle intra-op threads spin by default: CPU time that does no work. Off, so the CPU
    # column counts work, as it does for the other runtimes.
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    session = ort.InferenceSession(str(model), options, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    limits, draft = ImageLimits(), draft_size_for(spec)

    def predict(data: bytes) -> list[int]:
        pixels = preprocess(load_image(data, limits, draft_size=draft), spec)
        tensor = ((pixels.astype(np.float32) - mean) / std)[None, ...]
        return top5(session.run(None, {name: tensor})[0])

    return predict, {"runtime": f"onnxruntime {ort.__version__}", "model": model.name}


def naive_pipeline(
    bundle: Path, threads: int, *, load_per_request: bool
) -> tuple[Predict, dict[str, Any]]:
    """What tutorials and the original AWS sample do: full-size decode, resize, float32
    normalisation in NumPy, quantize, invoke; optionally loading the model per request."""
    import numpy as np  # noqa: PLC0415
    from inferstack.runtime import interpreter_class  # noqa: PLC0415
    from PIL import Image  # noqa: PLC0415

    metadata = json.loads((bundle / "model.json").read_text())
    norm = metadata["input"]["normalization"]
    mean = np.asarray(norm["mean"], dtype=np.float32)
    std = np.asarray(norm["std"], dtype=np.float32)
    bgr = metadata["input"]["channel_order"] == "BGR"
    size = (metadata["input"]["width"], metadata["input"]["height"])
    model_path = str(bundle / "model.tflite")
    interpreter_cls = interpreter_class()

    def load() -> Any:
        interpreter = interpreter_cls(model_path=model_path, num_threads=threads)
        interpreter.allocate_tensors()
        return interpreter

    loaded = None if load_per_request else load()

    def predict(data: bytes) -> list[int]:
        interpreter = load() if loaded is None else loaded
        img = Image.open(io.BytesIO(data)).convert("RGB").resize(size, Image.Resampling.BILINEAR)
        x = np.asarray(img, dtype=np.float32)
        if bgr:
            x = x[..., ::-1]
        x = (x - mean) / std
        inp = interpreter.get_input_details()[0]
        out = interpreter.get_output_details()[0]
        scale, zero = inp["quantization"]
        if scale:
            info = np.iinfo(inp["dtype"])
            x = np.clip(np.round(x / scale + zero), info.min, info.max)
        interpreter.set_tensor(inp["index"], x.astype(inp["dtype"])[None, ...])
        interpreter.invoke()
        raw = interpreter.get_tensor(out["index"]).astype(np.float32)
        out_scale, out_zero = out["quantization"]
        return top5((raw - out_zero) * out_scale if out_scale else raw)

    return predict, {"runtime": interpreter_cls.__module__}


def make_pipeline(
    peer: str, bundle: Path, model: Path | None, threads: int
) -> tuple[Predict, dict]:
    if peer in ("ours", "tflite-runtime"):
        return classifier_pipeline(bundle, threads)
    if peer.startswith("onnxruntime"):
        if model is None:
            raise SystemExit(f"{peer} needs --model")
        return onnx_pipeline(bundle, model, threads)
    return naive_pipeline(bundle, threads, load_per_request=peer == "per-request-load")


# ----------------------------------------------------------------------------- measurement


def timed(predict: Predict, data: bytes) -> tuple[float, float, list[int]]:
    cpu, wall = time.process_time(), time.perf_counter()
    answer = predict(data)
    return (time.perf_counter() - wall) * 1000.0, (time.process_time() - cpu) * 1000.0, answer


def measure(
    predict: Predict, image: bytes, batch: list[bytes], iterations: int, warmup: int
) -> dict[str, Any]:
    for _ in range(warmup):
        predict(image)
    walls, cpus = [], []
    answer: list[int] = []
    for _ in range(iterations):
        wall, cpu, answer = timed(predict, image)
        walls.append(wall)
        cpus.append(cpu)
    result: dict[str, Any] = {
        "iterations": iterations,
        "wall_p50_ms": round(percentile(walls, 0.5), 2),
        "wall_p90_ms": round(percentile(walls, 0.9), 2),
        "cpu_p50_ms": round(percentile(cpus, 0.5), 2),
        "cpu_p90_ms": round(percentile(cpus, 0.9), 2),
        "top5_1080p": answer,
    }
    if batch:
        cpu, wall = time.process_time(), time.perf_counter()
        for data in batch:
            predict(data)
        result["batch_images"] = len(batch)
        result["batch_cpu_ms_per_image"] = round((time.process_time() - cpu) * 1000 / len(batch), 2)
        result["batch_wall_ms_per_image"] = round(
            (time.perf_counter() - wall) * 1000 / len(batch), 2
        )
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--peer", choices=PEERS, required=True)
    parser.add_argument("--bundle", type=Path, required=True)
    parser.add_argument("--model", type=Path, help="the .onnx file of an onnxruntime peer")
    parser.add_argument("--functions", type=Path, required=True, help="the project's functions/")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--image", type=Path, required=True, help="the 1080p JPEG")
    parser.add_argument("--batch-dir", type=Path, help="JPEGs for the per-image batch mean")
    parser.add_argument("--iterations", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--cold", action="store_true", help="first request only")
    args = parser.parse_args(argv)

    cpus = sorted(os.sched_getaffinity(0))
    if args.threads > len(cpus):
        raise SystemExit(f"{args.threads} threads asked, {len(cpus)} CPUs available")
    os.sched_setaffinity(0, cpus[: args.threads])
    sys.path.insert(0, str(args.functions))
    image = args.image.read_bytes()
    if args.cold:
        started = time.process_time()
        predict, info = make_pipeline(args.peer, args.bundle, args.model, args.threads)
        wall, cpu, answer = timed(predict, image)
        info.update(
            first_request_wall_ms=round(wall, 2),
            first_request_cpu_ms=round(cpu, 2),
            cpu_before_answer_ms=round((time.process_time() - started) * 1000, 1),
            top5_1080p=answer,
        )
        print("RESULT " + json.dumps(info), flush=True)
        return 0
    batch = [p.read_bytes() for p in sorted(args.batch_dir.glob("*.jpg"))] if args.batch_dir else []
    predict, info = make_pipeline(args.peer, args.bundle, args.model, args.threads)
    info.update(measure(predict, image, batch, args.iterations, args.warmup))
    info["threads"] = args.threads
    print("RESULT " + json.dumps(info), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
