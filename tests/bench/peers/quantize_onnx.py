"""Static int8 quantization of the exported ONNX ResNet-50 with ONNX Runtime's tooling.

Run by ``bench_peers.py`` in the ONNX Runtime virtualenv. Not a test.

Same calibration images as the TFLite bundle's representative dataset (written by
``export_onnx.py``), MinMax ranges like TFLite's converter, per-channel int8 weights,
QDQ format. Activations are uint8 (U8S8): on x86-64 ONNX Runtime's int8 kernels are built
for that pair (a spot check here: 16.5 ms of CPU per invoke against 39 ms with int8
activations). Before quantizing, the fp32 model is checked against Keras's own output.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, required=True, help="fp32 .onnx")
    parser.add_argument("--calibration", type=Path, required=True, help=".npy from the export")
    parser.add_argument("--out", type=Path, required=True, help="int8 .onnx to write")
    args = parser.parse_args(argv)

    import onnxruntime as ort  # noqa: PLC0415
    from onnxruntime.quantization import (  # noqa: PLC0415
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )
    from onnxruntime.quantization.shape_inference import quant_pre_process  # noqa: PLC0415

    samples = np.load(args.calibration)
    session = ort.InferenceSession(str(args.model), providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    reference = np.load(args.calibration.with_suffix(".keras-out.npy"))
    for i, expected in enumerate(reference):
        got = session.run(None, {name: samples[i : i + 1]})[0][0]
        if np.abs(got - expected).max() > 1e-4:
            print(f"fp32 ONNX differs from Keras: max |diff| {np.abs(got - expected).max()}")
            return 1

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.index = 0

        def get_next(self) -> dict[str, np.ndarray] | None:
            if self.index >= len(samples):
                return None
            self.index += 1
            return {name: samples[self.index - 1 : self.index]}

    with tempfile.TemporaryDirectory() as tmp:
        prepared = Path(tmp) / "prepared.onnx"
        quant_pre_process(str(args.model), str(prepared), skip_symbolic_shape=True)
        quantize_static(
            str(prepared),
            str(args.out),
            Reader(),
            quant_format=QuantFormat.QDQ,
            per_channel=True,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            calibrate_method=CalibrationMethod.MinMax,
        )
    print(f"quantized {args.out} ({args.out.stat().st_size / 2**20:.1f} MiB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
