"""The batch worker: one array child classifies its shard of a manifest.

Pipeline: a small thread pool does the I/O-bound and GIL-releasing work (S3 GET, Pillow
decode with JPEG draft mode, resize) and the output PUTs, while one inference thread per
interpreter keeps the interpreters busy (one interpreter with T threads, or K interpreters
with one thread each: see ``inferstack_worker.main`` for the default). At most ``prefetch``
images are in flight, so memory stays bounded whatever the shard size, and results are
taken in completion order so one slow GET (a retry with backoff) does not stall inference.

Resuming: the shard's output range is listed once; an image whose output exists is HEADed and
skipped when the output's metadata names the same input ETag and model sha256. Outputs have
deterministic keys, so a rerun overwrites, never duplicates.

Failures: an image that cannot be classified (corrupt, too large, unsupported format, deleted
since the upload) becomes an error record and the shard goes on. Infrastructure faults (S3
unreachable after botocore's retries, model unavailable, manifest unreadable) end the process
with EXIT_TEMPFAIL (75) so the job definition's retry strategy retries the child; a manifest
that is malformed or an array index outside it ends with EXIT_DATAERR (65), not worth a retry.

Crashes: a child that dies (a signal, the OOM killer, a native crash) is retried by Batch;
the in-flight marker (``inferstack.batch.inflight``) tells the retry which images were inside
the dying worker. Those are classified first, one at a time; one that takes the worker down
while alone gets a ``worker_crash`` error record on the next attempt and the shard goes on.
"""

from __future__ import annotations

import contextlib
import os
import queue
import signal
import threading
import time
from collections.abc import Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from inferstack.batch import records
from inferstack.batch.clients import BodyReadError, BotocoreStore, ObjectStore
from inferstack.batch.inflight import (
    CODE_WORKER_CRASH,
    CrashHistory,
    InflightMarker,
    history_from_marker,
    inflight_key,
)
from inferstack.batch.manifest import Item, Manifest, ManifestError, Shard, parse_shard
from inferstack.batch.naming import (
    child_summary_key,
    normalize_etag,
    normalize_prefix,
    output_key,
    parent_job_id,
)
from inferstack.batch.summary import maybe_write_job_summary, write_json
from inferstack.errors import ImageError, ImageTooLarge
from inferstack.s3 import parse_s3_uri

EXIT_OK = 0
EXIT_DATAERR = 65  # sysexits EX_DATAERR: malformed manifest, index out of range (no retry)
EXIT_TEMPFAIL = 75  # sysexits EX_TEMPFAIL: infrastructure fault, retry the child
EXIT_CONFIG = 78  # sysexits EX_CONFIG: the model bundle is refused (integrity, invalid; no retry)

_NOT_FOUND = frozenset({"NoSuchKey", "404", "NotFound"})
# Errors while streaming a body are not retried by botocore (it retries requests only).
_BODY_READ_ATTEMPTS = 3
# TEST-ONLY fault hook: a worker whose environment sets this kills itself with SIGKILL when
# it is about to decode an input whose key ends with the value (a stand-in for a native
# decoder crash). Never set by the project's deployments; only tests set it.
TEST_CRASH_ENV = "INFERSTACK_TEST_CRASH_ON_KEY_SUFFIX"


class InfrastructureError(Exception):
    """S3, the model or the manifest is unavailable: the child should be retried."""


@dataclass(frozen=True)
class WorkerConfig:
    manifest_uri: str
    model_uri: str
    model_sha256: str | None = None  # the checksum the deployment pins (None: model.json's)
    array_index: int = 0
    job_id: str = ""
    attempt: int | None = None  # AWS_BATCH_JOB_ATTEMPT (None: one more than the marker's)
    output_bucket: str = ""  # empty: the manifest's bucket
    output_prefix: str = "output/"
    io_threads: int = 3
    prefetch: int = 8
    io_nice: int = 5  # CPU priority of the I/O threads below the interpreters' (0: the same)
    interpreter_threads: int | None = None
    top_k: int = 5
    max_image_bytes: int | None = None
    max_image_pixels: int | None = None


@dataclass
class Fetched:
    item: Item
    out_key: str
    kind: str  # "skip" | "ready" | "error"
    prepared: Any = None  # inferstack.pipeline.Prepared when kind == "ready"
    etag: str = ""
    error: tuple[str, str] | None = None
    timing_ms: dict[str, float] = field(default_factory=dict)


@dataclass
class ShardStats:
    images: int = 0
    ok: int = 0
    skipped: int = 0
    failed: int = 0
    errors: dict[str, int] = field(default_factory=dict)
    infer_seconds: float = 0.0
    suspects_retried: int = 0  # images in flight at a previous death, retried alone

    def add_error(self, code: str) -> None:
        self.failed += 1
        self.errors[code] = self.errors.get(code, 0) + 1


def error_code(exc: BaseException) -> str:
    response = getattr(exc, "response", None) or {}
    code = response.get("Error", {}).get("Code")
    status = response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    return str(code or status or type(exc).__name__)


def _common_prefix(a: str, b: str) -> str:
    """Character-wise common prefix (S3 prefixes are strings, not paths)."""
    n = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        n += 1
    return a[:n]


def lower_thread_priority(nice: int) -> None:
    """Raise the calling thread's nice value by ``nice`` (Linux: priorities are per thread).

    Why the I/O threads get one: the interpreters are the bottleneck, and every time the
    scheduler slices an invoke to run a decode or an S3 call on its CPU, the invoke loses its
    caches. With the I/O threads at nice +5 (a third of the weight) invokes run in longer
    slices, and the I/O still gets its ~12% of the CPUs whenever an interpreter waits; the
    prefetch queue hides the latency. Measured on 2 vCPUs (two 1-thread interpreters):
    103-104 -> 102 ms of worker CPU per image, 18.3-18.6 -> 19.1 images/s. Raising one's
    own nice value needs no privilege; failure only costs the optimisation.
    """
    if nice <= 0:
        return
    thread = threading.get_native_id()
    with contextlib.suppress(OSError):
        current = os.getpriority(os.PRIO_PROCESS, thread)
        os.setpriority(os.PRIO_PROCESS, thread, min(19, current + nice))


def _ms(seconds: float) -> float:
    return round(seconds * 1000.0, 3)


def read_manifest(s3: Any, uri: str) -> Manifest:
    from botocore.exceptions import BotoCoreError, ClientError  # noqa: PLC0415

    try:
        location = parse_s3_uri(uri)
    except ValueError as exc:
        raise ManifestError(str(exc)) from exc
    try:
        body = s3.get_object(Bucket=location.bucket, Key=location.key)["Body"].read()
    except (ClientError, BotoCoreError) as exc:
        raise InfrastructureError(f"cannot read manifest {uri}: {exc}") from exc
    return Manifest.from_json(body)


def read_shard(s3: Any, manifest: Manifest, index: int, manifest_bucket: str) -> list[Item]:
    from botocore.exceptions import BotoCoreError, ClientError  # noqa: PLC0415

    if not 0 <= index < manifest.children:
        raise ManifestError(f"array index {index} outside the manifest's {manifest.children}")
    shard: Shard = manifest.shards[index]
    try:
        body = s3.get_object(Bucket=manifest_bucket, Key=shard.key)["Body"].read()
    except (ClientError, BotoCoreError) as exc:
        raise InfrastructureError(f"cannot read shard {shard.key}: {exc}") from exc
    return parse_shard(body, shard)


class ShardWorker:
    """Classifies one shard.

    ``classifiers``: one or more inferstack.classifier.Classifier of the same bundle, each with
    its own interpreter; one inference thread per interpreter (the runtime releases the GIL
    while it invokes). ``pipeline``: the ``inferstack.pipeline.Pipeline`` every image goes
    through (default: one over the first classifier and the configured limits); its
    ``prepare`` runs in the I/O threads (thread-safe), its ``classify`` on a free interpreter.
    """

    def __init__(
        self,
        config: WorkerConfig,
        s3: Any,
        classifiers: Sequence[Any],
        manifest: Manifest,
        *,
        pipeline: Any = None,
        store: ObjectStore | None = None,
    ) -> None:
        from inferstack.images import ImageLimits  # noqa: PLC0415
        from inferstack.pipeline import Pipeline  # noqa: PLC0415

        if not classifiers:
            raise ValueError("at least one classifier is needed")
        self.config = config
        self.s3 = s3
        # The per-image GETs and PUTs (inferstack.batch.clients): boto3's client unless the
        # caller passes another store (the worker's entry point picks the CRT's when present).
        self.store: ObjectStore = store or BotocoreStore(s3)
        self.classifiers = list(classifiers)
        self.classifier = self.classifiers[0]
        self._free: queue.SimpleQueue[Any] = queue.SimpleQueue()
        for classifier in self.classifiers:
            self._free.put(classifier)
        self.manifest = manifest
        self.output_bucket = config.output_bucket or manifest.bucket
        self.output_prefix = normalize_prefix(config.output_prefix)
        defaults = ImageLimits()
        self.limits = ImageLimits(
            max_bytes=config.max_image_bytes or defaults.max_bytes,
            max_pixels=config.max_image_pixels or defaults.max_pixels,
        )
        # decode + preprocess in the I/O threads, inference on whichever interpreter is free.
        self.pipeline = pipeline or Pipeline(self.classifier, self.limits)
        bundle = self.classifier.bundle
        self.model = records.model_info(bundle.name, bundle.version, bundle.sha256)
        self.job = {"id": parent_job_id(config.job_id), "array_index": config.array_index}
        self.marker = InflightMarker(
            s3,
            self.output_bucket,
            inflight_key(self.output_prefix, config.job_id, config.array_index),
            job_id=self.job["id"],
            array_index=config.array_index,
        )
        self.history = CrashHistory(attempt=config.attempt or 1)
        self._history_loaded = False
        self._test_crash_suffix = os.environ.get(TEST_CRASH_ENV) or None

    # ------------------------------------------------------------------ crashes

    def load_history(self) -> CrashHistory:
        """Read what the previous attempt's marker says (once, before ``run``)."""
        from botocore.exceptions import BotoCoreError, ClientError  # noqa: PLC0415

        try:
            self.history = history_from_marker(self.marker.read(), self.config.attempt)
            self._history_loaded = True
        except (ClientError, BotoCoreError) as exc:
            raise InfrastructureError(f"cannot read {self.marker.key}: {exc}") from exc
        return self.history

    def declare(self, keys: list[str], *, solo: bool = False) -> None:
        """List ``keys`` as in flight before any of them is decoded."""
        from botocore.exceptions import BotoCoreError, ClientError  # noqa: PLC0415

        try:
            self.marker.write(self.history, keys, solo=solo)
        except (ClientError, BotoCoreError) as exc:
            raise InfrastructureError(f"cannot write {self.marker.key}: {exc}") from exc

    def release_inflight(self) -> None:
        """Best effort, on a handled exit (75): nothing in flight died with the worker."""
        with contextlib.suppress(Exception):
            self.marker.write(self.history, [])

    def crash_record(self, item: Item) -> dict[str, Any]:
        strikes = self.history.poison.get(item.key) or self.history.strikes.get(item.key, 0)
        message = (
            f"the worker died {strikes} times with this image in flight, the last time while "
            f"classifying it alone; not decoded again (attempt {self.history.attempt})"
        )
        source = records.input_info(self.manifest.bucket, item.key, item.etag)
        return records.error_record(
            CODE_WORKER_CRASH,
            message,
            model=self.model,
            source=source,
            job={**self.job, "attempt": self.history.attempt},
            attempts=strikes,
        )

    # ------------------------------------------------------------------ resume

    def existing_outputs(self, out_keys: list[str]) -> set[str]:
        """Which of ``out_keys`` exist: one listing over their key range, not a HEAD each."""
        from botocore.exceptions import BotoCoreError, ClientError  # noqa: PLC0415

        if not out_keys:
            return set()
        wanted = set(out_keys)
        low, high = min(out_keys), max(out_keys)
        prefix = _common_prefix(low, high)
        found: set[str] = set()
        paginator = self.s3.get_paginator("list_objects_v2")
        try:
            # StartAfter is exclusive: start just before ``low`` (a shorter key sorts first).
            pages = paginator.paginate(
                Bucket=self.output_bucket, Prefix=prefix, StartAfter=low[:-1]
            )
            for page in pages:
                for obj in page.get("Contents", []):
                    key = obj["Key"]
                    if key > high:
                        return found
                    if key in wanted:
                        found.add(key)
        except (ClientError, BotoCoreError) as exc:
            raise InfrastructureError(f"cannot list outputs under {prefix}: {exc}") from exc
        return found

    def output_is_current(self, out_key: str, item: Item) -> bool:
        from botocore.exceptions import BotoCoreError, ClientError  # noqa: PLC0415

        try:
            head = self.s3.head_object(Bucket=self.output_bucket, Key=out_key)
        except ClientError as exc:
            if error_code(exc) in _NOT_FOUND:
                return False
            raise InfrastructureError(f"cannot HEAD {out_key}: {exc}") from exc
        except BotoCoreError as exc:
            raise InfrastructureError(f"cannot HEAD {out_key}: {exc}") from exc
        return records.is_current(
            head.get("Metadata", {}), input_etag=item.etag, model_sha256=self.model["sha256"]
        )

    # ------------------------------------------------------------------ stages

    def _get(self, item: Item) -> tuple[bytes | None, str, tuple[str, str] | None]:
        """(data, etag, error) for an input; raises InfrastructureError for S3 faults."""
        from botocore.exceptions import BotoCoreError, ClientError  # noqa: PLC0415

        bucket = self.manifest.bucket
        for attempt in range(1, _BODY_READ_ATTEMPTS + 1):
            try:
                obj = self.store.get(bucket, item.key, max_bytes=self.limits.max_bytes)
            except ClientError as exc:
                code = error_code(exc)
                if code in _NOT_FOUND:
                    return None, item.etag, (records.CODE_NOT_FOUND, f"input {item.key} not found")
                hint = ""
                if code in {"AccessDenied", "403"}:
                    # S3 answers 403, not 404, for a missing key when the caller may not
                    # list the bucket at that prefix: a deleted input looks like this too.
                    hint = " (no s3:GetObject, or the input is gone and s3:ListBucket is denied)"
                raise InfrastructureError(
                    f"cannot GET s3://{bucket}/{item.key}: {exc}{hint}"
                ) from exc
            except BodyReadError as exc:
                # The body broke off after the answer began (botocore does not retry that).
                if attempt == _BODY_READ_ATTEMPTS:
                    raise InfrastructureError(
                        f"cannot read s3://{bucket}/{item.key}: {exc.__cause__}"
                    ) from exc.__cause__
                time.sleep(0.5 * attempt)
                continue
            except BotoCoreError as exc:
                raise InfrastructureError(f"cannot GET s3://{bucket}/{item.key}: {exc}") from exc
            etag = normalize_etag(obj.etag) or item.etag
            if obj.body is None:
                error = ImageTooLarge(
                    f"image is {obj.size} bytes, over the limit of {self.limits.max_bytes}"
                )
                return None, etag, (error.code, error.message)
            return obj.body, etag, None
        raise AssertionError("unreachable")

    def fetch(self, item: Item, out_key: str, output_exists: bool) -> Fetched:
        """Runs in the pool: skip check, GET, decode + preprocess."""
        start = time.perf_counter()
        if output_exists and self.output_is_current(out_key, item):
            return Fetched(item, out_key, "skip")
        data, etag, error = self._get(item)
        fetched = time.perf_counter()
        if error is not None or data is None:
            return Fetched(item, out_key, "error", etag=etag, error=error)
        if self._test_crash_suffix and item.key.endswith(self._test_crash_suffix):
            os.kill(os.getpid(), signal.SIGKILL)  # TEST-ONLY fault hook (TEST_CRASH_ENV)
        try:
            prepared = self.pipeline.prepare(data)
        except ImageError as exc:
            return Fetched(item, out_key, "error", etag=etag, error=(exc.code, exc.message))
        except Exception as exc:
            # The decoder promises ImageError for bad input; should an odd file still raise
            # something else, it is this image's problem, not a reason to fail the shard.
            message = f"cannot decode image: {type(exc).__name__}: {exc}"
            return Fetched(item, out_key, "error", etag=etag, error=("invalid_image", message))
        timing = {
            "fetch": _ms(fetched - start),
            "decode_preprocess": _ms(time.perf_counter() - fetched),
        }
        return Fetched(item, out_key, "ready", prepared=prepared, etag=etag, timing_ms=timing)

    def write(self, out_key: str, record: dict[str, Any]) -> None:
        from botocore.exceptions import BotoCoreError, ClientError  # noqa: PLC0415

        try:
            self.store.put(
                self.output_bucket,
                out_key,
                records.encode(record),
                content_type="application/json",
                metadata=records.output_metadata(record),
            )
        except (ClientError, BotoCoreError) as exc:
            raise InfrastructureError(f"cannot write {out_key}: {exc}") from exc

    def error_record(self, fetched: Fetched) -> dict[str, Any]:
        assert fetched.error is not None
        code, message = fetched.error
        source = records.input_info(self.manifest.bucket, fetched.item.key, fetched.etag)
        return records.error_record(code, message, model=self.model, source=source, job=self.job)

    def infer(self, fetched: Fetched) -> tuple[str, dict[str, Any], float]:
        """Runs in an inference thread with a free interpreter: (output key, record, seconds)."""
        classifier = self._free.get()
        try:
            result = self.pipeline.classify(
                fetched.prepared, top_k=self.config.top_k, classifier=classifier
            )
        finally:
            self._free.put(classifier)
        predictions = result.predictions
        infer = result.timing_ms["infer"] / 1000.0
        timing = {**fetched.timing_ms, "infer": result.timing_ms["infer"]}
        timing["total"] = round(sum(timing.values()), 3)
        source = records.input_info(self.manifest.bucket, fetched.item.key, fetched.etag)
        record = records.result_record(
            predictions, model=self.model, source=source, timing_ms=timing, job=self.job
        )
        return fetched.out_key, record, infer

    # ------------------------------------------------------------------ pipeline

    def run(self, items: list[Item]) -> ShardStats:
        """Classify the shard: poison images first (a record each), then the suspects of a
        previous death one at a time, then the rest through the pipeline.

        ``load_history`` must have been called (``run`` calls it if it was not).
        """
        stats = ShardStats(images=len(items))
        if not self._history_loaded:
            self.load_history()
        in_prefix = self.manifest.input_prefix
        pairs = [(i, output_key(i.key, in_prefix, self.output_prefix)) for i in items]
        existing = self.existing_outputs([key for _, key in pairs])
        poison = self.history.poison
        suspects = set(self.history.suspects)
        rest: list[tuple[Item, str]] = []
        for item, out_key in pairs:
            if item.key in poison:
                if out_key in existing and self.output_is_current(out_key, item):
                    stats.skipped += 1
                    continue
                stats.add_error(CODE_WORKER_CRASH)
                self.write(out_key, self.crash_record(item))
            elif item.key in suspects:
                stats.suspects_retried += 1
                self.declare([item.key], solo=True)
                self._pipeline([(item, out_key)], existing, stats, depth=1)
                self.history.strikes.pop(item.key, None)
            else:
                rest.append((item, out_key))
        self._pipeline(rest, existing, stats, depth=None)
        # Finished: nothing in flight; the strikes of keys outside this shard cannot exist.
        self.history.strikes = {}
        self.declare([])
        return stats

    def _pipeline(
        self,
        pairs: list[tuple[Item, str]],
        existing: set[str],
        stats: ShardStats,
        *,
        depth: int | None,
    ) -> None:
        """Fetch/decode and write on the I/O pool, classify on one thread per interpreter.

        At most ``depth`` images are in flight in any stage (fetching, waiting for or in
        inference, being written), so memory is bounded and a write error stops the shard
        within a few images. Before an image enters, the in-flight marker lists it: one
        marker write covers the images in flight and the next ``depth`` to enter.
        ``depth=None``: the configured prefetch (the suspects of a death pass with 1, and
        their marker is written by the caller).
        """
        if not pairs:
            return
        # Keys the caller declared already; otherwise declared here, ``depth`` at a time.
        declared = {i.key for i, _ in pairs} if depth else set()
        depth = depth or max(len(self.classifiers) + 1, self.config.prefetch)
        io_pool = ThreadPoolExecutor(
            max(1, self.config.io_threads),
            thread_name_prefix="io",
            initializer=lower_thread_priority,
            initargs=(self.config.io_nice,),
        )
        infer_pool = ThreadPoolExecutor(len(self.classifiers), thread_name_prefix="infer")
        stage: dict[Future[Any], tuple[str, str]] = {}  # future -> (stage, input key)
        inflight: set[str] = set()
        position = 0
        try:
            while True:
                while len(stage) < depth and position < len(pairs):
                    item, key = pairs[position]
                    if item.key not in declared:
                        upcoming = [i.key for i, _ in pairs[position : position + depth]]
                        declared = inflight | set(upcoming)
                        self.declare(sorted(declared))
                    position += 1
                    inflight.add(item.key)
                    future = io_pool.submit(self.fetch, item, key, key in existing)
                    stage[future] = ("fetch", item.key)
                if not stage:
                    break
                done, _ = wait(list(stage), return_when=FIRST_COMPLETED)
                for future in done:
                    kind, in_key = stage.pop(future)
                    result = future.result()  # re-raises InfrastructureError
                    if kind == "fetch" and result.kind == "skip":
                        stats.skipped += 1
                        inflight.discard(in_key)
                    elif kind == "fetch" and result.kind == "error":
                        assert result.error is not None
                        stats.add_error(result.error[0])
                        write = io_pool.submit(
                            self.write, result.out_key, self.error_record(result)
                        )
                        stage[write] = ("write", in_key)
                    elif kind == "fetch":
                        stage[infer_pool.submit(self.infer, result)] = ("infer", in_key)
                    elif kind == "infer":
                        out_key, record, seconds = result
                        stats.ok += 1
                        stats.infer_seconds += seconds
                        stage[io_pool.submit(self.write, out_key, record)] = ("write", in_key)
                    else:
                        inflight.discard(in_key)
        finally:
            io_pool.shutdown(wait=True, cancel_futures=True)
            infer_pool.shutdown(wait=True, cancel_futures=True)

    # ------------------------------------------------------------------ summary

    def child_summary(
        self,
        stats: ShardStats,
        seconds: float,
        load_seconds: float,
        *,
        cpu_seconds: float | None = None,
    ) -> dict[str, Any]:
        """``cpu_seconds``: the process's CPU time (all threads) over the shard, start-up and
        model load excluded; with ``cpu_ms_per_image`` it says what an image costs."""
        processed = stats.ok + stats.failed
        return {
            "job_id": self.job["id"],
            "array_index": self.config.array_index,
            "children": self.manifest.children,
            "manifest": self.config.manifest_uri,
            "manifest_id": self.manifest.id,
            "shard": self.manifest.shards[self.config.array_index].key,
            "images": stats.images,
            "ok": stats.ok,
            "skipped": stats.skipped,
            "failed": stats.failed,
            "errors": dict(sorted(stats.errors.items())),
            "attempt": self.history.attempt,
            "suspects_retried": stats.suspects_retried,
            "worker_crash_keys": sorted(self.history.poison),
            "seconds": round(seconds, 3),
            "images_per_s": round(processed / seconds, 3) if seconds > 0 else 0.0,
            "infer_seconds": round(stats.infer_seconds, 3),
            "cpu_seconds": None if cpu_seconds is None else round(cpu_seconds, 3),
            "cpu_ms_per_image": (
                round(1000 * cpu_seconds / processed, 2) if cpu_seconds and processed else None
            ),
            "model_load_seconds": round(load_seconds, 3),
            "model": self.model,
            "interpreters": len(self.classifiers),
            "interpreter_threads": getattr(self.classifier, "num_threads", None),
            "io_threads": self.config.io_threads,
            "s3_client": self.store.name,
            "prefetch": self.config.prefetch,
            "finished_at": datetime.now(UTC).isoformat(timespec="seconds"),
        }

    def write_summaries(self, summary: dict[str, Any]) -> dict[str, Any] | None:
        from botocore.exceptions import BotoCoreError, ClientError  # noqa: PLC0415

        job_id = self.job["id"]
        try:
            key = child_summary_key(self.output_prefix, job_id, self.config.array_index)
            write_json(self.s3, self.output_bucket, key, summary)
            return maybe_write_job_summary(
                self.s3, self.output_bucket, self.output_prefix, job_id, self.manifest.children
            )
        except (ClientError, BotoCoreError) as exc:
            raise InfrastructureError(f"cannot write summaries: {exc}") from exc
