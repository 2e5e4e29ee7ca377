"""Whole local batch path benchmark: images/s from the first upload to the last output, next
to the worker's own images/s in the same run, and where the difference goes.

Run by ``make bench`` (not a pytest test)::

    .venv/bin/python tests/bench/bench_batch_path.py [--images 1000] [--upload-threads 10]

What it does: brings up the local cloud on its own state folder (``terraform/`` applied to
the emulator with ``environments/local.tfvars``, the local runner started, as ``make up``
does; torn down at the end), uploads N JPEGs (320x240 to 1920x1080, each distinct) under
``input/`` with several threads, and waits until every image has its output. Everything
between is the product's own path: S3 notifications -> SQS -> the runner's event source
mapping -> the dispatcher -> Batch jobs -> worker processes.

It measures, in the same run:

- the whole path: N / (time of the last output - time of the first upload);
- the worker's own rate: images classified / seconds of shard work, summed over every
  child summary the workers wrote (model load excluded, as ``bench_batch.py`` reports it);
- per job, from Batch (createdAt, each attempt's startedAt/stoppedAt) and the child summaries:
  waiting time, process start (run time minus model load and shard work: interpreter start,
  imports, manifest and shard reads, summary writes), model load, shard work;
- the time before the first job was created (the mapping's batching window and the
  dispatcher), the time no job ran, and the CPU seconds of the emulator, the runner's finished
  children (the workers) and this process (the uploads), from /proc.

It prints the numbers with the CPU model and the load average, a short explanation of the
difference built from them, and writes ``build/bench/batch_path.json``. The machine may be
shared: the load average is printed because other work slows every number here.
"""

from __future__ import annotations

import argparse
import datetime as dt
import io
import json
import os
import platform
import shutil
import statistics
import sys
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
OUT_DIR = REPO / "build" / "bench"
STATE_DIR = OUT_DIR / "local-stack"
SIZES = ((320, 240), (480, 360), (640, 480), (800, 600), (1024, 768), (1280, 720), (1920, 1080))
PHOTOS = ("astronaut", "chelsea", "coffee", "rocket", "hubble_deep_field", "immunohistochemistry")


def log(message: str) -> None:
    print(f"[bench_batch_path] {message}", file=sys.stderr, flush=True)


def cpu_model() -> str:
    try:
        with Path("/proc/cpuinfo").open(encoding="ascii", errors="replace") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def load_average() -> list[float]:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return []


def cpu_seconds(pid: int) -> tuple[float, float]:
    """(own, waited-for children) CPU seconds of a process, from /proc/<pid>/stat."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return 0.0, 0.0
    tick = os.sysconf("SC_CLK_TCK")
    utime, stime, cutime, cstime = (int(x) for x in fields[11:15])
    return (utime + stime) / tick, (cutime + cstime) / tick


def make_images(count: int, seed: int = 3) -> list[bytes]:
    """Distinct JPEGs: a pool of resized sample photos, each copy with its own JPEG comment."""
    import numpy as np  # noqa: PLC0415
    from PIL import Image  # noqa: PLC0415
    from skimage import data as skdata  # noqa: PLC0415

    rng = np.random.default_rng(seed)
    pool = []
    for i in range(4 * len(SIZES)):
        photo = Image.fromarray(getattr(skdata, PHOTOS[i % len(PHOTOS)])()).convert("RGB")
        buf = io.BytesIO()
        photo.resize(SIZES[i % len(SIZES)], Image.Resampling.BILINEAR).save(
            buf, "JPEG", quality=int(rng.integers(80, 95))
        )
        pool.append(buf.getvalue())
    out = []
    for i in range(count):
        jpeg, comment = pool[i % len(pool)], f"bench {seed} {i}".encode()
        out.append(
            jpeg[:2] + b"\xff\xfe" + (len(comment) + 2).to_bytes(2, "big") + comment + jpeg[2:]
        )
    return out


def count_keys(s3: Any, bucket: str, prefix: str) -> int:
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
    return sum(page.get("KeyCount", 0) for page in pages)


def queue_messages(sqs: Any, queue_url: str) -> int:
    """Messages in the queue: visible, received and not yet deleted, delayed."""
    names = [
        "ApproximateNumberOfMessages",
        "ApproximateNumberOfMessagesNotVisible",
        "ApproximateNumberOfMessagesDelayed",
    ]
    attributes = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=names)
    return sum(int(attributes["Attributes"].get(name, 0)) for name in names)


class QueueSampler(threading.Thread):
    """Messages in the S3-event queue (seconds after ``t0``, count) once a second."""

    def __init__(self, sqs: Any, queue_url: str, t0: float) -> None:
        super().__init__(daemon=True, name="queue-sampler")
        self.sqs, self.queue_url, self.t0 = sqs, queue_url, t0
        self.samples: list[tuple[float, int]] = []
        self.stop = threading.Event()

    def drained_at(self, uploaded: float) -> float | None:
        """When the queue was first found empty after the last upload (it only shrinks then)."""
        return next((t for t, depth in self.samples if t >= uploaded and depth == 0), None)

    def run(self) -> None:
        while not self.stop.wait(1.0):
            depth = queue_messages(self.sqs, self.queue_url)
            self.samples.append((time.time() - self.t0, depth))


def jobs_since(batch: Any, job_queue: str, since: float) -> list[dict[str, Any]]:
    every = [{"name": "JOB_NAME", "values": ["*"]}]
    ids = []
    for page in batch.get_paginator("list_jobs").paginate(jobQueue=job_queue, filters=every):
        ids += [j["jobId"] for j in page["jobSummaryList"] if ":" not in j["jobId"]]
    jobs = []
    for start in range(0, len(ids), 100):
        jobs += batch.describe_jobs(jobs=ids[start : start + 100])["jobs"]
    return [j for j in jobs if j["createdAt"] / 1000.0 >= since - 1.0]


def child_attempts(batch: Any, job: dict[str, Any]) -> list[dict[str, Any]]:
    """Every attempt of every child of a job (a plain job is its own only child)."""
    size = job.get("arrayProperties", {}).get("size")
    if not size:
        return list(job.get("attempts", []))
    ids = [f"{job['jobId']}:{i}" for i in range(size)]
    attempts = []
    for start in range(0, len(ids), 100):
        for child in batch.describe_jobs(jobs=ids[start : start + 100])["jobs"]:
            attempts += child.get("attempts", [])
    return attempts


def child_summaries(s3: Any, bucket: str, job_id: str) -> list[dict[str, Any]]:
    prefix = f"output/_summaries/{job_id}/"
    listed = s3.list_objects_v2(Bucket=bucket, Prefix=prefix).get("Contents", [])
    return [
        json.loads(s3.get_object(Bucket=bucket, Key=o["Key"])["Body"].read())
        for o in listed
        if o["Key"].removeprefix(prefix).split(".")[0].isdigit()
    ]


def union_seconds(intervals: list[tuple[float, float]]) -> float:
    total, end = 0.0, float("-inf")
    for start, stop in sorted(intervals):
        if stop > end:
            total += stop - max(start, end)
            end = stop
    return total


def measure(endpoints: dict[str, Any], state_dir: Path, count: int, threads: int) -> dict:
    from inferstack.local import stack  # noqa: PLC0415
    from inferstack.local.discovery import client  # noqa: PLC0415

    url, region, bucket = endpoints["emulator_url"], endpoints["region"], endpoints["data_bucket"]
    s3, batch = client("s3", url, region), client("batch", url, region)
    sqs, lam = client("sqs", url, region), client("lambda", url, region)
    mappings = lam.list_event_source_mappings()["EventSourceMappings"]
    batch_size = max(int(m["BatchSize"]) for m in mappings)
    window = max(int(m.get("MaximumBatchingWindowInSeconds", 0)) for m in mappings)

    log(f"generating {count} JPEGs")
    images = make_images(count)
    run = uuid.uuid4().hex[:8]
    keys = [f"input/bench-{run}/{i:05d}.jpg" for i in range(count)]
    out_prefix = f"output/bench-{run}/"
    processes = stack.read_processes(stack.Paths(REPO, state_dir))
    emulator_pid, runner_pid = int(processes["emulator"]), int(processes["runner"])
    emulator_cpu0, _ = cpu_seconds(emulator_pid)
    _, children_cpu0 = cpu_seconds(runner_pid)
    own_cpu0 = time.process_time()

    log(f"uploading with {threads} threads")
    t0 = time.time()
    sampler = QueueSampler(sqs, endpoints["queue_url"], t0)
    sampler.start()
    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(lambda kb: s3.put_object(Bucket=bucket, Key=kb[0], Body=kb[1]),
                      zip(keys, images, strict=True)))  # fmt: skip
    uploaded = time.time()
    upload_cpu = time.process_time() - own_cpu0
    # Done when every job submitted since the first upload has ended and every image has its
    # output (listed only then: a listing costs the emulator CPU); checked once a second.
    while True:
        jobs = jobs_since(batch, endpoints["job_queue"], t0)
        ended = jobs and all(j["status"] in ("SUCCEEDED", "FAILED") for j in jobs)
        if ended and count_keys(s3, bucket, out_prefix) >= count:
            break
        if time.time() - t0 > 1800:
            raise SystemExit("the batch path did not finish in 30 min")
        time.sleep(1.0)
    sampler.stop.set()
    backlog = sampler.samples
    drained = sampler.drained_at(uploaded - t0)
    emulator_cpu = cpu_seconds(emulator_pid)[0] - emulator_cpu0
    children_cpu = cpu_seconds(runner_pid)[1] - children_cpu0

    runs, starts, loads, work = [], [], [], []
    waits, images_per_job = [], []
    processed = 0
    for job in jobs:
        summaries = child_summaries(s3, bucket, job["jobId"])
        attempts = [a for a in child_attempts(batch, job) if "stoppedAt" in a]
        images_per_job.append(sum(s["images"] for s in summaries))
        waits.append(min((a["startedAt"] for a in attempts), default=job["createdAt"]) / 1000.0
                     - job["createdAt"] / 1000.0)  # fmt: skip
        run_s = sum((a["stoppedAt"] - a["startedAt"]) / 1000.0 for a in attempts)
        load_s = sum(s["model_load_seconds"] for s in summaries)
        work_s = sum(s["seconds"] for s in summaries)
        runs.append((min(a["startedAt"] for a in attempts) / 1000.0,
                     max(a["stoppedAt"] for a in attempts) / 1000.0))  # fmt: skip
        loads.append(load_s)
        work.append(work_s)
        starts.append(max(0.0, run_s - load_s - work_s))
        processed += sum(s["ok"] + s["failed"] for s in summaries)

    last_output = max(r[1] for r in runs)  # the last job's end: its outputs are written
    wall = last_output - t0
    busy = union_seconds(runs)
    worker_rate = processed / sum(work) if sum(work) else 0.0
    first_created = min(j["createdAt"] for j in jobs) / 1000.0
    first_started = min(r[0] for r in runs)
    return {
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "cpu_model": cpu_model(),
        "cpus": len(os.sched_getaffinity(0)),
        "load_average": load_average(),
        "images": count,
        "upload_threads": threads,
        "mapping": {"batch_size": batch_size, "batching_window_s": window},
        "upload_s": round(uploaded - t0, 2),
        "uploads_per_s": round(count / (uploaded - t0), 1),
        "queue": {
            "max_backlog": max(depth for _, depth in backlog),
            # None: messages were still in the queue when the last job ended
            "drained_s": None if drained is None else round(drained, 2),
            "received_per_s": round(count / drained, 1) if drained else None,
        },
        "wall_s": round(wall, 2),
        "path_images_per_s": round(count / wall, 2),
        "worker_images_per_s": round(worker_rate, 2),
        "ratio_path_to_worker": round(count / wall / worker_rate, 3) if worker_rate else None,
        "jobs": len(jobs),
        "jobs_failed": sum(j["status"] != "SUCCEEDED" for j in jobs),
        "images_per_job": {
            "min": min(images_per_job),
            "median": statistics.median(images_per_job),
            "max": max(images_per_job),
        },
        "first_job_created_s": round(first_created - t0, 2),
        "first_job_started_s": round(first_started - t0, 2),
        "seconds": {
            "job_wait_median": round(statistics.median(waits), 2),
            "process_start_total": round(sum(starts), 2),
            "process_start_per_job": round(statistics.median(starts), 2),
            "model_load_total": round(sum(loads), 2),
            "model_load_per_job": round(statistics.median(loads), 2),
            "shard_work_total": round(sum(work), 2),
            "jobs_running": round(busy, 2),
            "no_job_running": round(wall - busy, 2),
        },
        "cpu_seconds": {
            "emulator": round(emulator_cpu, 2),
            "workers": round(children_cpu, 2),
            "uploader": round(upload_cpu, 2),
        },
        "emulator_cpu_ms_per_image": round(1000 * emulator_cpu / count, 1),
        "worker_cpu_ms_per_image": round(1000 * children_cpu / count, 1),
    }


def explain(r: dict[str, Any]) -> list[str]:
    s, m, q = r["seconds"], r["mapping"], r["queue"]
    wall = r["wall_s"]

    def share(x: float) -> str:
        return f"{x:.1f} s ({100 * x / wall:.0f}%)"

    return [
        f"The path did {r['path_images_per_s']:.1f} images/s, the worker "
        f"{r['worker_images_per_s']:.1f} images/s while classifying its shard. Of the "
        f"{wall:.1f} s from the first upload to the last output:",
        f"- {r['first_job_started_s']:.1f} s before the first job started: the uploads took "
        f"{r['upload_s']:.1f} s, and the mapping gathers up to {m['batch_size']} messages or "
        f"{m['batching_window_s']} s from its first message before invoking the dispatcher "
        f"(first job created at {r['first_job_created_s']:.1f} s);",
        (
            f"- the mapping had received every upload's message {q['drained_s']:.1f} s after the "
            f"first upload ({q['received_per_s']:.1f} messages/s against uploads at "
            f"{r['uploads_per_s']:.0f}/s, up to {q['max_backlog']} waiting in the queue), and "
            "every job waits for its batch to be received;"
            if q["drained_s"] is not None
            else f"- messages were still in the queue when the last job ended (up to "
            f"{q['max_backlog']} waiting): received but not deleted, they come back;"
        ),
        f"- {r['jobs']} jobs ({r['images_per_job']['median']:.0f} images each, median), each "
        f"paying a worker start of {s['process_start_per_job']:.2f} s (interpreter, imports, "
        f"manifest, summaries) and a model load of {s['model_load_per_job']:.2f} s: "
        f"{share(s['process_start_total'] + s['model_load_total'])} in all;",
        f"- shard work {share(s['shard_work_total'])}, at the worker's own rate; no job running "
        f"for {share(s['no_job_running'])} (waiting for batches, the runner's 1 s scan for "
        "submitted jobs);",
        f"- the emulator serving S3, SQS and Batch used {r['cpu_seconds']['emulator']:.1f} CPU-s "
        f"({r['emulator_cpu_ms_per_image']:.1f} ms per image) on the same {r['cpus']} CPUs as "
        f"the workers ({r['worker_cpu_ms_per_image']:.1f} ms per image) and the uploads "
        f"({r['cpu_seconds']['uploader']:.1f} CPU-s); on AWS none of it takes the worker's CPUs.",
    ]


def report(r: dict[str, Any]) -> str:
    s, per_job = r["seconds"], r["images_per_job"]
    rows = [
        ("uploads (threads)", f"{r['upload_s']:.1f} s, {r['uploads_per_s']:.0f}/s "
                              f"({r['upload_threads']})"),
        ("whole path, first upload to last output",
         f"{r['wall_s']:.1f} s = {r['path_images_per_s']:.1f} images/s"),
        ("worker's own rate (shard work, same run)", f"{r['worker_images_per_s']:.1f} images/s"),
        ("ratio path / worker", f"{r['ratio_path_to_worker']}"),
        ("jobs (images per job min/median/max)",
         f"{r['jobs']} ({per_job['min']}/{per_job['median']:.0f}/{per_job['max']})"),
        ("S3 events received by (messages/s, max backlog)",
         f"{r['queue']['drained_s']} s ({r['queue']['received_per_s']}/s, "
         f"{r['queue']['max_backlog']})"),
        ("first job created / started after",
         f"{r['first_job_created_s']:.1f} / {r['first_job_started_s']:.1f} s"),
        ("worker start per job (median, total)",
         f"{s['process_start_per_job']:.2f} s, {s['process_start_total']:.1f} s"),
        ("model load per job (median, total)",
         f"{s['model_load_per_job']:.2f} s, {s['model_load_total']:.1f} s"),
        ("shard work (total)", f"{s['shard_work_total']:.1f} s"),
        ("no job running", f"{s['no_job_running']:.1f} s"),
        ("CPU per image: emulator / workers",
         f"{r['emulator_cpu_ms_per_image']:.1f} / {r['worker_cpu_ms_per_image']:.1f} ms"),
    ]  # fmt: skip
    width = max(len(name) for name, _ in rows)
    head = (
        f"\nwhole local batch path: {r['images']} JPEGs (320x240 to 1920x1080), "
        f"{r['cpu_model']}, {r['cpus']} CPUs, load average {r['load_average']}"
    )
    return "\n".join([head, *(f"  {name:<{width}}  {value}" for name, value in rows)])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=1000)
    parser.add_argument("--upload-threads", type=int, default=10)  # boto3: 10 connections
    parser.add_argument("--out", type=Path, default=OUT_DIR / "batch_path.json")
    args = parser.parse_args(argv)
    if shutil.which("terraform") is None:
        raise SystemExit("terraform is needed to bring up the local stack")
    from inferstack.local import stack  # noqa: PLC0415

    log(f"bringing up the local stack in {STATE_DIR} (terraform apply: ~2 min)")
    endpoints = stack.up(root=REPO, state_dir=STATE_DIR)
    try:
        result = measure(endpoints, STATE_DIR, args.images, args.upload_threads)
    finally:
        stack.down(root=REPO, state_dir=STATE_DIR, quiet=True)

    print(report(result))
    result["explanation"] = explain(result)
    print()
    print("\n".join(result["explanation"]))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    log(f"wrote {args.out}")
    return 1 if result["jobs_failed"] else 0


if __name__ == "__main__":
    sys.exit(main())
