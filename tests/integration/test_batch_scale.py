"""Thousands of uploads through the whole local batch path, with a killed worker and a poison
image: every input ends with exactly one output or error record.

On its own local stack (terraform/ applied to moto, code run by the local runner, as
``make up`` does): images are uploaded under ``input/`` with many threads (S3 -> SQS -> the
dispatcher, invoked by the runner's event source mapping -> Batch jobs -> worker processes).
One image is a poison image: the worker's test-only fault hook (INFERSTACK_TEST_CRASH_ON_KEY_
SUFFIX, given to the workers through a new revision of the job definition, as one would on
AWS) kills the worker whenever it decodes it. One running worker process is SIGKILLed once it
has written part of its shard. Everything is observed through public behaviour only: S3
objects, Batch job states and the worker processes' environment (AWS_BATCH_JOB_ID and
AWS_BATCH_JOB_ATTEMPT, which Batch sets in every container).

The number of jobs is checked against what the event source mapping allows, from its
BatchSize and MaximumBatchingWindowInSeconds as the emulator reports them: a batch holds at
most BatchSize messages, and a batch that is not full was gathered for the whole window, so
(the local mapping polls one batch at a time) the k-th such batch's job is created at least
k windows after the first upload.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import random
import signal
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from batch_support import photo_jpegs
from inferstack.batch.naming import output_key
from inferstack.batch.worker import TEST_CRASH_ENV, read_manifest, read_shard
from inferstack.local.discovery import client
from inferstack.local.process import pid_alive
from local_stack_support import local_stack

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
IMAGES = 2000  # valid JPEGs, the poison image included
SIZES = ((256, 192), (320, 240), (480, 360), (640, 480), (800, 600), (1024, 768), (1920, 1080))
UPLOAD_THREADS = 10  # boto3 keeps 10 connections per client
BURST = 100
MAX_BACKLOG = 200  # S3 events waiting in the queue before the next burst (see upload())
BACKLOG_WAIT_S = 10
# Uploaded one by one first, into the empty queue, 4 a second for about 2 windows: with the
# mapping's window, a few invocations; a poller that stopped gathering at the first empty
# receive would make one job per upload here, over the bound.
TRICKLE = 40
TRICKLE_INTERVAL_S = 0.25
KILL_AFTER_OUTPUTS = 5  # outputs of the target's shard written before the kill
MIN_KILL_SHARD = 40  # a target's shard is long enough for the kill to land part-way
DEADLINE_S = 240  # from the first upload to the last job's end


@pytest.fixture(scope="module")
def scale_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[dict, Path]]:
    state = tmp_path_factory.mktemp("local-cloud-scale")
    with local_stack(state) as endpoints:
        yield endpoints, state


# ------------------------------------------------------------------------------- inputs


def unique_jpeg(jpeg: bytes, tag: str) -> bytes:
    """The same picture with a JPEG comment (COM segment) after SOI: distinct bytes and ETag."""
    comment = tag.encode()
    return jpeg[:2] + b"\xff\xfe" + (len(comment) + 2).to_bytes(2, "big") + comment + jpeg[2:]


@dataclass
class Inputs:
    prefix: str  # input/scale-<run>/
    bodies: dict[str, bytes]  # every object uploaded, in upload order
    poison: str
    not_images: set[str]  # image suffix, not an image: an invalid_image record each
    ignored: set[str]  # no image suffix: the dispatcher ignores them, no record
    trickle: list[str]  # uploaded one by one first

    @property
    def dispatched(self) -> list[str]:
        return [k for k in self.bodies if k not in self.ignored]


def make_inputs(run: str) -> Inputs:
    prefix = f"input/scale-{run}/"
    pool = photo_jpegs(len(SIZES) * 4, seed=11, sizes=SIZES)
    rng = random.Random(11)
    keys = [f"{prefix}{i:05d}.jpg" for i in range(IMAGES)]
    poison = f"{prefix}poison-{run}.jpg"
    keys[IMAGES // 2] = poison
    bodies = {key: unique_jpeg(pool[i % len(pool)], key) for i, key in enumerate(keys)}
    truncated = pool[-1][: len(pool[-1]) // 3]
    not_images = {
        **{f"{prefix}text-{i}.jpg": f"not an image {i}".encode() for i in range(8)},
        **{f"{prefix}noise-{i}.png": rng.randbytes(3000) for i in range(4)},
        **{f"{prefix}truncated-{i}.jpg": truncated + bytes([i]) for i in range(2)},
        **{f"{prefix}empty-{i}.jpeg": b"" for i in range(2)},
    }
    ignored = {f"{prefix}notes-{i}.txt": b"not an image suffix" for i in range(2)}
    # the odd objects spread among the images; the first TRICKLE images trickle in
    order = list(bodies.items())
    for n, item in enumerate([*not_images.items(), *ignored.items()]):
        order.insert((n + 1) * len(order) // 20, item)
    uploads = dict(order)
    trickle = [k for k in uploads if k not in not_images and k not in ignored][:TRICKLE]
    return Inputs(prefix, uploads, poison, set(not_images), set(ignored), trickle)


def queue_messages(sqs: Any, queue_url: str, *, visible_only: bool = False) -> int:
    """Messages in the queue: visible ones, or all (received but not deleted, delayed too)."""
    names = ["ApproximateNumberOfMessages"]
    if not visible_only:
        names += ["ApproximateNumberOfMessagesNotVisible", "ApproximateNumberOfMessagesDelayed"]
    attributes = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=names)
    return sum(int(attributes["Attributes"].get(name, 0)) for name in names)


def upload(
    s3: Any, sqs: Any, endpoints: dict[str, Any], inputs: Inputs
) -> tuple[dict[str, str], float, float]:
    """Uploads everything: the trickle one by one into the empty queue, then bursts of BURST
    objects with UPLOAD_THREADS threads. Returns the ETags and the start and end times (epoch
    seconds).

    Before each burst it waits (bounded) until the S3-event queue holds at most MAX_BACKLOG
    visible messages: the emulator's ReceiveMessage costs time proportional to the queue's
    depth (moto scans the whole queue several times per call: 0.9 s per call at 2,000
    messages, 10 messages per call), so a deeper backlog only slows the whole path down.
    """
    bucket = endpoints["data_bucket"]
    trickle = set(inputs.trickle)
    keys = [k for k in inputs.bodies if k not in trickle]
    etags: dict[str, str] = {}

    def put(key: str) -> None:
        etags[key] = s3.put_object(Bucket=bucket, Key=key, Body=inputs.bodies[key])["ETag"]

    started = time.time()
    for key in inputs.trickle:
        put(key)
        time.sleep(TRICKLE_INTERVAL_S)
    with ThreadPoolExecutor(UPLOAD_THREADS) as pool:
        for start in range(0, len(keys), BURST):
            give_up = time.monotonic() + BACKLOG_WAIT_S
            while (
                queue_messages(sqs, endpoints["queue_url"], visible_only=True) > MAX_BACKLOG
                and time.monotonic() < give_up
            ):
                time.sleep(0.2)
            list(pool.map(put, keys[start : start + BURST]))
    return {k: v.strip('"') for k, v in etags.items()}, started, time.time()


# ---------------------------------------------------------------------------- the kill


def worker_processes(emulator_url: str) -> dict[int, dict[str, str]]:
    """Processes that run a Batch job against this emulator: pid -> AWS_BATCH_* environment."""
    marker = f"AWS_ENDPOINT_URL={emulator_url}".encode()
    found = {}
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            environ = (proc / "environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if marker not in environ:
            continue
        env = dict(
            item.decode(errors="replace").split("=", 1)
            for item in environ
            if item.startswith(b"AWS_BATCH_JOB_")
        )
        if "AWS_BATCH_JOB_ID" in env:
            found[int(proc.name)] = env
    return found


def signal_all(pids: list[int], signum: int) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signum)


@dataclass
class Kill:
    job_id: str = ""
    shard: list[str] = field(default_factory=list)
    done_at_kill: int = 0
    skipped: list[str] = field(default_factory=list)  # why earlier candidates were not killed
    error: str = ""


class Killer(threading.Thread):
    """SIGKILLs the first attempt of one worker once it has written part of its shard.

    The target: a running first attempt whose shard has at least MIN_KILL_SHARD images and
    not the poison image. Once the output of its KILL_AFTER_OUTPUTS-th image exists, the
    process is stopped (SIGSTOP), its shard's outputs counted, and it is killed only if the
    shard is part-way done; otherwise it is let go (SIGCONT) and the next worker is tried.
    """

    def __init__(self, endpoints: dict[str, Any], inputs: Inputs, deadline: float) -> None:
        super().__init__(daemon=True, name="killer")
        self.url = endpoints["emulator_url"]
        self.s3 = client("s3", self.url, endpoints["region"])
        self.batch = client("batch", self.url, endpoints["region"])
        self.bucket = endpoints["data_bucket"]
        self.inputs = inputs
        self.deadline = deadline
        self.stop = threading.Event()
        self.result = Kill()
        self.tried: set[str] = set()

    def run(self) -> None:
        try:
            while not self.stop.is_set() and time.monotonic() < self.deadline:
                if self._try_one():
                    return
                time.sleep(0.05)
            self.result.error = "no worker was killed part-way before the deadline"
        except Exception as exc:  # reported by the test
            self.result.error = f"killer failed: {exc!r}"

    def _exists(self, key: str) -> bool:
        try:
            self.s3.head_object(Bucket=self.bucket, Key=key)
        except self.s3.exceptions.ClientError:
            return False
        return True

    def _shard(self, job_id: str) -> list[str]:
        parent, _, index = job_id.partition(":")
        (job,) = self.batch.describe_jobs(jobs=[parent])["jobs"]
        manifest_uri = job["parameters"]["manifest"]
        manifest = read_manifest(self.s3, manifest_uri)
        bucket = manifest_uri.removeprefix("s3://").split("/", 1)[0]
        return [item.key for item in read_shard(self.s3, manifest, int(index or 0), bucket)]

    def _try_one(self) -> bool:
        candidates = {}
        for pid, env in worker_processes(self.url).items():
            if env.get("AWS_BATCH_JOB_ATTEMPT") == "1":
                candidates.setdefault(env["AWS_BATCH_JOB_ID"], []).append(pid)
        for job_id, pids in candidates.items():
            if job_id in self.tried:
                continue
            self.tried.add(job_id)
            shard = self._shard(job_id)
            if self.inputs.poison in shard or len(shard) < MIN_KILL_SHARD:
                self.result.skipped.append(f"{job_id}: {len(shard)} images, poison or short")
                continue
            outputs = [output_key(k, "input/", "output/") for k in shard]
            trigger = outputs[KILL_AFTER_OUTPUTS - 1]
            while not self._exists(trigger):
                if not any(pid_alive(p) for p in pids):
                    self.result.skipped.append(f"{job_id}: ended before the trigger")
                    break
                time.sleep(0.02)
            else:
                signal_all(pids, signal.SIGSTOP)
                with ThreadPoolExecutor(8) as pool:
                    done = sum(pool.map(self._exists, outputs))
                if 0 < done < len(shard):
                    signal_all(pids, signal.SIGKILL)
                    self.result.job_id, self.result.shard = job_id, shard
                    self.result.done_at_kill = done
                    return True
                signal_all(pids, signal.SIGCONT)
                self.result.skipped.append(f"{job_id}: {done} of {len(shard)} done when stopped")
        return False


# ------------------------------------------------------------------------------ reading


def read_records(s3: Any, bucket: str, prefix: str) -> dict[str, dict[str, Any]]:
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
    keys = [o["Key"] for page in pages for o in page.get("Contents", [])]

    def read(key: str) -> tuple[str, dict[str, Any]]:
        return key, json.loads(s3.get_object(Bucket=bucket, Key=key)["Body"].read())

    with ThreadPoolExecutor(8) as pool:
        return dict(pool.map(read, keys))


def write_counts(s3: Any, bucket: str, prefix: str) -> Counter[str]:
    """How many times each object under the prefix was written (the bucket is versioned)."""
    versions: Counter[str] = Counter()
    for page in s3.get_paginator("list_object_versions").paginate(Bucket=bucket, Prefix=prefix):
        for version in page.get("Versions", []):
            versions[version["Key"]] += 1
    return versions


def jobs_since(batch: Any, job_queue: str, since: float) -> list[dict[str, Any]]:
    """The jobs submitted to the queue since ``since`` (epoch s), array children excluded."""
    every = [{"name": "JOB_NAME", "values": ["*"]}]
    ids: list[str] = []
    for page in batch.get_paginator("list_jobs").paginate(jobQueue=job_queue, filters=every):
        ids += [j["jobId"] for j in page["jobSummaryList"] if ":" not in j["jobId"]]
    jobs = []
    for start in range(0, len(ids), 100):
        jobs += batch.describe_jobs(jobs=ids[start : start + 100])["jobs"]
    return [j for j in jobs if j["createdAt"] >= int(since * 1000)]


def register_crash_hook(batch: Any, definition: str, suffix: str) -> str:
    """A new revision of the worker's job definition with the test-only fault hook set; the
    dispatcher submits to the latest active revision. Returns the new revision's ARN."""
    name = definition.rsplit("/", 1)[-1].split(":", 1)[0]
    revisions = batch.describe_job_definitions(jobDefinitionName=name, status="ACTIVE")
    current = max(revisions["jobDefinitions"], key=lambda d: d["revision"])
    container = dict(current["containerProperties"])
    container["environment"] = [
        *container.get("environment", []),
        {"name": TEST_CRASH_ENV, "value": suffix},
    ]
    request = {
        "jobDefinitionName": name,
        "type": current["type"],
        "containerProperties": container,
    }
    for attribute in ("parameters", "retryStrategy", "timeout", "platformCapabilities", "tags"):
        if current.get(attribute):
            request[attribute] = current[attribute]
    return batch.register_job_definition(**request)["jobDefinitionArn"]


def mapping_settings(endpoints: dict[str, Any]) -> tuple[int, int]:
    """(BatchSize, MaximumBatchingWindowInSeconds) of the mapping of the S3-event queue."""
    lam = client("lambda", endpoints["emulator_url"], endpoints["region"])
    sqs = client("sqs", endpoints["emulator_url"], endpoints["region"])
    queue_arn = sqs.get_queue_attributes(
        QueueUrl=endpoints["queue_url"], AttributeNames=["QueueArn"]
    )["Attributes"]["QueueArn"]
    (mapping,) = [
        m
        for m in lam.list_event_source_mappings(EventSourceArn=queue_arn)["EventSourceMappings"]
        if m.get("State", "Enabled") == "Enabled"
    ]
    return int(mapping["BatchSize"]), int(mapping.get("MaximumBatchingWindowInSeconds", 0))


# --------------------------------------------------------------------------------- test


def test_thousands_of_uploads_a_killed_worker_and_a_poison_image_every_input_accounted(
    scale_stack: tuple[dict[str, Any], Path],
) -> None:
    endpoints, _ = scale_stack
    url, region, bucket = endpoints["emulator_url"], endpoints["region"], endpoints["data_bucket"]
    s3, batch, sqs = (
        client("s3", url, region),
        client("batch", url, region),
        client("sqs", url, region),
    )
    run = uuid.uuid4().hex[:8]
    inputs = make_inputs(run)
    batch_size, window_s = mapping_settings(endpoints)
    assert window_s >= 1, "the bound on jobs below needs a batching window"
    hook_revision = register_crash_hook(
        batch, endpoints["job_definition"], "/" + inputs.poison.rsplit("/", 1)[1]
    )
    (definition,) = batch.describe_job_definitions(jobDefinitions=[hook_revision])["jobDefinitions"]
    attempts_allowed = int(definition["retryStrategy"]["attempts"])
    assert attempts_allowed >= 3, "a poison image takes two attempts, a kill one more"

    killer = Killer(endpoints, inputs, time.monotonic() + DEADLINE_S)
    killer.start()
    try:
        etags, uploads_started, uploads_ended = upload(s3, sqs, endpoints, inputs)
        deadline = uploads_started + DEADLINE_S
        # Done when no S3 event is left in the queue (a message is deleted once its job is
        # submitted) and every job submitted since the first upload has ended.
        while True:
            left = queue_messages(sqs, endpoints["queue_url"])
            jobs = jobs_since(batch, endpoints["job_queue"], uploads_started)
            running = [j["jobId"] for j in jobs if j["status"] not in ("SUCCEEDED", "FAILED")]
            if not left and not running:
                break
            assert time.time() < deadline, (
                f"not done in time: {left} messages left in the S3-event queue (received but "
                f"never deleted?), jobs not ended: {running}; the kill: {killer.result}"
            )
            time.sleep(2)
        finished = time.time()
        killer.join(timeout=5)
    finally:
        killer.stop.set()
    kill = killer.result
    assert kill.job_id, f"{kill.error}; candidates: {kill.skipped}"
    assert 0 < kill.done_at_kill < len(kill.shard)
    assert [j["jobId"] for j in jobs if j["status"] != "SUCCEEDED"] == []

    dispatched = inputs.dispatched
    out_prefix = "output/" + inputs.prefix.removeprefix("input/")
    expected = {output_key(k, "input/", "output/"): k for k in dispatched}
    # Every input with an image suffix has exactly one record, written once; the others none.
    records = read_records(s3, bucket, out_prefix)
    assert set(records) == set(expected), (
        f"missing: {sorted(set(expected) - set(records))[:10]}, "
        f"unexpected: {sorted(set(records) - set(expected))[:10]}"
    )
    writes = write_counts(s3, bucket, out_prefix)
    assert {k: n for k, n in writes.items() if n != 1} == {}
    for out_key, record in records.items():
        key = expected[out_key]
        assert (record["input"]["key"], record["input"]["etag"]) == (key, etags[key]), out_key
        if key == inputs.poison:
            assert "predictions" not in record
        elif key in inputs.not_images:
            assert record["error"]["code"] == "invalid_image", (key, record)
        else:
            assert "error" not in record and len(record["predictions"]) == 5, (key, record)

    # The poison image: worker_crash, after the two attempts that died with it in flight.
    poison = records[output_key(inputs.poison, "input/", "output/")]
    assert poison["error"]["code"] == "worker_crash", poison
    assert poison["error"]["attempts"] == 2
    assert poison["job"]["attempt"] == 3

    # Each input was dispatched once, in a job of at most BatchSize images.
    shards: dict[str, list[str]] = {}  # child job id (a plain job is its own child) -> keys
    images_per_job: dict[str, int] = {}
    for job in jobs:
        manifest = read_manifest(s3, job["parameters"]["manifest"])
        images_per_job[job["jobId"]] = manifest.count
        for index in range(manifest.children):
            child = f"{job['jobId']}:{index}" if manifest.children > 1 else job["jobId"]
            shards[child] = [i.key for i in read_shard(s3, manifest, index, bucket)]
    assert Counter(k for keys in shards.values() for k in keys) == Counter(dispatched)
    assert max(images_per_job.values()) <= batch_size

    def exit_codes(job_id: str) -> list[int | None]:
        (job,) = batch.describe_jobs(jobs=[job_id])["jobs"]
        return [a["container"].get("exitCode") for a in job["attempts"]]

    # The poison image's child died twice with it (137) and its third attempt completed.
    (poison_child,) = [child for child, keys in shards.items() if inputs.poison in keys]
    assert exit_codes(poison_child) == [137, 137, 0]

    # The killed child was retried, its second attempt finished the shard, and the job's
    # summary accounts for every image of the job.
    assert kill.shard == shards[kill.job_id]
    assert exit_codes(kill.job_id) == [137, 0]
    parent = kill.job_id.split(":", 1)[0]
    summary = json.loads(
        s3.get_object(Bucket=bucket, Key=f"output/_summaries/{parent}.json")["Body"].read()
    )
    assert summary["complete"] is True
    assert summary["images"] == summary["with_record"] == images_per_job[parent]
    assert summary["skipped"] >= kill.done_at_kill

    # Jobs: what BatchSize and the window allow. At least one per BatchSize images; at most
    # one per BatchSize messages received plus one per window that passed between the first
    # upload and the creation of the last job (a batch that is not full took a whole window).
    created = [j["createdAt"] / 1000.0 for j in jobs]
    messages = len(inputs.bodies)
    lowest = math.ceil(len(dispatched) / batch_size)
    highest = messages // batch_size + math.floor((max(created) - uploads_started) / window_s)
    seen = (
        f"{len(dispatched)} images ({messages} uploads) in {uploads_ended - uploads_started:.1f}"
        f" s, BatchSize {batch_size}, window {window_s} s: {len(jobs)} jobs "
        f"(allowed {lowest}..{highest}); every job ended {finished - uploads_started:.0f} s "
        f"after the first upload; killed {kill.job_id} at {kill.done_at_kill}/{len(kill.shard)}"
    )
    print("\n" + seen)
    assert lowest <= len(jobs) <= highest, seen
