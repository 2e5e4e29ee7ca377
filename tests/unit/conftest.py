"""Fixtures shared by the core unit tests: bundles built from real and tiny models."""

from __future__ import annotations

import copy
import hashlib
import importlib.util
import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from inferstack.bundle import ModelBundle, load_bundle, write_bundle
from inferstack.classifier import Classifier

HERE = Path(__file__).resolve().parent
TINY_LABELS = ["class zero, zero", "class one", "class two", "class three", "class four"]


def base_metadata(**input_overrides: Any) -> dict[str, Any]:
    """A valid model.json (sha256 is filled in by write_bundle) for a 224x224 raw model."""
    meta: dict[str, Any] = {
        "schema_version": 1,
        "name": "test-model",
        "version": "1",
        "input": {
            "height": 224,
            "width": 224,
            "channel_order": "RGB",
            "resize": "bilinear",
            "crop_fraction": 1.0,
            "normalization": {"type": "raw"},
        },
        "output": {"activation": "softmax", "label_offset": 1},
        "source": {"kind": "import", "weights": "test"},
        "predictions_meaningful": True,
    }
    meta["input"].update(input_overrides)
    return meta


def write_raw_bundle(path: Path, files: dict[str, bytes | str]) -> Path:
    """A bundle folder written file by file, without validation (for broken-bundle tests)."""
    path.mkdir(parents=True, exist_ok=True)
    for name, content in files.items():
        target = path / name
        if isinstance(content, str):
            target.write_text(content, encoding="utf-8")
        else:
            target.write_bytes(content)
    return path


@pytest.fixture
def fake_bundle_files() -> dict[str, bytes | str]:
    """Bundle contents whose tflite is opaque bytes: enough for load/verify, not to run."""
    tflite = b"TFL3" + bytes(range(256)) * 64
    meta = base_metadata()
    meta["sha256"] = hashlib.sha256(tflite).hexdigest()
    return {
        "model.tflite": tflite,
        "labels.txt": "background\nfirst, 1st\nsecond\n",
        "model.json": json.dumps(meta),
    }


@pytest.fixture(scope="session")
def mobilenet_bundle(imagenet_fixtures: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The fixture MobileNetV2 (uint8, raw pixels, softmax, background at 0), imported."""
    from inferstack.cli import main  # noqa: PLC0415

    out = tmp_path_factory.mktemp("bundles") / "mobilenet"
    status = main(
        [
            "model",
            "import",
            "--tflite",
            str(imagenet_fixtures / "mobilenet_v2_1.0_224_quant.tflite"),
            "--labels",
            str(imagenet_fixtures / "imagenet_labels.txt"),
            "--preprocess",
            "raw",
            "--out",
            str(out),
        ]
    )
    assert status == 0
    return out


@pytest.fixture(scope="session")
def tf2_bundle(imagenet_fixtures: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The TF2 post-training-quantized MobileNetV2: input scale 2/255, zero point 127 = "tf"."""
    from inferstack.cli import main  # noqa: PLC0415

    out = tmp_path_factory.mktemp("bundles") / "tf2"
    status = main(
        [
            "model",
            "import",
            "--tflite",
            str(imagenet_fixtures / "tf2_mobilenet_v2_1.0_224_ptq.tflite"),
            "--labels",
            str(imagenet_fixtures / "imagenet_labels.txt"),
            "--preprocess",
            "tf",
            "--out",
            str(out),
        ]
    )
    assert status == 0
    return out


@pytest.fixture(scope="session")
def mobilenet(mobilenet_bundle: Path) -> Classifier:
    return Classifier.from_bundle(load_bundle(mobilenet_bundle))


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Tiny int8/uint8/float models built by tinymodels.py (needs TensorFlow, ~10 s)."""
    if importlib.util.find_spec("tensorflow") is None:
        pytest.skip("tensorflow is not installed: cannot build the tiny test models")
    out = tmp_path_factory.mktemp("tiny-models")
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "CUDA_VISIBLE_DEVICES": ""}
    proc = subprocess.run(
        [sys.executable, str(HERE / "tinymodels.py"), str(out)],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
        check=False,
    )
    assert proc.returncode == 0, f"building tiny models failed:\n{proc.stderr[-3000:]}"
    return out


BundleFactory = Callable[..., ModelBundle]


@pytest.fixture
def tiny_bundle(tiny_models: Path, tmp_path: Path) -> BundleFactory:
    """make(model_name, *, activation, label_offset, labels, **input_overrides) -> bundle."""
    from tinymodels import MEAN, SIZE, STD  # noqa: PLC0415

    counter = iter(range(1000))

    def make(
        name: str,
        *,
        activation: str,
        label_offset: int = 0,
        labels: list[str] | None = None,
        normalization: dict[str, Any] | None = None,
        **input_overrides: Any,
    ) -> ModelBundle:
        meta = copy.deepcopy(base_metadata(**{"height": SIZE, "width": SIZE, **input_overrides}))
        meta["input"]["normalization"] = normalization or {
            "type": "mean_std",
            "mean": list(MEAN),
            "std": list(STD),
        }
        meta["output"] = {"activation": activation, "label_offset": label_offset}
        meta["name"] = name
        return write_bundle(
            tmp_path / f"{name}-{next(counter)}",
            tflite=tiny_models / f"{name}.tflite",
            labels=TINY_LABELS if labels is None else labels,
            metadata=meta,
        )

    return make


@pytest.fixture(autouse=True)
def _botocore_object_store(monkeypatch: pytest.MonkeyPatch) -> None:
    """Unit tests run the batch worker against in-process moto, which intercepts botocore but
    not the AWS Common Runtime's S3 client the worker otherwise picks (that one is tested
    against a moto server in test_batch_s3_store.py, which unsets this)."""
    monkeypatch.setenv("INFERSTACK_S3_CLIENT", "botocore")
