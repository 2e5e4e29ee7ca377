"""The arm64 deployment artifacts run: layer + predict zip on arm64 Python 3.13, under qemu.

The arm64 layer (build/dist/layer-arm64.zip, built there by layers/build.py when missing or
out of date) is extracted as <tmp>/opt and the predict function zip, built from the current
source, as <tmp>/var/task. Debian trixie's arm64 python3.13 (inferstack.local.rootfs, cached in
build/rootfs/) runs under qemu-aarch64-static with the module search path of the managed
runtime (the function's code, then the layer's python/lib/python3.13/site-packages and python/;
https://docs.aws.amazon.com/lambda/latest/dg/python-package.html), imports the real-time
handler from there (the model loads at import, as in Lambda's init) and answers an API Gateway
REST proxy event carrying a real photo.

The expected class is the known content of the photo (../shared/fixtures/imagenet/README.md)
and must equal what the same bundle gives on this machine with the host's LiteRT.

Needs root (the rootfs build), the Debian mirror the first time, and the wheels of the arm64
layer (pip cache in build/cache). Measured on 2 busy vCPUs: the arm64 rootfs build 21-46 s
(once), the emulated run 12-17 s (7 s of it the init: the layer holds no .pyc files, so the
emulated Python compiles what it imports).
"""

from __future__ import annotations

import base64
import copy
import importlib.util
import json
import os
import subprocess
import sys
import time
import zipfile
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from inferstack.bundle import load_bundle
from inferstack.classifier import Classifier
from inferstack.cli import main as inferstack_cli
from inferstack.images import ImageLimits, load_image, preprocess
from inferstack.local import rootfs

REPO_ROOT = Path(__file__).resolve().parents[2]
DIST = REPO_ROOT / "build" / "dist"
EVENT = REPO_ROOT / "tests" / "unit" / "events" / "post_predict_binary.json"
PHOTO = "parrot.jpg"
KNOWN_TOP1 = "macaw"  # the fixtures README: what this photo shows
RUN_TIMEOUT = 300

# Runs in the emulated arm64 Python: only the standard library and the artifacts.
DRIVER = r"""
import json, os, platform, sys, time

started = time.monotonic()
from inferstack_predict import handler
init_s = time.monotonic() - started


class Context:
    function_name = "inferstack-predict"
    memory_limit_in_mb = 2048
    invoked_function_arn = "arn:aws:lambda:eu-west-1:123456789012:function:inferstack-predict"
    aws_request_id = "arm64-smoke-0001"


with open(sys.argv[1]) as f:
    event = json.load(f)
started = time.monotonic()
response = handler.lambda_handler(event, Context())
invoke_s = time.monotonic() - started
modules = ("inferstack_predict.handler", "inferstack.classifier", "ai_edge_litert.interpreter",
           "numpy", "PIL.Image", "aws_lambda_powertools", "boto3")
print("ARM64-RESULT " + json.dumps({
    "machine": platform.machine(),
    "python": list(sys.version_info[:2]),
    "executable": sys.executable,
    "path": sys.path,
    "files": {name: sys.modules[name].__file__ for name in modules if name in sys.modules},
    "interpreter": type(handler.MODEL.get()[1]._interpreter).__module__,
    "response": response,
    "init_s": init_s,
    "invoke_s": invoke_s,
}))
"""


def _load_layer_builder() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "layers_build_arm64", REPO_ROOT / "layers" / "build.py"
    )
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def arm64_rootfs() -> Path:
    if os.geteuid() != 0:
        pytest.skip("building and running the root file system needs root")
    started = time.monotonic()
    path = rootfs.ensure_rootfs("arm64")
    print(f"arm64 rootfs {path} ready in {time.monotonic() - started:.1f} s")
    return path


@pytest.fixture(scope="module")
def arm64_artifacts(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(layer zip, predict zip): the current source's predict zip and an up-to-date layer.

    The layer is build/dist's, built there as `make build` does when missing or out of date
    (a fresh clone), so the stack the integration tests deploy reuses it.
    """
    build = _load_layer_builder()
    dist = tmp_path_factory.mktemp("dist-arm64")
    predict = build.build_function(REPO_ROOT / "functions", build.FUNCTIONS[0], dist)
    deps = build.project_dependencies(REPO_ROOT / "pyproject.toml")
    pip = [sys.executable, "-m", "pip"]
    started = time.monotonic()
    layer = build.build_layer("arm64", deps, DIST, REPO_ROOT / "build" / "cache", pip=pip)
    print(f"arm64 layer {layer} ready in {time.monotonic() - started:.1f} s")
    return layer, predict


@pytest.fixture(scope="module")
def bundle(imagenet_fixtures: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The fixture MobileNetV2 (uint8, 3.6 MB) as a model bundle: quick under emulation."""
    out = tmp_path_factory.mktemp("bundle") / "mobilenet"
    status = inferstack_cli(
        [
            "model", "import",
            "--tflite", str(imagenet_fixtures / "mobilenet_v2_1.0_224_quant.tflite"),
            "--labels", str(imagenet_fixtures / "imagenet_labels.txt"),
            "--preprocess", "raw",
            "--out", str(out),
        ]
    )  # fmt: skip
    assert status == 0
    return out


def _host_top1(bundle: Path, photo: bytes) -> str:
    """The same bundle and photo through the host's LiteRT (x86_64, the venv's Python)."""
    classifier = Classifier.from_bundle(load_bundle(bundle))
    image = load_image(photo, ImageLimits(), draft_size=classifier.draft_size)
    predictions = classifier.classify_array(preprocess(image, classifier.input_spec), top_k=1)
    return str(predictions[0]["label"])


def _event(photo: bytes) -> dict[str, Any]:
    event = copy.deepcopy(json.loads(EVENT.read_text()))
    event["body"] = base64.b64encode(photo).decode("ascii")
    event["isBase64Encoded"] = True
    return event


def run_in_arm64(
    root: Path, layer: Path, function: Path, bundle: Path, event: dict[str, Any], work: Path
) -> tuple[subprocess.CompletedProcess[str], dict[str, Any] | None]:
    """Extract the artifacts as Lambda does and invoke the handler under qemu-aarch64."""
    task, opt = work / "var" / "task", work / "opt"
    with zipfile.ZipFile(function) as zf:
        zf.extractall(task)
    with zipfile.ZipFile(layer) as zf:
        zf.extractall(opt)
    (work / "driver.py").write_text(DRIVER)
    (work / "event.json").write_text(json.dumps(event))
    (work / "tmp").mkdir()
    env = {
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "LANG": "C.UTF-8",
        "TZ": ":UTC",
        "HOME": str(work / "tmp"),
        "TMPDIR": str(work / "tmp"),
        "LAMBDA_TASK_ROOT": str(task),
        "PYTHONPATH": ":".join(
            (str(task), f"{opt}/python/lib/python3.13/site-packages", f"{opt}/python")
        ),
        "_HANDLER": "inferstack_predict.handler.lambda_handler",
        "AWS_LAMBDA_FUNCTION_NAME": "inferstack-predict",
        "AWS_REGION": "eu-west-1",
        "AWS_DEFAULT_REGION": "eu-west-1",
        "MODEL_URI": str(bundle),
        "MODEL_CACHE_DIR": str(work / "tmp" / "model"),
        "POWERTOOLS_SERVICE_NAME": "inferstack-predict",
        "POWERTOOLS_METRICS_NAMESPACE": "Inferstack",
        "POWERTOOLS_TRACE_DISABLED": "true",
    }
    argv = rootfs.rootfs_command(
        root, ["/usr/bin/python3.13", str(work / "driver.py"), str(work / "event.json")], "arm64"
    )
    done = subprocess.run(
        argv, env=env, capture_output=True, text=True, timeout=RUN_TIMEOUT, check=False
    )
    lines = [ln for ln in done.stdout.splitlines() if ln.startswith("ARM64-RESULT ")]
    result = json.loads(lines[-1].removeprefix("ARM64-RESULT ")) if lines else None
    return done, result


def test_arm64_layer_and_function_classify_a_photo(
    arm64_rootfs: Path,
    arm64_artifacts: tuple[Path, Path],
    bundle: Path,
    imagenet_fixtures: Path,
    tmp_path: Path,
) -> None:
    photo = (imagenet_fixtures / PHOTO).read_bytes()
    expected = _host_top1(bundle, photo)
    assert expected == KNOWN_TOP1, f"the host's LiteRT sees {expected!r} in {PHOTO}"
    layer, function = arm64_artifacts

    started = time.monotonic()
    done, result = run_in_arm64(arm64_rootfs, layer, function, bundle, _event(photo), tmp_path)
    elapsed = time.monotonic() - started
    assert done.returncode == 0 and result is not None, (
        f"the arm64 handler failed (exit {done.returncode}):\n{done.stderr[-4000:]}"
    )
    print(f"arm64 run {elapsed:.1f} s (init {result['init_s']:.1f} s, "
          f"invoke {result['invoke_s']:.1f} s)")  # fmt: skip

    # It ran as arm64 CPython 3.13, with everything imported from the extracted artifacts.
    assert result["machine"] == "aarch64"
    assert result["python"] == [3, 13]
    assert result["executable"].startswith(str(arm64_rootfs))
    task, opt = tmp_path / "var" / "task", tmp_path / "opt" / "python"
    files = result["files"]
    assert files["inferstack_predict.handler"].startswith(f"{task}/")
    assert files["inferstack.classifier"].startswith(f"{task}/")
    for name in ("ai_edge_litert.interpreter", "numpy", "PIL.Image", "aws_lambda_powertools"):
        assert files[name].startswith(f"{opt}/"), (name, files[name])
    assert result["interpreter"].startswith("ai_edge_litert")

    response = result["response"]
    assert response["statusCode"] == 200, response
    body = json.loads(response["body"])
    top1 = body["predictions"][0]
    assert top1["label"] == expected, body["predictions"]
    assert top1["probability"] > 0.5
