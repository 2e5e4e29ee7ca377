"""Real-time benchmark: interpreter vs. handler latency, cold start, memory, dependency size.

Run by ``make bench`` (not a pytest test)::

    .venv/bin/python tests/bench/bench_realtime.py [--iterations 30] [--cold-runs 5]

What it measures, with the ResNet-50 int8 bundle (random weights: same compute as ImageNet
weights; built with ``inferstack model build --weights random`` when missing):

- raw ``ai_edge_litert`` invoke, p50, with the handler's thread count (and 1 / all CPUs);
- the handler end to end, p50, warm, in-process: a real API Gateway REST proxy event with a
  1080p JPEG (base64 body, as API Gateway delivers binary) through ``lambda_handler``.
  Invoke and handler samples are interleaved so machine load hits both alike;
- the same warm comparison in a child process pinned to 1 CPU (what a Lambda function of up
  to 1769 MB gets; the handler then runs a 1-thread interpreter);
- the JPEG decode floor: the test image decoded at 1/8 scale, the least work libjpeg can do
  for it (entropy decoding is not reduced by DCT scaling), as a bound on what any handler
  that accepts a 1080p JPEG adds to the invoke;
- cold start: a fresh Python process from spawn to its first answer, with the model read from
  local disk, and from S3 emulated by the local cloud's emulator (``python -m
  inferstack.local.motoserver``, free port; a fresh MODEL_CACHE_DIR per run, like a new
  Lambda sandbox). Tracing is disabled, as locally, plus
  one disk variant with X-Ray tracing on as in a Lambda with active tracing;
- peak RSS of those processes (``os.wait4`` rusage, no psutil);
- unzipped size of the runtime dependencies: the built layer zip when it exists, otherwise
  the installed distributions (boto3/botocore and their deps excluded: the Lambda runtime
  provides them).

Results: a table on stdout and ``build/bench/realtime.json``. Timings on a shared machine are
noisy; the load average at start and end is recorded next to them.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import datetime as dt
import importlib.metadata as md
import io
import json
import os
import platform
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests" / "unit"))  # imagecorpus: the shared image builders

BUNDLE = REPO / "build" / "model" / "resnet50-int8"
OUT_DIR = REPO / "build" / "bench"
LAYER_ZIP = REPO / "build" / "dist" / "layer-x86_64.zip"
EVENT_TEMPLATE = REPO / "tests" / "unit" / "events" / "post_predict_binary.json"
BUCKET = "inferstack-bench-models"
PREFIX = "models/bench/"

TARGETS = {
    "ratio_max": 1.10,
    "overhead_ratio_max": 1.25,
    "cold_start_s_max": 0.8,
    "peak_rss_mb_max": 200.0,
}
RUNTIME_ROOTS = (
    "ai-edge-litert",
    "numpy",
    "pillow",
    "aws-lambda-powertools",
    "aws-xray-sdk",
    "pybase64",
)
# Provided by the Lambda Python runtime (boto3 and what it pulls in): not shipped in the layer.
RUNTIME_PROVIDED = {"boto3", "botocore", "s3transfer", "jmespath", "python-dateutil", "six"}
RUNTIME_PROVIDED |= {"urllib3"}

# The cold-start child: import the handler (Lambda init: loads the model), answer one event.
CHILD = r"""
import json, os, sys
from inferstack_predict import handler

class Context:
    function_name = "inferstack-predict"
    memory_limit_in_mb = 2048
    invoked_function_arn = "arn:aws:lambda:eu-west-1:123456789012:function:inferstack-predict"
    aws_request_id = "bench-cold-start"

with open(sys.argv[1], encoding="utf-8") as fh:
    event = json.load(fh)
response = handler.lambda_handler(event, Context())
answer = {"status": response["statusCode"], "body": json.loads(response["body"])}
sys.__stdout__.write("ANSWER " + json.dumps(answer) + "\n")
# VmHWM: peak RSS of this process image since exec (see cold_start_once).
with open("/proc/self/status", encoding="ascii") as fh:
    hwm_kib = next(line.split()[1] for line in fh if line.startswith("VmHWM:"))
sys.__stdout__.write("VMHWM " + hwm_kib + "\n")
sys.__stdout__.flush()
"""


# ----------------------------------------------------------------------------- helpers


def log(message: str) -> None:
    print(f"[bench_realtime] {message}", file=sys.stderr, flush=True)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    index = (len(ordered) - 1) * q
    low, high = int(index), min(int(index) + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (index - low)


def load_average() -> list[float]:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return []


def ensure_bundle(path: Path) -> None:
    if (path / "model.json").is_file():
        return
    log(f"building {path} (ResNet-50, random weights; TensorFlow, takes a few minutes)")
    code = "import sys; from inferstack.cli import main; sys.exit(main(sys.argv[1:]))"
    cmd = [sys.executable, "-c", code, "model", "build", "--weights", "random", "--out", str(path)]
    subprocess.run(cmd, check=True, cwd=REPO)


def test_image(width: int = 1920, height: int = 1080) -> bytes:
    """A photo-like JPEG (smooth gradient plus noise, quality 90) from the shared builders."""
    from imagecorpus import jpeg_bytes  # noqa: PLC0415

    return jpeg_bytes(width, height, quality=90, seed=7)


def api_gateway_event(image: bytes) -> dict[str, Any]:
    event = json.loads(EVENT_TEMPLATE.read_text())
    event["body"] = base64.b64encode(image).decode("ascii")
    event["isBase64Encoded"] = True
    event["queryStringParameters"] = None
    event["multiValueQueryStringParameters"] = None
    return event


def handler_env(model_uri: str, cache_dir: Path) -> dict[str, str]:
    return {
        "MODEL_URI": model_uri,
        "MODEL_CACHE_DIR": str(cache_dir),
        "POWERTOOLS_SERVICE_NAME": "inferstack-predict",
        "POWERTOOLS_METRICS_NAMESPACE": "Inferstack",
        "POWERTOOLS_TRACE_DISABLED": "true",
        "LOG_LEVEL": "INFO",
    }


# ----------------------------------------------------------------------------- warm latency


def raw_interpreter(model_path: Path, threads: int) -> Callable[[], None]:
    """A bare ai_edge_litert interpreter with a random input: returns its invoke()."""
    import numpy as np  # noqa: PLC0415
    from ai_edge_litert.interpreter import Interpreter  # noqa: PLC0415

    interpreter = Interpreter(model_path=str(model_path), num_threads=threads)
    interpreter.allocate_tensors()
    detail = interpreter.get_input_details()[0]
    info = np.iinfo(detail["dtype"])
    rng = np.random.default_rng(0)
    data = rng.integers(info.min, info.max + 1, size=detail["shape"], dtype=detail["dtype"])
    interpreter.set_tensor(detail["index"], data)
    return interpreter.invoke


def time_call(fn: Callable[[], Any]) -> float:
    start = time.perf_counter()
    fn()
    return (time.perf_counter() - start) * 1000.0


def sample(fn: Callable[[], Any], iterations: int, warmup: int = 3) -> list[float]:
    for _ in range(warmup):
        fn()
    return [time_call(fn) for _ in range(iterations)]


@contextlib.contextmanager
def environment(values: dict[str, str]) -> Iterator[None]:
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def warm_latency(
    events: dict[str, dict[str, Any]], iterations: int, bundle: Path, floor_image: bytes
) -> dict[str, Any]:
    """Interleaved samples of the JPEG decode floor of ``floor_image``, the raw invoke and
    the in-process handler, per event."""
    sink = io.StringIO()  # handler logs and EMF lines: the cost of writing them stays in
    with (
        tempfile.TemporaryDirectory() as cache,
        environment(handler_env(str(bundle), Path(cache))),
        contextlib.redirect_stdout(sink),
    ):
        from inferstack_predict import handler  # noqa: PLC0415  (init: loads the model)

    classifier = handler.MODEL.classifier
    if classifier is None:
        raise SystemExit(f"handler could not load {bundle}: {handler.MODEL.failure}")
    threads = classifier.num_threads

    class Context:
        function_name = "inferstack-predict"
        memory_limit_in_mb = 2048
        invoked_function_arn = "arn:aws:lambda:eu-west-1:123456789012:function:bench"
        aws_request_id = "bench-warm"

    def call_handler(event: dict[str, Any], timings: list[dict[str, float]]) -> float:
        start = time.perf_counter()
        with contextlib.redirect_stdout(sink):
            response = handler.lambda_handler(event, Context())
        elapsed = (time.perf_counter() - start) * 1000.0
        if response["statusCode"] != 200:
            raise SystemExit(f"handler answered {response['statusCode']}: {response['body']}")
        timings.append(json.loads(response["body"])["timing_ms"])
        sink.seek(0)
        sink.truncate()
        return elapsed

    model_path = bundle / "model.tflite"
    invoke = raw_interpreter(model_path, threads)
    for event in events.values():
        for _ in range(3):
            invoke()
            call_handler(event, [])
    invoke_ms: list[float] = []
    # Process CPU time (all threads) of the same calls: far less sensitive than wall time to
    # other processes competing for the CPUs of a shared machine.
    invoke_cpu: list[float] = []
    handler_cpu: dict[str, list[float]] = {name: [] for name in events}
    handler_ms: dict[str, list[float]] = {name: [] for name in events}
    timings: dict[str, list[dict[str, float]]] = {name: [] for name in events}
    floor_ms: list[float] = []
    floor_cpu: list[float] = []
    decode_floor = jpeg_floor_decoder(floor_image)
    for _ in range(iterations):
        cpu = time.process_time()
        floor_ms.append(time_call(decode_floor))
        floor_cpu.append((time.process_time() - cpu) * 1000.0)
        for name, event in events.items():
            cpu = time.process_time()
            invoke_ms.append(time_call(invoke))
            invoke_cpu.append((time.process_time() - cpu) * 1000.0)
            cpu = time.process_time()
            handler_ms[name].append(call_handler(event, timings[name]))
            handler_cpu[name].append((time.process_time() - cpu) * 1000.0)

    result: dict[str, Any] = {
        "num_threads": threads,
        "invoke_p50_ms": round(percentile(invoke_ms, 0.5), 2),
        "invoke_p90_ms": round(percentile(invoke_ms, 0.9), 2),
        "invoke_cpu_p50_ms": round(percentile(invoke_cpu, 0.5), 2),
        "decode_floor_ms": round(percentile(floor_ms, 0.5), 2),
        "decode_floor_cpu_ms": round(percentile(floor_cpu, 0.5), 2),
    }
    for name in events:
        suffix = "" if name == "1080p" else f"_{name}"
        stages = {
            key: round(percentile([t[key] for t in timings[name]], 0.5), 2)
            for key in ("decode", "preprocess", "infer", "total")
        }
        # What the handler adds besides decoding and inference: routing, base64, parsing,
        # logging, metrics, response JSON (per call: wall time minus the measured stages).
        overhead = [
            wall - t["decode"] - t["preprocess"] - t["infer"]
            for wall, t in zip(handler_ms[name], timings[name], strict=True)
        ]
        result[f"handler{suffix}_p50_ms"] = round(percentile(handler_ms[name], 0.5), 2)
        result[f"handler{suffix}_p90_ms"] = round(percentile(handler_ms[name], 0.9), 2)
        result[f"handler{suffix}_cpu_p50_ms"] = round(percentile(handler_cpu[name], 0.5), 2)
        result[f"handler{suffix}_stage_p50_ms"] = stages
        result[f"handler{suffix}_overhead_p50_ms"] = round(percentile(overhead, 0.5), 2)

    peers: dict[str, float | str] = {}
    cpu_count = os.cpu_count() or 1
    for label, n in (("raw_invoke_1_thread_p50_ms", 1), ("raw_invoke_all_cpus_p50_ms", cpu_count)):
        peers[label] = round(percentile(sample(raw_interpreter(model_path, n), 15), 0.5), 2)
    try:
        from tflite_runtime.interpreter import Interpreter as TfliteInterpreter  # noqa: PLC0415
    except ImportError:
        peers["tflite_runtime_p50_ms"] = "skipped: tflite-runtime is not installed"
    else:
        interp = TfliteInterpreter(model_path=str(model_path), num_threads=threads)
        interp.allocate_tensors()
        peers["tflite_runtime_p50_ms"] = round(percentile(sample(interp.invoke, 15), 0.5), 2)
    peers["keras_fp32"] = "skipped: TensorFlow start-up (~4 s) and fp32 weights are not a peer here"
    result["peers"] = peers
    return result


def jpeg_floor_decoder(image: bytes) -> Callable[[], None]:
    """Decodes ``image`` at 1/8 scale: its entropy decoding, which every decoder of this JPEG
    must do (libjpeg-turbo, as in Pillow, is the fastest CPU decoder there is)."""
    from PIL import Image  # noqa: PLC0415

    def decode() -> None:
        img = Image.open(io.BytesIO(image))
        img.draft("RGB", (1, 1))  # the smallest DCT scale libjpeg offers: 1/8
        img.load()

    return decode


def cpu_info() -> dict[str, Any]:
    """The CPU model and the instruction-set flags int8 inference speed depends on."""
    model, flags = platform.processor() or "unknown", set()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name":
                model = value.strip()
            elif key.strip() in ("flags", "Features"):  # x86 / arm64
                flags = set(value.split())
                break
    wanted = ("avx2", "avx512f", "avx512_vnni", "avx_vnni", "amx_int8", "asimddp", "i8mm")
    return {"model": model, "flags": [f for f in wanted if f in flags]}


def decode_agreement() -> dict[str, Any]:
    """Top-1 agreement of the production decode (draft mode) with a full-size decode on
    real photos, per pretrained fixture model (tests/unit/photocorpus.py)."""
    fixtures = REPO.parent / "shared" / "fixtures" / "imagenet"
    if not fixtures.is_dir():
        return {"skipped": f"pretrained fixtures not found at {fixtures}"}
    from inferstack.bundle import load_bundle  # noqa: PLC0415
    from inferstack.classifier import Classifier  # noqa: PLC0415
    from inferstack.cli import main as cli  # noqa: PLC0415
    from photocorpus import photo_jpegs, top1_agreement  # noqa: PLC0415

    jpegs = photo_jpegs(fixtures)
    result: dict[str, Any] = {}
    models = (("mobilenet_v2_1.0_224_quant", "raw"), ("tf2_mobilenet_v2_1.0_224_ptq", "tf"))
    with tempfile.TemporaryDirectory() as tmp, contextlib.redirect_stdout(io.StringIO()):
        for name, preset in models:
            out = Path(tmp) / name
            argv = ["model", "import", "--tflite", str(fixtures / f"{name}.tflite")]
            argv += ["--labels", str(fixtures / "imagenet_labels.txt"), "--preprocess", preset]
            if cli([*argv, "--out", str(out)]) != 0:
                raise SystemExit(f"cannot import {name}")
            classifier = Classifier.from_bundle(load_bundle(out), num_threads=1)
            agree, differ = top1_agreement(classifier, jpegs)
            result[name] = {"agree": agree, "images": len(jpegs), "differ": differ}
    return result


def one_cpu_latency(bundle: Path, iterations: int) -> dict[str, Any]:
    """The warm comparison in a child process pinned to one CPU (``--cpus 1 --warm-only``)."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "one-cpu.json"
        command = [sys.executable, __file__, "--warm-only", "--cpus", "1", "--out", str(out)]
        command += ["--iterations", str(iterations), "--bundle", str(bundle)]
        subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
        child = json.loads(out.read_text())
    keys = ("num_threads", "invoke_p50_ms", "handler_p50_ms", "handler_stage_p50_ms", "ratio")
    return {key: child[key] for key in keys}


# ----------------------------------------------------------------------------- cold start


@dataclass(frozen=True)
class ColdStart:
    seconds: float  # spawn to first answer, wall
    cpu_seconds: float  # user + system of the child, all threads, until exit
    peak_rss_mb: float
    model_load_seconds: float  # the handler's own "model loaded" log line (fetch + verify + init)


def cold_start_once(event_path: Path, env: dict[str, str]) -> ColdStart:
    """Spawn a fresh interpreter and wait for its first answer.

    CPU seconds are reported beside the wall time because they suffer much less from other
    processes competing for the CPUs.

    Peak RSS is the child's VmHWM. ``os.wait4``'s ``ru_maxrss`` cannot be used alone: Linux
    carries the pre-exec high-water mark into it, and subprocess spawns with vfork, so it
    reports the benchmark process's own (larger) RSS. Both are compared below and the larger
    of VmHWM and a clean ``ru_maxrss`` is kept.
    """
    child_env = {**os.environ, **env}
    start = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(event_path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        env=child_env,
        cwd=REPO,
        text=True,
    )
    answer: dict[str, Any] | None = None
    hwm_mb = 0.0
    load_seconds = float("nan")
    assert proc.stdout is not None
    for line in proc.stdout:
        if line.startswith("ANSWER "):
            elapsed = time.perf_counter() - start
            answer = json.loads(line[len("ANSWER ") :])
        elif line.startswith("VMHWM "):
            hwm_mb = int(line.split()[1]) / 1024.0
        elif '"model loaded"' in line:
            load_seconds = float(json.loads(line)["load_seconds"])
    # wait4 (not proc.wait) returns the child's resource usage.
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if answer is None or proc.returncode != 0:
        raise SystemExit(f"cold-start child failed (exit {proc.returncode}, answer {answer})")
    if answer["status"] != 200:
        raise SystemExit(f"cold-start child answered {answer['status']}: {answer['body']}")
    rusage_mb = usage.ru_maxrss / 1024.0  # KiB on Linux
    parent_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    # ru_maxrss is only the child's own when it exceeds what it inherited from this process.
    peak_mb = max(hwm_mb, rusage_mb) if rusage_mb > parent_mb else hwm_mb
    return ColdStart(elapsed, usage.ru_utime + usage.ru_stime, peak_mb, load_seconds)


def xray_env(task_root: Path) -> dict[str, str]:
    """What Lambda sets with active tracing (LAMBDA_TASK_ROOT turns tracing on in powertools)."""
    from inferstack.local.emulator import free_port  # noqa: PLC0415

    return {
        "POWERTOOLS_TRACE_DISABLED": "false",
        "LAMBDA_TASK_ROOT": str(task_root),
        "AWS_LAMBDA_FUNCTION_NAME": "inferstack-predict",
        "AWS_XRAY_CONTEXT_MISSING": "LOG_ERROR",
        "AWS_XRAY_DAEMON_ADDRESS": f"127.0.0.1:{free_port()}",
        "AWS_DEFAULT_REGION": "eu-west-1",
    }


@contextlib.contextmanager
def moto_s3_with_bundle(bundle: Path) -> Iterator[dict[str, str]]:
    """The local emulator on 127.0.0.1:<free port> holding the bundle; yields the client env."""
    import boto3  # noqa: PLC0415
    from inferstack.local.emulator import Emulator  # noqa: PLC0415

    server = Emulator().start()
    env = {
        "AWS_ENDPOINT_URL": server.url,
        "AWS_ACCESS_KEY_ID": "bench",
        "AWS_SECRET_ACCESS_KEY": "bench",
        "AWS_DEFAULT_REGION": "eu-west-1",
    }
    try:
        s3 = boto3.client(
            "s3",
            endpoint_url=env["AWS_ENDPOINT_URL"],
            region_name="eu-west-1",
            aws_access_key_id="bench",
            aws_secret_access_key="bench",
        )
        s3.create_bucket(
            Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": "eu-west-1"}
        )
        for path in sorted(bundle.iterdir()):
            if path.is_file():
                s3.upload_file(str(path), BUCKET, PREFIX + path.name)
        yield env
    finally:
        server.stop()


def cold_starts(event_path: Path, runs: int, bundle: Path) -> dict[str, Any]:
    runs_by_kind: dict[str, list[ColdStart]] = {"disk": [], "s3": [], "disk_xray": []}
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(runs):
            env = handler_env(str(bundle), Path(tmp) / f"disk-{i}")
            runs_by_kind["disk"].append(cold_start_once(event_path, env))
            # The same with X-Ray tracing on, as in a Lambda with active tracing: the SDK is
            # imported (it builds a botocore client at import). Segments go to a closed port.
            env = {**env, **xray_env(Path(tmp))}
            runs_by_kind["disk_xray"].append(cold_start_once(event_path, env))
        with moto_s3_with_bundle(bundle) as s3_env:
            for i in range(runs):
                # A fresh cache per run: every run downloads the model, like a new sandbox.
                env = {**s3_env, **handler_env(f"s3://{BUCKET}/{PREFIX}", Path(tmp) / f"s3-{i}")}
                runs_by_kind["s3"].append(cold_start_once(event_path, env))

    def median(kind: str, field_name: str) -> float:
        return round(statistics.median(getattr(r, field_name) for r in runs_by_kind[kind]), 3)

    results: dict[str, Any] = {}
    for kind, suffix in (("disk", ""), ("s3", "_s3"), ("disk_xray", "_xray")):
        results[f"cold_start{suffix}_s"] = median(kind, "seconds")
        results[f"cold_start{suffix}_cpu_s"] = median(kind, "cpu_seconds")
        results[f"cold_start{suffix}_model_load_s"] = median(kind, "model_load_seconds")
        results[f"peak_rss{suffix}_mb"] = round(max(r.peak_rss_mb for r in runs_by_kind[kind]), 1)
    results["cold_start_runs_s"] = {
        kind: [round(r.seconds, 3) for r in runs] for kind, runs in runs_by_kind.items()
    }
    return results


# ----------------------------------------------------------------------------- deps size


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _requirement_names(dist: md.Distribution) -> list[str]:
    names = []
    for requirement in dist.requires or []:
        if "extra ==" in requirement:
            continue
        match = re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)", requirement)
        if match:
            names.append(_canonical(match.group(1)))
    return names


def installed_runtime_deps() -> tuple[float, list[str]]:
    """MB of the installed runtime distributions and their dependencies (closure)."""
    seen: set[str] = set()
    todo = [_canonical(n) for n in RUNTIME_ROOTS]
    total = 0
    while todo:
        name = todo.pop()
        if name in seen or name in RUNTIME_PROVIDED:
            continue
        seen.add(name)
        try:
            dist = md.distribution(name)
        except md.PackageNotFoundError:
            continue
        for file in dist.files or []:
            path = Path(str(dist.locate_file(file)))
            if path.is_file() and "__pycache__" not in path.parts:
                total += path.stat().st_size
        todo.extend(_requirement_names(dist))
    return total / 1e6, sorted(seen)


def runtime_deps() -> dict[str, Any]:
    venv_mb, names = installed_runtime_deps()
    result: dict[str, Any] = {
        "runtime_deps_venv_mb": round(venv_mb, 1),
        "runtime_deps_venv_distributions": names,
    }
    if LAYER_ZIP.is_file():
        with zipfile.ZipFile(LAYER_ZIP) as archive:
            unzipped = sum(info.file_size for info in archive.infolist())
        result["runtime_deps_mb"] = round(unzipped / 1e6, 1)
        result["runtime_deps_source"] = f"unzipped content of {LAYER_ZIP.relative_to(REPO)}"
    else:
        result["runtime_deps_mb"] = result["runtime_deps_venv_mb"]
        result["runtime_deps_source"] = (
            "installed distributions in the venv (no layer zip built), "
            f"without {', '.join(sorted(RUNTIME_PROVIDED))} and __pycache__"
        )
    return result


# ----------------------------------------------------------------------------- report


def print_table(result: dict[str, Any]) -> None:
    peers = result["peers"]
    stages = result["handler_stage_p50_ms"]
    rows = [
        ("raw invoke p50 (handler threads)", f"{result['invoke_p50_ms']:.1f} ms", ""),
        ("handler end-to-end p50, 1080p JPEG", f"{result['handler_p50_ms']:.1f} ms", ""),
        (
            "  decode / preprocess / infer p50",
            "{decode} / {preprocess} / {infer} ms".format(**stages),
            "",
        ),
        (
            "overhead = handler - invoke p50",
            f"{result['overhead_ms']:.2f} ms",
            f"JPEG decode floor (1/8 scale) {result['decode_floor_ms']} ms",
        ),
        (
            "overhead ratio = overhead / decode floor",
            f"{result['overhead_ratio']:.3f}",
            f"<= {TARGETS['overhead_ratio_max']}; CPU time: {result['overhead_cpu_ratio']:.3f} "
            f"({result['overhead_cpu_ms']} / {result['decode_floor_cpu_ms']} ms)",
        ),
        ("ratio handler / invoke", f"{result['ratio']:.3f}", f"<= {TARGETS['ratio_max']}"),
        (
            "  floor: (invoke + JPEG decode floor) / invoke",
            f"{result['ratio_floor']:.3f}",
            f"decode at 1/8 scale {result['jpeg_decode_floor_ms']} ms",
        ),
        (
            "ratio on 1 CPU (1-thread interpreter)",
            f"{result['one_cpu']['ratio']:.3f}",
            f"{result['one_cpu']['handler_p50_ms']} / {result['one_cpu']['invoke_p50_ms']} ms",
        ),
        (
            "ratio of CPU time handler / invoke",
            f"{result['ratio_cpu']:.3f}",
            f"{result['handler_cpu_p50_ms']} / {result['invoke_cpu_p50_ms']} ms CPU",
        ),
        (
            "  ratio without the JPEG decode+resize",
            f"{result['ratio_excluding_image_decode']:.3f}",
            f"handler overhead p50 {result['handler_overhead_p50_ms']} ms",
        ),
        (
            "handler p50, 448x448 JPEG / ratio",
            f"{result['handler_448_p50_ms']:.1f} ms / {result['ratio_448']:.3f}",
            "client-side resized upload",
        ),
        (
            "cold start, model on disk (median)",
            f"{result['cold_start_s']:.3f} s",
            f"<= {TARGETS['cold_start_s_max']} (CPU {result['cold_start_cpu_s']:.3f} s, "
            f"model load {result['cold_start_model_load_s']:.3f} s)",
        ),
        (
            "cold start, model on S3 (median)",
            f"{result['cold_start_s3_s']:.3f} s",
            f"(CPU {result['cold_start_s3_cpu_s']:.3f} s, "
            f"model fetch+load {result['cold_start_s3_model_load_s']:.3f} s)",
        ),
        (
            "cold start, disk, X-Ray tracing on",
            f"{result['cold_start_xray_s']:.3f} s",
            f"(CPU {result['cold_start_xray_cpu_s']:.3f} s)",
        ),
        (
            "peak RSS, disk / S3",
            f"{result['peak_rss_mb']:.0f} / {result['peak_rss_s3_mb']:.0f} MB",
            f"<= {TARGETS['peak_rss_mb_max']:.0f}",
        ),
        (
            "runtime deps unzipped",
            f"{result['runtime_deps_mb']:.1f} MB",
            result["runtime_deps_source"],
        ),
        ("peer: raw invoke, 1 thread", f"{peers['raw_invoke_1_thread_p50_ms']} ms", ""),
        (
            "peer: raw invoke, all CPUs",
            f"{peers['raw_invoke_all_cpus_p50_ms']} ms",
            f"{os.cpu_count()} CPUs",
        ),
        ("peer: tflite_runtime", str(peers["tflite_runtime_p50_ms"]), ""),
        ("peer: Keras fp32", str(peers["keras_fp32"]), ""),
    ]
    for model, agreement in result["decode_agreement"].items():
        value = f"{agreement['agree']}/{agreement['images']}" if isinstance(agreement, dict) else ""
        rows.append((f"top-1 draft vs full decode, {model}", value, "real photos"))
    width = max(len(r[0]) for r in rows)
    cpu = result["machine"]["cpu"]
    print(
        f"\nReal-time benchmark: {result['bundle']}, {result['num_threads']} threads, "
        f"load average {result['load_average_start']} -> {result['load_average_end']}\n"
        f"CPU: {cpu['model']}, flags: {' '.join(cpu['flags']) or 'none of interest'}"
    )
    for name, value, note in rows:
        print(f"  {name:<{width}}  {value:>22}  {note}")
    print("  targets met: " + ", ".join(f"{k}={v}" for k, v in result["targets_met"].items()))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=30, help="warm samples (default 30)")
    parser.add_argument("--cold-runs", type=int, default=5, help="cold starts each (default 5)")
    parser.add_argument("--out", type=Path, default=OUT_DIR / "realtime.json")
    parser.add_argument(
        "--bundle", type=Path, default=BUNDLE, help="model bundle (default: %(default)s)"
    )
    parser.add_argument("--cpus", type=int, help="pin this process to the first N CPUs")
    parser.add_argument(
        "--warm-only", action="store_true", help="only the warm comparison (no cold starts)"
    )
    args = parser.parse_args(argv)
    if args.cpus:
        # Before the handler is imported: it sizes its interpreter from the CPUs it may use.
        os.sched_setaffinity(0, sorted(os.sched_getaffinity(0))[: args.cpus])

    bundle = args.bundle.resolve()
    if bundle == BUNDLE:
        ensure_bundle(bundle)
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    result: dict[str, Any] = {
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "cpu": cpu_info(),
            "shared": "other processes may run: see load_average_*; CPU-time figures beside",
        },
        "bundle": str(bundle),
        "load_average_start": load_average(),
    }
    image = test_image()
    small = test_image(448, 448)
    event = api_gateway_event(image)
    event_path = OUT_DIR / "event-1080p.json"
    event_path.write_text(json.dumps(event))
    result["image"] = {"width": 1920, "height": 1080, "jpeg_bytes": len(image)}
    result["image_448"] = {"width": 448, "height": 448, "jpeg_bytes": len(small)}

    log("warm latency: raw interpreter vs. handler (interleaved)")
    events = {"1080p": event, "448": api_gateway_event(small)}
    result.update(warm_latency(events, args.iterations, bundle, image))
    invoke_p50 = result["invoke_p50_ms"]
    # What the handler adds to the model, against what decoding the JPEG costs at least:
    # machine-independent, unlike ratios to the invoke (which depend on the CPU's int8 speed).
    result["overhead_ms"] = round(result["handler_p50_ms"] - invoke_p50, 2)
    result["overhead_ratio"] = round(result["overhead_ms"] / result["decode_floor_ms"], 3)
    overhead_cpu = result["handler_cpu_p50_ms"] - result["invoke_cpu_p50_ms"]
    result["overhead_cpu_ms"] = round(overhead_cpu, 2)
    result["overhead_cpu_ratio"] = round(overhead_cpu / result["decode_floor_cpu_ms"], 3)
    result["ratio"] = round(result["handler_p50_ms"] / invoke_p50, 3)
    result["ratio_448"] = round(result["handler_448_p50_ms"] / invoke_p50, 3)
    result["ratio_cpu"] = round(result["handler_cpu_p50_ms"] / result["invoke_cpu_p50_ms"], 3)
    stages = result["handler_stage_p50_ms"]
    without_image = result["handler_p50_ms"] - stages["decode"] - stages["preprocess"]
    result["ratio_excluding_image_decode"] = round(without_image / invoke_p50, 3)
    if args.warm_only:
        args.out.write_text(json.dumps(result, indent=2) + "\n")
        return 0
    result["jpeg_decode_floor_ms"] = result["decode_floor_ms"]
    log("top-1 agreement of the draft decode with a full decode (fixture models, real photos)")
    result["decode_agreement"] = decode_agreement()
    result["ratio_floor"] = round((invoke_p50 + result["jpeg_decode_floor_ms"]) / invoke_p50, 3)
    log("warm latency on 1 CPU (child process)")
    result["one_cpu"] = one_cpu_latency(bundle, args.iterations)
    log("cold starts: model on disk, then on moto S3")
    result.update(cold_starts(event_path, args.cold_runs, bundle))
    log("runtime dependency size")
    result.update(runtime_deps())
    result["load_average_end"] = load_average()
    result["targets"] = TARGETS
    result["targets_met"] = {
        "ratio": result["ratio"] <= TARGETS["ratio_max"],
        "overhead_ratio": result["overhead_ratio"] <= TARGETS["overhead_ratio_max"],
        "cold_start_s": result["cold_start_s"] <= TARGETS["cold_start_s_max"],
        "peak_rss_mb": result["peak_rss_mb"] <= TARGETS["peak_rss_mb_max"],
    }
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print_table(result)
    print(f"\nwritten: {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
