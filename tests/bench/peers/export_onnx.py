"""Export the bundle's Keras ResNet-50 to ONNX (fp32) and write its calibration images.

Run by ``bench_peers.py`` with the project's Python and tf2onnx + onnx on ``PYTHONPATH``
(installed into a separate folder, so the project's virtualenv is not changed). Not a test.

The weights are the bundle's: ``model.json`` says where they came from (seeded random
weights, ImageNet, or a local file, which must then be passed with ``--weights``), and
``inferstack.modelbuild.load_keras_model`` rebuilds the same Keras model. The calibration
images are the bundle's representative dataset again (``skimage_calibration`` with the
bundle's count and seed, normalised as served), saved as one float32 array for
``onnxruntime.quantization.quantize_static``.

Keras 3's ``model.export(format="onnx")`` goes through tf2onnx with the TensorFlow backend.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import numpy as np


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bundle", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True, help="fp32 .onnx to write")
    parser.add_argument("--calibration-out", type=Path, required=True, help=".npy to write")
    parser.add_argument("--weights", help="the Keras weights file the bundle was built from")
    args = parser.parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

    from inferstack.modelbuild import (  # noqa: PLC0415
        input_spec,
        load_keras_model,
        normalize,
        skimage_calibration,
    )

    source = json.loads((args.bundle / "model.json").read_text())["source"]
    weights = source["weights"]
    if weights not in ("random", "imagenet"):
        if not args.weights:
            print(f"SKIP bundle built from weights file {weights}: pass it with --weights")
            return 3
        weights = args.weights
    calibration = source.get("calibration") or {}
    if not str(calibration.get("source", "")).startswith("photos shipped with scikit-image"):
        print(f"SKIP calibration images unknown: {calibration.get('source')!r}")
        return 3
    import tensorflow as tf  # noqa: PLC0415

    model, _ = load_keras_model(weights, seed=int(source.get("seed", 0)))
    size = int(model.input_shape[1])
    spec = input_spec(size)
    signature = [tf.TensorSpec([1, size, size, 3], tf.float32, name="input")]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    model.export(str(args.out), format="onnx", input_signature=signature, verbose=False)
    samples = skimage_calibration(int(calibration["images"]), int(source.get("seed", 0)), spec)
    batch = np.concatenate([normalize(pixels, spec) for pixels in samples]).astype(np.float32)
    np.save(args.calibration_out, batch)
    # A reference output for the exported model's check in the ONNX Runtime virtualenv.
    np.save(args.calibration_out.with_suffix(".keras-out.npy"), model(batch[:2]).numpy())
    print(f"exported {args.out} ({args.out.stat().st_size / 2**20:.1f} MiB), {len(batch)} images")
    return 0


if __name__ == "__main__":
    sys.exit(main())
