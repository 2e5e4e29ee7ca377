"""Peers in the same run: what a user would pick instead, on this machine and these images.

Run by ``make bench`` (not a pytest test)::

    .venv/bin/python tests/bench/peers/bench_peers.py [--iterations 30] [--threads 1,2]

Every peer is measured by ``worker.py`` in a process of its own, pinned to the first N CPUs
with an N-thread runtime, the same way: per-image process CPU time (``process_time``, all
threads) and wall latency of "JPEG bytes -> top-5", p50 and p90 over the 1080p JPEG of the
real-time benchmark, and the mean CPU per image over a set of the batch benchmark's images.

- ``ours``: the project's classifier (ai-edge-litert, draft-mode decode, LUT quantize);
- ``tflite-runtime``: the same code and the same int8 ``.tflite`` on tflite-runtime 2.14
  (needs numpy<2: its own virtualenv under ``build/bench/venvs/``);
- ``onnxruntime-fp32`` / ``onnxruntime-int8``: the bundle's Keras ResNet-50 (same weights)
  exported to ONNX with tf2onnx, and statically quantized with ONNX Runtime's tooling on the
  bundle's calibration images; the project's image path in front (own virtualenv);
- ``naive``: full-size Pillow decode, resize, float32 normalisation in NumPy, then our
  interpreter, as tutorials and the original AWS sample do;
- ``per-request-load``: the same, loading the model in every request, as the original sample
  does; its first request in a fresh process (cold) is timed from spawn to answer, beside
  ours (model loaded at init, as in Lambda).

A peer that cannot be installed is skipped with the reason printed. Virtualenvs, tools and
exported models are cached under ``build/bench/`` (the first run installs and exports: a
few minutes; later runs only measure). Results: a table on stdout and
``build/bench/peers.json``. The machine may be shared: CPU time per image is the main
measure; wall times move with other load.
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[3]
HERE = Path(__file__).resolve().parent
BUNDLE = REPO / "build" / "model" / "resnet50-int8"
OUT_DIR = REPO / "build" / "bench"
WORK = OUT_DIR / "peers"
VENVS = OUT_DIR / "venvs"
FUNCTIONS = REPO / "functions"
BATCH_IMAGES = 16

# Pinned per virtualenv; pip reads its index from the machine's configuration.
VENV_REQUIREMENTS: dict[str, list[str]] = {
    "tflite-runtime": ["tflite-runtime==2.14.0", "numpy==1.26.4", "pillow==13.0.0"],
    "onnxruntime": [
        "onnxruntime==1.31.1",
        "onnx==1.23.2",
        "ml_dtypes==0.7.0",
        "numpy==2.4.6",
        "pillow==13.0.0",
        "protobuf==7.36.2",
        "flatbuffers==25.12.19",
    ],
}
# Installed into a folder put on PYTHONPATH of the project's own Python (which has
# TensorFlow and Keras): no second TensorFlow, and the project's virtualenv is not changed.
EXPORT_TOOLS = ["tf2onnx==1.17.0", "onnx==1.23.2"]
# ONNX conversion settings: a change invalidates the cached models.
ONNX_RECIPE = "keras-export-tf2onnx-1.17.0; quantize_static QDQ U8S8 per-channel MinMax"

PEER_ORDER = (
    "ours",
    "tflite-runtime",
    "onnxruntime-int8",
    "onnxruntime-fp32",
    "naive",
    "per-request-load",
)
PEER_VENV = {
    "tflite-runtime": "tflite-runtime",
    "onnxruntime-int8": "onnxruntime",
    "onnxruntime-fp32": "onnxruntime",
}
DESCRIPTION = {
    "ours": "inferstack classifier, ai-edge-litert int8",
    "tflite-runtime": "same code and .tflite, tflite-runtime 2.14",
    "onnxruntime-int8": "ONNX Runtime 1.31.1, static int8 (same calibration)",
    "onnxruntime-fp32": "ONNX Runtime 1.31.1, fp32 export",
    "naive": "full decode + resize + float32 NumPy, our interpreter",
    "per-request-load": "naive, model loaded in every request",
}


def log(message: str) -> None:
    print(f"[bench_peers] {message}", file=sys.stderr, flush=True)


def cpu_model() -> str:
    with Path("/proc/cpuinfo").open(encoding="ascii", errors="replace") as fh:
        for line in fh:
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown CPU"


def cpu_flags() -> list[str]:
    wanted = {"avx2", "avx512f", "avx512_vnni", "avx_vnni", "amx_int8", "asimddp", "i8mm"}
    with Path("/proc/cpuinfo").open(encoding="ascii", errors="replace") as fh:
        for line in fh:
            if line.startswith(("flags", "Features")):
                return sorted(wanted & set(line.split(":", 1)[1].split()))
    return []


def load_average() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


# ----------------------------------------------------------------------------- setup


def ensure_bundle(path: Path) -> None:
    if (path / "model.json").is_file():
        return
    log(f"building {path} (ResNet-50, random weights; TensorFlow, takes a few minutes)")
    code = "import sys; from inferstack.cli import main; sys.exit(main(sys.argv[1:]))"
    cmd = [sys.executable, "-c", code, "model", "build", "--weights", "random", "--out", str(path)]
    subprocess.run(cmd, check=True, cwd=REPO)


def base_python() -> str:
    """The interpreter the project's virtualenv was made from (the machine's Python)."""
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    candidate = Path(sys.base_prefix) / "bin" / f"python{version}"
    return str(candidate if candidate.exists() else Path(sys.base_prefix) / "bin" / "python3")


def pip_install(python: str, args: list[str], log_path: Path) -> str | None:
    """Run pip; None on success, else the reason (last lines of its output)."""
    command = [python, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", *args]
    with log_path.open("w") as fh:
        done = subprocess.run(command, stdout=fh, stderr=subprocess.STDOUT, check=False)
    if done.returncode == 0:
        return None
    lines = [ln for ln in log_path.read_text().splitlines() if ln.strip()]
    return " | ".join(lines[-2:]) or f"pip exited {done.returncode}"


def ensure_venv(name: str) -> tuple[Path | None, str | None]:
    """(python, None) of a virtualenv with the pinned requirements, or (None, reason)."""
    requirements = VENV_REQUIREMENTS[name]
    root = VENVS / name
    python = root / "bin" / "python"
    stamp = root / ".requirements"
    wanted = "\n".join(requirements) + "\n"
    if python.exists() and stamp.is_file() and stamp.read_text() == wanted:
        return python, None
    log(f"creating virtualenv {root.relative_to(REPO)}: {' '.join(requirements)}")
    VENVS.mkdir(parents=True, exist_ok=True)
    made = subprocess.run(
        [base_python(), "-m", "venv", "--clear", str(root)],
        check=False,
        capture_output=True,
        text=True,
    )
    if made.returncode != 0:
        return None, f"cannot create a virtualenv: {made.stderr.strip()[-200:]}"
    failure = pip_install(str(python), requirements, VENVS / f"{name}.log")
    if failure:
        return None, f"cannot install {' '.join(requirements)}: {failure}"
    stamp.write_text(wanted)
    return python, None


def ensure_export_tools() -> tuple[Path | None, str | None]:
    target = VENVS / "onnx-export"
    stamp = target / ".requirements"
    wanted = "\n".join(EXPORT_TOOLS) + "\n"
    if stamp.is_file() and stamp.read_text() == wanted:
        return target, None
    log(f"installing {' '.join(EXPORT_TOOLS)} into {target.relative_to(REPO)}")
    target.mkdir(parents=True, exist_ok=True)
    # --no-deps: their dependencies (numpy, protobuf, flatbuffers, requests) are the
    # project's own, already installed next to TensorFlow.
    args = ["--no-deps", "--upgrade", "--target", str(target), *EXPORT_TOOLS]
    failure = pip_install(sys.executable, args, VENVS / "onnx-export.log")
    if failure:
        return None, f"cannot install {' '.join(EXPORT_TOOLS)}: {failure}"
    stamp.write_text(wanted)
    return target, None


def ensure_onnx_models(
    bundle: Path, ort_python: Path, weights: str | None
) -> tuple[dict[str, Path], str | None]:
    """fp32 and int8 ONNX models of the bundle's Keras model, cached by the bundle's sha256."""
    sha = json.loads((bundle / "model.json").read_text())["sha256"]
    key = hashlib.sha256(f"{sha}|{ONNX_RECIPE}|{weights}".encode()).hexdigest()[:16]
    folder = WORK / "onnx" / key
    models = {"fp32": folder / "resnet50-fp32.onnx", "int8": folder / "resnet50-int8.onnx"}
    if all(p.is_file() for p in models.values()):
        return models, None
    tools, reason = ensure_export_tools()
    if tools is None:
        return {}, reason
    folder.mkdir(parents=True, exist_ok=True)
    calibration = folder / "calibration.npy"
    log("exporting the bundle's Keras ResNet-50 to ONNX (TensorFlow; about a minute)")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tools), str(FUNCTIONS)])}
    export = [sys.executable, str(HERE / "export_onnx.py"), "--bundle", str(bundle)]
    export += ["--out", str(models["fp32"]), "--calibration-out", str(calibration)]
    if weights:
        export += ["--weights", weights]
    done = subprocess.run(export, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        tail = (done.stdout + done.stderr).strip().splitlines()[-3:]
        return {}, "ONNX export failed: " + " | ".join(tail)
    log("quantizing the ONNX model (static int8, the bundle's calibration images)")
    quantize = [str(ort_python), str(HERE / "quantize_onnx.py"), "--model", str(models["fp32"])]
    quantize += ["--calibration", str(calibration), "--out", str(models["int8"])]
    done = subprocess.run(quantize, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        tail = (done.stdout + done.stderr).strip().splitlines()[-3:]
        return {"fp32": models["fp32"]}, "ONNX quantization failed: " + " | ".join(tail)
    calibration.unlink(missing_ok=True)  # 60 MB, only needed to quantize
    return models, None


def write_images() -> tuple[Path, Path | None, dict[str, Any]]:
    """The real-time benchmark's 1080p JPEG and some of the batch benchmark's JPEGs."""
    sys.path.insert(0, str(REPO / "tests" / "unit"))
    sys.path.insert(0, str(REPO / "tests" / "bench"))
    from imagecorpus import jpeg_bytes  # noqa: PLC0415

    folder = WORK / "images"
    folder.mkdir(parents=True, exist_ok=True)
    image = folder / "1080p.jpg"
    # As bench_realtime.test_image(): the same builder, size, quality and seed.
    data = jpeg_bytes(1920, 1080, quality=90, seed=7)
    image.write_bytes(data)
    info: dict[str, Any] = {"width": 1920, "height": 1080, "jpeg_bytes": len(data)}
    batch_dir = folder / "batch"
    try:
        from bench_batch import make_images  # noqa: PLC0415
    except ImportError as exc:
        log(f"no batch image set: {exc}")
        return image, None, info
    batch_dir.mkdir(exist_ok=True)
    for old in batch_dir.glob("*.jpg"):
        old.unlink()
    for i, jpeg in enumerate(make_images(BATCH_IMAGES)):
        (batch_dir / f"{i:03d}.jpg").write_bytes(jpeg)
    info["batch_images"] = BATCH_IMAGES
    return image, batch_dir, info


# ----------------------------------------------------------------------------- runs


def worker_command(
    python: Path | str, peer: str, bundle: Path, image: Path, threads: int
) -> list[str]:
    command = [str(python), str(HERE / "worker.py"), "--peer", peer, "--bundle", str(bundle)]
    command += ["--functions", str(FUNCTIONS), "--image", str(image), "--threads", str(threads)]
    return command


def run_worker(command: list[str]) -> dict[str, Any]:
    done = subprocess.run(command, capture_output=True, text=True, check=False, cwd=REPO)
    for line in done.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[len("RESULT ") :])
    tail = " | ".join(done.stderr.strip().splitlines()[-3:])
    raise RuntimeError(f"worker failed (exit {done.returncode}): {tail}")


def cold_once(command: list[str]) -> dict[str, Any]:
    """Spawn to first answer (wall) and the child's CPU time until exit (rusage)."""
    start = time.perf_counter()
    proc = subprocess.Popen(
        [*command, "--cold"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
    )
    assert proc.stdout is not None
    answer: dict[str, Any] | None = None
    for line in proc.stdout:
        if line.startswith("RESULT "):
            answer = {"spawn_to_answer_ms": round((time.perf_counter() - start) * 1000, 1)}
            answer.update(json.loads(line[len("RESULT ") :]))
    _, status, usage = os.wait4(proc.pid, 0)
    if answer is None or os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"cold worker failed (status {status})")
    answer["process_cpu_ms"] = round((usage.ru_utime + usage.ru_stime) * 1000, 1)
    return answer


def median(values: list[float]) -> float:
    ordered = sorted(values)
    mid = len(ordered) // 2
    return ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2


# ----------------------------------------------------------------------------- report


def print_table(report: dict[str, Any]) -> None:
    threads = report["threads"]
    print(
        f"\nPeers, ResNet-50 on the {report['image']['width']}x{report['image']['height']} JPEG "
        f"({report['image']['jpeg_bytes']} bytes): {report['cpu_model']} "
        f"[{', '.join(report['cpu_flags'])}], load {report['load_average_start']} -> "
        f"{report['load_average_end']}"
    )
    print("CPU ms per image (process_time, all threads) is the main measure; wall is noisy.")
    head = f"  {'peer':<18}"
    for t in threads:
        head += f"{f'CPU p50 {t}t':>12}{f'wall p50/p90 {t}t':>19}"
    head += f"{'batch CPU/img':>15}{'CPU vs ours':>12}"
    print(head)
    ours = report["peers"].get("ours", {}).get("threads", {})
    for name in PEER_ORDER:
        peer = report["peers"].get(name)
        if peer is None:
            continue
        if "skipped" in peer:
            print(f"  {name:<18}skipped: {peer['skipped']}")
            continue
        line = f"  {name:<18}"
        for t in threads:
            run = peer["threads"].get(str(t))
            if run is None:
                line += f"{'-':>12}{'-':>19}"
                continue
            line += f"{run['cpu_p50_ms']:>12.1f}"
            line += f"{run['wall_p50_ms']:>11.1f} /{run['wall_p90_ms']:>6.1f}"
        first = peer["threads"].get(str(threads[0]), {})
        batch = first.get("batch_cpu_ms_per_image")
        line += f"{batch:>15.1f}" if batch is not None else f"{'-':>15}"
        base = ours.get(str(threads[0]), {}).get("cpu_p50_ms")
        line += f"{first['cpu_p50_ms'] / base:>11.2f}x" if base else f"{'-':>12}"
        print(line)
    for name, cold in report.get("cold", {}).items():
        print(
            f"  cold, {name}: spawn to first answer {cold['spawn_to_answer_ms']:.0f} ms, "
            f"first request {cold['first_request_wall_ms']:.0f} ms "
            f"(CPU {cold['first_request_cpu_ms']:.0f} ms), medians of {cold['runs']}"
        )
    print(
        f"  batch CPU/img: mean over {report['image'].get('batch_images', 0)} batch JPEGs, "
        f"{threads[0]} thread(s)"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=30, help="samples per peer")
    parser.add_argument("--threads", default="1,2", help="thread counts (default 1,2)")
    parser.add_argument("--cold-runs", type=int, default=3)
    parser.add_argument("--bundle", type=Path, default=BUNDLE)
    parser.add_argument("--weights", help="Keras weights file the bundle was built from")
    parser.add_argument("--peers", default=",".join(PEER_ORDER), help="subset to run")
    parser.add_argument("--out", type=Path, default=OUT_DIR / "peers.json")
    args = parser.parse_args(argv)

    started = time.perf_counter()
    bundle = args.bundle.resolve()
    ensure_bundle(bundle)
    cpus = len(os.sched_getaffinity(0))
    threads = [t for t in (int(x) for x in args.threads.split(",")) if t <= cpus]
    wanted = [p for p in PEER_ORDER if p in args.peers.split(",")]
    image, batch_dir, image_info = write_images()
    report: dict[str, Any] = {
        "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "cpu_model": cpu_model(),
        "cpu_flags": cpu_flags(),
        "cpus": cpus,
        "python": platform.python_version(),
        "bundle": str(bundle),
        "image": image_info,
        "threads": threads,
        "load_average_start": load_average(),
        "method": "per image: process_time and perf_counter around JPEG bytes -> top-5, "
        "each peer in its own process pinned to N CPUs with an N-thread runtime",
        "peers": {},
    }

    pythons: dict[str, Path | str] = {p: sys.executable for p in wanted}
    skipped: dict[str, str] = {}
    models: dict[str, Path] = {}
    for peer in wanted:
        venv = PEER_VENV.get(peer)
        if venv is None:
            continue
        python, reason = ensure_venv(venv)
        if python is None:
            skipped[peer] = reason or "not installed"
            continue
        pythons[peer] = python
    onnx_peers = [p for p in wanted if p.startswith("onnxruntime") and p not in skipped]
    if onnx_peers:
        models, reason = ensure_onnx_models(bundle, Path(pythons[onnx_peers[0]]), args.weights)
        for peer in ("onnxruntime-fp32", "onnxruntime-int8"):
            if peer in wanted and peer.split("-")[1] not in models:
                skipped[peer] = reason or "no model"
    log(f"setup done after {time.perf_counter() - started:.0f} s")

    for peer in wanted:
        if peer in skipped:
            log(f"{peer}: skipped: {skipped[peer]}")
            report["peers"][peer] = {"skipped": skipped[peer], "description": DESCRIPTION[peer]}
            continue
        entry: dict[str, Any] = {"description": DESCRIPTION[peer], "threads": {}}
        for t in threads:
            command = worker_command(pythons[peer], peer, bundle, image, t)
            if peer.startswith("onnxruntime"):
                command += ["--model", str(models[peer.split("-")[1]])]
            # Loading the model per request costs ~4x an image: fewer samples keep it short.
            iterations = args.iterations // 2 if peer == "per-request-load" else args.iterations
            command += ["--iterations", str(iterations)]
            if batch_dir is not None:
                command += ["--batch-dir", str(batch_dir)]
            log(f"{peer}, {t} thread(s)")
            try:
                run = run_worker(command)
            except RuntimeError as exc:
                entry["threads"][str(t)] = {"error": str(exc)}
                log(f"{peer}: {exc}")
                continue
            entry["runtime"] = run.pop("runtime")
            entry["threads"][str(t)] = run
        entry["threads"] = {k: v for k, v in entry["threads"].items() if "error" not in v}
        if not entry["threads"]:
            entry = {"skipped": "every run failed (see the log above)", **entry}
        report["peers"][peer] = entry

    cold: dict[str, Any] = {}
    for peer in ("ours", "per-request-load"):
        if peer not in wanted or "skipped" in report["peers"][peer]:
            continue
        log(f"cold start: {peer} x {args.cold_runs}")
        command = worker_command(pythons[peer], peer, bundle, image, threads[-1])
        runs = [cold_once(command) for _ in range(args.cold_runs)]
        cold[peer] = {
            "threads": threads[-1],
            "runs": len(runs),
            **{
                key: round(median([r[key] for r in runs]), 1)
                for key in (
                    "spawn_to_answer_ms",
                    "first_request_wall_ms",
                    "first_request_cpu_ms",
                    "process_cpu_ms",
                )
            },
        }
    report["cold"] = cold
    report["load_average_end"] = load_average()
    report["seconds"] = round(time.perf_counter() - started, 1)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print_table(report)
    print(f"\nwritten: {args.out} ({report['seconds']:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
