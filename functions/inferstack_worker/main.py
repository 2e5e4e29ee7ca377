"""``inferstack-worker --manifest s3://.../manifests/<id>.json``: one AWS Batch array child.

Environment (from the job definition and Batch): MODEL_URI, DATA_BUCKET (output bucket;
default: the manifest's bucket), OUTPUT_PREFIX, AWS_BATCH_JOB_ARRAY_INDEX (absent: 0, a
single job), AWS_BATCH_JOB_ID, MODEL_CACHE_DIR, MAX_IMAGE_BYTES, MAX_IMAGE_PIXELS,
DEFAULT_TOP_K; tuning: WORKER_IO_THREADS, WORKER_PREFETCH, WORKER_IO_NICE, INTERPRETERS,
INTERPRETER_THREADS.
IMAGES_PER_CHILD is not read: the manifest records the shards the submitter cut.

AWS_BATCH_JOB_ATTEMPT numbers the attempt in the in-flight marker and worker_crash records.

Exit codes: 0 shard done (error records included); 75 infrastructure fault, retry; 65
malformed manifest or index and 78 refused model, not retried (the job definition's retry
strategy exits on them); 2 bad arguments, not retried. Any other death (a signal, the OOM
killer, a crash) is retried; the retry classifies the images that were in flight alone first.
TEST-ONLY: INFERSTACK_TEST_CRASH_ON_KEY_SUFFIX makes the worker SIGKILL itself before
decoding a key with that suffix (a fault hook for tests; never set it in a deployment).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Sequence
from typing import Any

from inferstack.batch.manifest import ManifestError
from inferstack.batch.worker import (
    EXIT_CONFIG,
    EXIT_DATAERR,
    EXIT_OK,
    EXIT_TEMPFAIL,
    InfrastructureError,
    ShardWorker,
    WorkerConfig,
    read_manifest,
    read_shard,
)
from inferstack.s3 import parse_s3_uri

SERVICE = "inferstack-batch-worker"


def _env_int(name: str, default: int | None) -> int | None:
    raw = os.environ.get(name, "").strip()
    return int(raw) if raw else default


def default_io_threads(cpus: int) -> int:
    """I/O threads: S3 latency dominates, decode is cheap with JPEG draft mode; 2-4 keep the
    interpreters fed (2 measured slightly better than 3 on 2 vCPUs)."""
    return max(2, min(4, cpus))


def interpreter_layout(cpus: int, interpreters: int | None, threads: int | None) -> tuple[int, int]:
    """(interpreters, threads each). Default: one single-threaded interpreter per CPU.

    Why: a multi-threaded invoke waits at every layer for its slowest thread, so when decode
    and S3 calls take a CPU away for a moment, both interpreter threads stall; independent
    single-threaded interpreters just take turns. Measured with ResNet-50 int8 on 2 vCPUs
    shared with other work (tests/bench/bench_batch.py, 500 images), images/s for
    2 interpreters x 1 thread / 1 x 2 threads / 2 processes x 1 thread in three runs:
    17.2 / 16.3 / 14.3 (quiet), 14.1 / 8.0 / 10.9 and 12.3 / 13.1 / 5.0 (load 3-10). CPU per
    image is the same (106-108 ms) in every layout, so the differences are mostly the other
    load; 2 x 1 was best in two runs of three. Cost: one more interpreter in memory, peak
    RSS 213 MB instead of 162 MB.
    """
    if interpreters is None:
        interpreters = cpus if threads is None else max(1, cpus // threads)
    if threads is None:
        threads = max(1, cpus // interpreters)
    return max(1, interpreters), max(1, threads)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    from inferstack.runtime import available_cpus  # noqa: PLC0415

    cpus = available_cpus()
    io_threads = _env_int("WORKER_IO_THREADS", None) or default_io_threads(cpus)
    parser = argparse.ArgumentParser(prog="inferstack-worker", description=__doc__.split("\n")[0])
    parser.add_argument("--manifest", default=os.environ.get("MANIFEST_URI"), help="s3:// URI")
    parser.add_argument("--array-index", type=int, default=_env_int("AWS_BATCH_JOB_ARRAY_INDEX", 0))
    parser.add_argument("--job-id", default=os.environ.get("AWS_BATCH_JOB_ID", ""))
    parser.add_argument("--model-uri", default=os.environ.get("MODEL_URI"))
    parser.add_argument(
        "--model-sha256",
        default=os.environ.get("MODEL_SHA256") or None,
        help="sha256 of model.tflite the deployment expects; another model is refused (exit 78)",
    )
    parser.add_argument("--output-bucket", default=os.environ.get("DATA_BUCKET", ""))
    parser.add_argument("--output-prefix", default=os.environ.get("OUTPUT_PREFIX", "output/"))
    parser.add_argument("--io-threads", type=int, default=io_threads)
    parser.add_argument(
        "--prefetch", type=int, default=_env_int("WORKER_PREFETCH", None) or 2 * io_threads + 2
    )
    parser.add_argument(
        "--io-nice",
        type=int,
        choices=range(20),
        metavar="0..19",
        default=_env_int("WORKER_IO_NICE", WorkerConfig.io_nice),
        help="how much lower the I/O threads' CPU priority is (default %(default)s; 0: equal)",
    )
    parser.add_argument(
        "--interpreters",
        type=int,
        default=_env_int("INTERPRETERS", None),
        help="interpreters (inference threads) in this process (default: see below)",
    )
    parser.add_argument(
        "--interpreter-threads",
        type=int,
        default=_env_int("INTERPRETER_THREADS", None),
        help="threads per interpreter",
    )
    parser.add_argument("--top-k", type=int, default=_env_int("DEFAULT_TOP_K", 5))
    args = parser.parse_args(argv)
    args.interpreters, args.interpreter_threads = interpreter_layout(
        cpus, args.interpreters, args.interpreter_threads
    )
    if not args.manifest or args.manifest.startswith("Ref::"):
        parser.error("--manifest (or MANIFEST_URI) is required: s3://bucket/manifests/<id>.json")
    if not args.model_uri:
        parser.error("--model-uri (or MODEL_URI) is required")
    from inferstack.bundle import normalize_sha256  # noqa: PLC0415

    try:
        args.model_sha256 = normalize_sha256(args.model_sha256)
    except ValueError as exc:
        parser.error(f"--model-sha256 (or MODEL_SHA256): {exc}")
    return args


def run(args: argparse.Namespace, *, s3: Any = None) -> int:
    """Classify the shard; ``s3``: a client to use instead of a new one (tests inject one)."""
    from botocore.exceptions import BotoCoreError, ClientError  # noqa: PLC0415
    from inferstack.bundle import load_bundle  # noqa: PLC0415
    from inferstack.classifier import Classifier  # noqa: PLC0415
    from inferstack.errors import BundleError, BundleIntegrityError, ModelUnavailable  # noqa: PLC0415
    from inferstack.telemetry import make_logger, make_metrics  # noqa: PLC0415

    logger = make_logger(SERVICE)
    metrics = make_metrics(SERVICE)
    config = WorkerConfig(
        manifest_uri=args.manifest,
        model_uri=args.model_uri,
        model_sha256=args.model_sha256,
        array_index=args.array_index,
        job_id=args.job_id,
        attempt=_env_int("AWS_BATCH_JOB_ATTEMPT", None),
        output_bucket=args.output_bucket,
        output_prefix=args.output_prefix,
        io_threads=args.io_threads,
        prefetch=args.prefetch,
        io_nice=args.io_nice,
        interpreter_threads=args.interpreter_threads,
        top_k=args.top_k,
        max_image_bytes=_env_int("MAX_IMAGE_BYTES", None),
        max_image_pixels=_env_int("MAX_IMAGE_PIXELS", None),
    )
    logger.append_keys(manifest=config.manifest_uri, array_index=config.array_index)
    store = None  # an injected client (tests) serves the images too
    if s3 is None:
        s3, store = _clients(config.io_threads)
    worker: ShardWorker | None = None
    try:
        manifest = read_manifest(s3, config.manifest_uri)
        if not config.job_id:
            # Outside Batch (a local run): a stable id per manifest keeps reruns together.
            config = _with_job_id(config, f"local-{manifest.id[:16]}")
        items = read_shard(s3, manifest, config.array_index, parse_s3_uri(args.manifest).bucket)
        load_start = time.perf_counter()
        try:
            bundle = load_bundle(
                config.model_uri, s3_client=s3, expected_sha256=config.model_sha256
            )
            classifiers = [
                Classifier.from_bundle(bundle, num_threads=config.interpreter_threads)
                for _ in range(args.interpreters)
            ]
        except (BundleError, BundleIntegrityError) as exc:
            # Another try reads the same refused bundle: fail the child without a retry.
            logger.error("model bundle refused", extra={"error": str(exc)})
            return EXIT_CONFIG
        except (ModelUnavailable, OSError, ClientError, BotoCoreError) as exc:
            raise InfrastructureError(f"model unavailable: {exc}") from exc
        load_seconds = time.perf_counter() - load_start
        worker = ShardWorker(config, s3, classifiers, manifest, store=store)
        _log_start(logger, worker, len(items))
        start, cpu_start = time.perf_counter(), time.process_time()
        stats = worker.run(items)
        seconds = time.perf_counter() - start
        summary = worker.child_summary(
            stats, seconds, load_seconds, cpu_seconds=time.process_time() - cpu_start
        )
        job_summary = worker.write_summaries(summary)
    except InfrastructureError as exc:
        logger.error("infrastructure fault, exiting for a retry", extra={"error": str(exc)})
        if worker is not None:
            worker.release_inflight()  # a handled exit: no image is to blame
        return EXIT_TEMPFAIL
    except ManifestError as exc:
        logger.error("invalid manifest", extra={"error": str(exc)})
        return EXIT_DATAERR
    logger.info("shard finished", extra={"summary": summary, "job_summary": job_summary})
    from aws_lambda_powertools.metrics import MetricUnit  # noqa: PLC0415

    metrics.add_metric(name="BatchImagesClassified", unit=MetricUnit.Count, value=stats.ok)
    metrics.add_metric(name="BatchImagesFailed", unit=MetricUnit.Count, value=stats.failed)
    metrics.add_metric(name="BatchImagesSkipped", unit=MetricUnit.Count, value=stats.skipped)
    metrics.add_metric(
        name="BatchImagesPerSecond", unit=MetricUnit.CountPerSecond, value=summary["images_per_s"]
    )
    metrics.flush_metrics()
    return EXIT_OK


def _clients(io_threads: int) -> tuple[Any, Any]:
    """The worker's boto3 S3 client and the object store of its per-image GETs and PUTs: the
    AWS Common Runtime's S3 client when awscrt is installed (the worker image pins it),
    unless INFERSTACK_S3_CLIENT=botocore (see inferstack.batch.clients)."""
    from inferstack.batch.clients import make_client, make_store  # noqa: PLC0415

    s3 = make_client("s3", max_pool_connections=2 * io_threads + 4)
    return s3, make_store(s3)


def _log_start(logger: Any, worker: ShardWorker, images: int) -> None:
    history = worker.load_history()
    extra = {
        "images": images,
        "model": worker.model,
        "attempt": history.attempt,
        "suspects": history.suspects,
        "worker_crash": sorted(history.poison),
    }
    logger.info("shard started", extra=extra)


def _with_job_id(config: WorkerConfig, job_id: str) -> WorkerConfig:
    from dataclasses import replace  # noqa: PLC0415

    return replace(config, job_id=job_id)


def main(argv: Sequence[str] | None = None, *, s3: Any = None) -> int:
    return run(parse_args(argv), s3=s3)


if __name__ == "__main__":
    sys.exit(main())
