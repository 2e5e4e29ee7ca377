"""``inferstack batch ...``: bulk submit over a prefix, job status, reconcile and compare.

Added to the ``inferstack`` parser by ``add_batch_commands``. Options default to the same
environment variables the dispatcher reads (DATA_BUCKET, JOB_QUEUE, JOB_DEFINITION,
INPUT_PREFIX, MANIFEST_PREFIX, OUTPUT_PREFIX, IMAGES_PER_CHILD, MAX_ARRAY_SIZE).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable, Iterator
from typing import Any

from inferstack.batch.manifest import Item, make_item
from inferstack.batch.naming import MODEL_RUNS_DIR

EXIT_OK = 0
EXIT_USAGE = 2
EXIT_FAILED = 1


class Progress:
    """Rate-limited progress lines on stderr (stdout carries the results)."""

    def __init__(self, every_seconds: float = 2.0, stream: Any = None) -> None:
        self.every = every_seconds
        self.stream = stream or sys.stderr
        self.start = self.last = time.monotonic()
        self.listed = self.accepted = 0
        self.manifests = 0

    def tick(self, *, force: bool = False) -> None:
        now = time.monotonic()
        if force or now - self.last >= self.every:
            self.last = now
            rate = self.listed / max(now - self.start, 1e-9)
            print(
                f"listed {self.listed} objects ({rate:.0f}/s), {self.accepted} images, "
                f"{self.manifests} manifests",
                file=self.stream,
                flush=True,
            )


def list_images(
    s3: Any, bucket: str, prefix: str, accept: Callable[[str], bool], progress: Progress
) -> Iterator[Item]:
    """Stream the images under ``prefix`` in key order, one listing page in memory at a time."""
    paginator = s3.get_paginator("list_objects_v2")
    for page in paginator.paginate(
        Bucket=bucket, Prefix=prefix, PaginationConfig={"PageSize": 1000}
    ):
        for obj in page.get("Contents", []):
            progress.listed += 1
            if accept(obj["Key"]):
                progress.accepted += 1
                yield make_item(obj["Key"], obj.get("ETag"))
        progress.tick()


def _run_overrides(
    args: argparse.Namespace, output_prefix: str, s3: Any
) -> tuple[dict[str, str], str, dict[str, str]]:
    """Container environment overrides, manifest salt and report fields of --model-uri and
    --output-prefix: which model the workers load (MODEL_URI, pinned by MODEL_SHA256) and
    where they write (OUTPUT_PREFIX), so a re-run with another model keeps the outputs of
    the deployed one. Raises ValueError for a usage error."""
    from inferstack.batch.naming import normalize_prefix  # noqa: PLC0415
    from inferstack.bundle import load_metadata, normalize_sha256  # noqa: PLC0415
    from inferstack.s3 import is_s3_uri  # noqa: PLC0415

    env: dict[str, str] = {}
    report: dict[str, str] = {}
    salt_parts: list[str] = []
    out = normalize_prefix(args.output_prefix) if args.output_prefix is not None else None
    if args.model_sha256 and not args.model_uri:
        raise ValueError("--model-sha256 pins the model of --model-uri: give --model-uri too")
    if args.model_uri:
        uri = args.model_uri if args.model_uri.endswith("/") else args.model_uri + "/"
        if not is_s3_uri(uri):
            raise ValueError(f"--model-uri must be an s3:// bundle prefix, got {args.model_uri!r}")
        metadata = load_metadata(uri, s3_client=s3)
        sha = normalize_sha256(args.model_sha256) or metadata.sha256
        if sha != metadata.sha256:
            raise ValueError(
                f"{uri}model.json declares sha256 {metadata.sha256}, not --model-sha256 {sha}: "
                "the workers would refuse this bundle"
            )
        env.update(MODEL_URI=uri, MODEL_SHA256=sha)
        report.update(model_uri=uri, model_sha256=sha)
        salt_parts.append(f"model:{sha}")
        if out is None:
            out = f"{output_prefix}{MODEL_RUNS_DIR}/{metadata.name}/{metadata.version}/"
    if out is not None:
        if not out.startswith(output_prefix) or not out.strip("/"):
            raise ValueError(
                f"--output-prefix {out} is not under the job definition's output prefix "
                f"{output_prefix} (OUTPUT_PREFIX): the job role writes only there"
            )
        if out != output_prefix:
            env["OUTPUT_PREFIX"] = out
            salt_parts.append(f"output:{out}")
        report["output_prefix"] = out
    return env, ":".join(salt_parts), report


def _cmd_submit(args: argparse.Namespace) -> int:
    from botocore.exceptions import BotoCoreError, ClientError  # noqa: PLC0415

    from inferstack.batch.clients import make_client  # noqa: PLC0415
    from inferstack.batch.settings import BatchSettings, SettingsError  # noqa: PLC0415
    from inferstack.batch.submit import JobSubmitter, Submission  # noqa: PLC0415
    from inferstack.errors import InferstackError  # noqa: PLC0415

    def fail(message: object) -> int:
        print(f"inferstack: error: {message}", file=sys.stderr)
        return EXIT_USAGE

    try:
        settings = BatchSettings.from_env(
            require_jobs=not args.dry_run,
            bucket=args.bucket,
            job_queue=args.job_queue,
            job_definition=args.job_definition,
            input_prefix=args.input_prefix,
            manifest_prefix=args.manifest_prefix,
            images_per_child=args.images_per_child,
            max_array_size=args.max_array_size,
        )
    except SettingsError as exc:
        return fail(exc)
    s3 = make_client("s3")
    try:
        environment, run_salt, run = _run_overrides(args, settings.output_prefix, s3)
    except (ValueError, InferstackError) as exc:
        return fail(exc)
    except (ClientError, BotoCoreError) as exc:
        return fail(f"AWS: {exc}")
    if run:
        where = f"s3://{settings.bucket}/{run.get('output_prefix', settings.output_prefix)}"
        model = run.get("model_uri", "the job definition's model")
        print(f"model {model}, outputs under {where}", file=sys.stderr)
    batch = None if args.dry_run else make_client("batch")
    submitter = JobSubmitter(
        settings,
        s3,
        batch,
        dry_run=args.dry_run,
        owner=f"cli:{os.getpid()}",
        environment=environment,
    )
    progress = Progress()

    def report(submission: Submission) -> None:
        progress.manifests += 1
        print(json.dumps({**submission.to_dict(), **run}, sort_keys=True), flush=True)
        progress.tick(force=True)

    items = list_images(s3, settings.bucket, args.prefix, settings.has_image_suffix, progress)
    salt = ":".join(part for part in (run_salt, args.salt) if part)
    submissions = submitter.submit_items(items, salt=salt, source="submit", on_submission=report)
    progress.tick(force=True)
    if not submissions:
        print(f"no images under s3://{settings.bucket}/{args.prefix}", file=sys.stderr)
    return EXIT_OK


def _cmd_status(args: argparse.Namespace) -> int:
    from botocore.exceptions import BotoCoreError, ClientError  # noqa: PLC0415

    from inferstack.batch.clients import make_client  # noqa: PLC0415
    from inferstack.batch.naming import job_summary_key, normalize_prefix  # noqa: PLC0415
    from inferstack.batch.summary import incident_status, write_json  # noqa: PLC0415

    bucket = args.bucket or os.environ.get("DATA_BUCKET", "")
    if not bucket:
        print("inferstack: error: --bucket or DATA_BUCKET is required", file=sys.stderr)
        return EXIT_USAGE
    output_prefix = normalize_prefix(args.output_prefix)
    s3 = make_client("s3")
    batch = None if args.no_batch else make_client("batch")
    try:
        status = incident_status(s3, bucket, output_prefix, args.job_id, args.children, batch=batch)
    except (ClientError, BotoCoreError) as exc:
        if batch is None:
            raise
        # No access to Batch (or the job is gone): what the summaries say is still worth it.
        print(f"inferstack: warning: AWS Batch not read: {exc}", file=sys.stderr)
        status = incident_status(s3, bucket, output_prefix, args.job_id, args.children)
    # A job that ended FAILED gets its summary too, listing the keys without a result.
    if args.write and (status["complete"] or status.get("batch_status") == "FAILED"):
        write_json(s3, bucket, job_summary_key(output_prefix, args.job_id), status)
    print(json.dumps(status, indent=1, sort_keys=True))
    return EXIT_OK if status["complete"] else EXIT_FAILED


def _expected_sha256(args: argparse.Namespace, s3: Any) -> str:
    """--model-sha256, else model.json's sha256 at --model-uri (then $MODEL_SHA256, $MODEL_URI)."""
    from inferstack.bundle import load_metadata, normalize_sha256  # noqa: PLC0415

    pinned = args.model_sha256 or (None if args.model_uri else os.environ.get("MODEL_SHA256"))
    sha = normalize_sha256(pinned)
    if sha is not None:
        return sha
    uri = args.model_uri or os.environ.get("MODEL_URI", "")
    if not uri:
        raise ValueError("--model-uri or --model-sha256 (or MODEL_URI, MODEL_SHA256) is required")
    return load_metadata(uri, s3_client=s3).sha256


def _cmd_reconcile(args: argparse.Namespace) -> int:
    from botocore.exceptions import BotoCoreError, ClientError  # noqa: PLC0415

    from inferstack.batch.clients import make_client  # noqa: PLC0415
    from inferstack.batch.naming import normalize_prefix  # noqa: PLC0415
    from inferstack.batch.reconcile import Reconciler, render_table  # noqa: PLC0415
    from inferstack.batch.settings import BatchSettings, SettingsError  # noqa: PLC0415
    from inferstack.batch.submit import (  # noqa: PLC0415
        JobSubmitter,
        Submission,
        SubmissionInProgress,
    )
    from inferstack.errors import InferstackError  # noqa: PLC0415

    def fail(message: object) -> int:
        print(f"inferstack: error: {message}", file=sys.stderr)
        return EXIT_USAGE

    prefixes = {
        name: normalize_prefix(value)
        for name in ("input_prefix", "output_prefix", "manifest_prefix")
        if (value := getattr(args, name)) is not None
    }
    try:
        settings = BatchSettings.from_env(
            require_jobs=args.submit,
            bucket=args.bucket,
            job_queue=args.job_queue,
            job_definition=args.job_definition,
            images_per_child=args.images_per_child,
            max_array_size=args.max_array_size,
            **prefixes,
        )
    except SettingsError as exc:
        return fail(exc)
    if args.workers < 1:
        return fail("--workers must be at least 1")
    s3 = make_client("s3", max_pool_connections=args.workers)
    progress = Progress()
    try:
        sha = _expected_sha256(args, s3)
        reconciler = Reconciler(
            s3,
            settings.bucket,
            model_sha256=sha,
            input_prefix=settings.input_prefix,
            output_prefix=settings.output_prefix,
            workers=args.workers,
        )
        items = list_images(s3, settings.bucket, args.prefix, settings.has_image_suffix, progress)
        report = reconciler.run(args.prefix, items)
        submissions: list[Submission] = []
        if args.submit and not report.all_current:
            submitter = JobSubmitter(settings, s3, make_client("batch"), owner=f"cli:{os.getpid()}")
            salt = f"reconcile:{sha}" + (f":{args.salt}" if args.salt else "")
            submissions = submitter.submit_items(report.items(), salt=salt, source="reconcile")
    except (ValueError, InferstackError, SubmissionInProgress) as exc:
        return fail(exc)
    except (ClientError, BotoCoreError) as exc:
        return fail(f"AWS: {exc}")
    progress.manifests = len(submissions)
    progress.tick(force=True)
    if args.json:
        doc = {**report.to_dict(), "submissions": [s.to_dict() for s in submissions]}
        print(json.dumps(doc, indent=1, sort_keys=True))
    else:
        print(render_table(report))
        for sub in submissions:
            what = f"{sub.job_name}, {sub.count} images, {sub.children} children"
            print(f"{sub.status} job {sub.job_id} ({what}, {sub.manifest_uri})")
    if report.total == 0:
        print(f"no images under s3://{settings.bucket}/{args.prefix}", file=sys.stderr)
    return EXIT_OK if report.all_current else EXIT_FAILED


def _cmd_compare(args: argparse.Namespace) -> int:
    from botocore.exceptions import BotoCoreError, ClientError  # noqa: PLC0415

    from inferstack.batch.clients import make_client  # noqa: PLC0415
    from inferstack.batch.compare import (  # noqa: PLC0415
        compare_prefixes,
        parse_location,
        render_table,
    )

    def fail(message: object) -> int:
        print(f"inferstack: error: {message}", file=sys.stderr)
        return EXIT_USAGE

    if args.workers < 1 or args.limit < 0:
        return fail("--workers must be at least 1 and --limit at least 0")
    bucket = args.bucket or os.environ.get("DATA_BUCKET") or None
    try:
        a = parse_location(args.prefix_a, bucket)
        b = parse_location(args.prefix_b, bucket)
        s3 = make_client("s3", max_pool_connections=args.workers)
        doc = compare_prefixes(s3, a, b, workers=args.workers, limit=args.limit)
    except ValueError as exc:
        return fail(exc)
    except (ClientError, BotoCoreError) as exc:
        return fail(f"AWS: {exc}")
    print(json.dumps(doc, indent=1, sort_keys=True) if args.json else render_table(doc))
    if doc["a"]["records"] == 0 or doc["b"]["records"] == 0:
        empty = a.uri if doc["a"]["records"] == 0 else b.uri
        print(f"inferstack: warning: no records under {empty}", file=sys.stderr)
    return EXIT_OK


def _add_compare(commands: Any) -> None:
    compare = commands.add_parser(
        "compare",
        help="compare two runs over the same images: top-1 agreement, confidence, differences",
        description="Read the output records under two prefixes (s3:// URIs, or prefixes of "
        "--bucket / $DATA_BUCKET), e.g. output/ and the output/_models/<name>/<version>/ of "
        "`inferstack batch submit --model-uri`, match them by input key and print each run's "
        "models (name, version, sha256 from the records), record, error-record and unreadable "
        "counts, the keys found in one run only, the top-1 agreement over the images with a "
        "result in both runs and each run's mean top-1 probability over those images, and the "
        "images whose top-1 differs (both labels and probabilities; --limit of them). Exit 0, "
        "or 2 on a usage or access error.",
    )
    compare.add_argument("prefix_a", metavar="A", help="output prefix of the first run")
    compare.add_argument("prefix_b", metavar="B", help="output prefix of the second run")
    compare.add_argument("--bucket", default=None, help="bucket of bare prefixes ($DATA_BUCKET)")
    compare.add_argument("--workers", type=int, default=16, help="concurrent record reads")
    compare.add_argument(
        "--limit", type=int, default=20, help="keys listed per list (default: %(default)s)"
    )
    compare.add_argument("--json", action="store_true", help="one JSON document on stdout")
    compare.set_defaults(func=_cmd_compare)


def _env_int(name: str) -> int | None:
    raw = os.environ.get(name, "").strip()
    return int(raw) if raw else None


def add_batch_commands(subparsers: Any) -> None:
    batch = subparsers.add_parser(
        "batch", help="batch jobs: bulk submit, status, reconcile, compare"
    )
    commands = batch.add_subparsers(dest="batch_command", metavar="COMMAND", required=True)

    submit = commands.add_parser(
        "submit",
        help="submit array jobs over every image under a prefix (backfill)",
        description="List s3://BUCKET/PREFIX (streaming), write manifests and submit one array "
        "job per manifest. Idempotent: the same images (keys and ETags) map to the same "
        "manifest and job name, and an already submitted manifest is not submitted again. "
        "Progress goes to stderr, one JSON line per manifest to stdout. --model-uri re-runs the "
        "images with another model bundle: the jobs get MODEL_URI, MODEL_SHA256 and "
        "OUTPUT_PREFIX as container environment overrides, which win over the job "
        "definition's and apply to every child of an array job.",
    )
    submit.add_argument("--bucket", default=None, help="data bucket (default $DATA_BUCKET)")
    submit.add_argument("--prefix", required=True, help="key prefix to list, e.g. input/2024/")
    submit.add_argument("--images-per-child", type=int, default=_env_int("IMAGES_PER_CHILD"))
    submit.add_argument("--max-array-size", type=int, default=_env_int("MAX_ARRAY_SIZE"))
    submit.add_argument("--job-queue", default=None, help="default $JOB_QUEUE")
    submit.add_argument("--job-definition", default=None, help="default $JOB_DEFINITION")
    submit.add_argument(
        "--input-prefix", default=None, help="root of the output mirror (default $INPUT_PREFIX)"
    )
    submit.add_argument("--manifest-prefix", default=None, help="default $MANIFEST_PREFIX")
    submit.add_argument(
        "--salt",
        default="",
        help="run the same images again as a new job (e.g. after a model update)",
    )
    submit.add_argument(
        "--model-uri",
        default=None,
        metavar="S3URI",
        help="run this model bundle instead of the job definition's (e.g. the canary's "
        "candidate, `terraform output canary`); its outputs go under "
        f"<output prefix>{MODEL_RUNS_DIR}/<name>/<version>/ unless --output-prefix is given; "
        "the job role must be allowed to read it (modules/batch additional_model_uris)",
    )
    submit.add_argument(
        "--model-sha256",
        default=None,
        metavar="HEX",
        help="the sha256 the workers must find in --model-uri's model.json "
        "(default: the one it declares, read now)",
    )
    submit.add_argument(
        "--output-prefix",
        default=None,
        help="where the workers write (under the job definition's $OUTPUT_PREFIX)",
    )
    submit.add_argument(
        "--dry-run", action="store_true", help="list and plan only: write and submit nothing"
    )
    submit.set_defaults(func=_cmd_submit)

    status = commands.add_parser(
        "status",
        help="aggregate a job's child summaries, with per-child attempts and exits",
        description="Read output/_summaries/<job id>/*.json and print the job summary with, "
        "per child, its attempts and exit reasons (from AWS Batch), images done and error "
        "records by code; while children are missing, the keys of theirs that have no output "
        "or error record; exit 1 while children are missing. --write stores it as "
        "output/_summaries/<job id>.json.",
    )
    status.add_argument("--job-id", required=True)
    status.add_argument("--bucket", default=None, help="default $DATA_BUCKET")
    status.add_argument("--output-prefix", default=os.environ.get("OUTPUT_PREFIX", "output/"))
    status.add_argument("--children", type=int, default=None, help="children the job has")
    status.add_argument(
        "--write",
        action="store_true",
        help="write the job summary if the job is complete, or FAILED in AWS Batch",
    )
    status.add_argument(
        "--no-batch", action="store_true", help="do not read attempts and exits from AWS Batch"
    )
    status.set_defaults(func=_cmd_status)
    _add_reconcile(commands)
    _add_compare(commands)


def _add_reconcile(commands: Any) -> None:
    reconcile = commands.add_parser(
        "reconcile",
        help="list (and resubmit) the images under a prefix without a current output",
        description="List the images under s3://BUCKET/PREFIX and their output records and "
        "class each image: current (the record names the input's current ETag and the "
        "expected model sha256), missing (no output), stale_input (made from another ETag, "
        "whatever the model), other_model (made by another model sha256), unreadable_record "
        "(not a JSON record). An error record (an 'error' key) for the same ETag and model "
        "counts as current: the image was tried and cannot be classified. Prints the counts "
        "and the keys not current (--json: one document); exit 0 when all are current, 1 when "
        "some are not (with --submit too: it reports the state found), 2 on a usage or access "
        "error. --submit submits exactly the keys not current as array jobs (manifests named "
        "by their content, the model sha256 and --salt, so running it again while those jobs "
        "run submits nothing new; pass --salt to resubmit after they end).",
    )
    reconcile.add_argument("--bucket", default=None, help="data bucket (default $DATA_BUCKET)")
    reconcile.add_argument("--prefix", required=True, help="key prefix to list, e.g. input/2024/")
    model = reconcile.add_mutually_exclusive_group()
    model.add_argument(
        "--model-uri",
        default=None,
        help="bundle (s3:// or folder) whose model.json names the model (default $MODEL_URI)",
    )
    model.add_argument(
        "--model-sha256", default=None, help="the expected model sha256 (default $MODEL_SHA256)"
    )
    reconcile.add_argument("--input-prefix", default=None, help="default $INPUT_PREFIX")
    reconcile.add_argument("--output-prefix", default=None, help="default $OUTPUT_PREFIX")
    reconcile.add_argument("--workers", type=int, default=16, help="concurrent record reads")
    reconcile.add_argument("--json", action="store_true", help="one JSON document on stdout")
    reconcile.add_argument(
        "--submit", action="store_true", help="submit the keys not current as array jobs"
    )
    reconcile.add_argument("--job-queue", default=None, help="default $JOB_QUEUE")
    reconcile.add_argument("--job-definition", default=None, help="default $JOB_DEFINITION")
    reconcile.add_argument("--images-per-child", type=int, default=_env_int("IMAGES_PER_CHILD"))
    reconcile.add_argument("--max-array-size", type=int, default=_env_int("MAX_ARRAY_SIZE"))
    reconcile.add_argument("--manifest-prefix", default=None, help="default $MANIFEST_PREFIX")
    reconcile.add_argument("--salt", default="", help="submit the same keys again as new jobs")
    reconcile.set_defaults(func=_cmd_reconcile)
