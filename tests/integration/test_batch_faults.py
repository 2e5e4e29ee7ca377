"""Batch fault tests against a real moto server (in-process, 127.0.0.1, free port).

The worker talks to the emulator over HTTP through boto3 with an endpoint URL, exactly as it
talks to S3 on AWS, so botocore's real retry logic, connection handling and conditional
writes are exercised. Pretrained MobileNetV2 fixture + real photos.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from batch_support import (
    DATA_BUCKET,
    MODULE_RETRY_STRATEGY,
    REGION,
    create_batch_env,
    import_mobilenet,
    photo_jpegs,
    put_images,
    read_outputs,
    upload_bundle,
    write_manifests,
)
from inferstack.batch.inflight import inflight_key
from inferstack.batch.summary import list_child_summary_keys
from inferstack.batch.worker import TEST_CRASH_ENV
from inferstack.local.batch import EXITED_REASON, exit_code_of, retry_decision
from inferstack.local.emulator import free_port

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def moto_url() -> Iterator[str]:
    from moto.server import ThreadedMotoServer  # noqa: PLC0415

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    url = f"http://127.0.0.1:{port}"
    request = urllib.request.Request(
        f"{url}/moto-api/config",
        data=json.dumps({"batch": {"use_docker": False}}).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    urllib.request.urlopen(request).read()
    yield url
    server.stop()


@pytest.fixture
def aws_env(moto_url: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> dict[str, str]:
    urllib.request.urlopen(
        urllib.request.Request(f"{moto_url}/moto-api/reset", method="POST")
    ).read()
    env = {
        "AWS_ENDPOINT_URL": moto_url,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": REGION,
        "MODEL_CACHE_DIR": str(tmp_path / "model-cache"),
        "DATA_BUCKET": DATA_BUCKET,
        "OUTPUT_PREFIX": "output/",
        "POWERTOOLS_METRICS_NAMESPACE": "Inferstack",
    }
    for name in ("AWS_PROFILE", "AWS_BATCH_JOB_ID", "AWS_BATCH_JOB_ARRAY_INDEX"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return env


def client(service: str, url: str, **kwargs: Any) -> Any:
    return boto3.client(service, endpoint_url=url, region_name=REGION, **kwargs)


@pytest.fixture
def s3(aws_env: dict[str, str]) -> Any:
    s3 = client("s3", aws_env["AWS_ENDPOINT_URL"])
    s3.create_bucket(Bucket=DATA_BUCKET)
    s3.create_bucket(Bucket="models")
    return s3


@pytest.fixture(scope="module")
def mobilenet_dir(imagenet_fixtures: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return import_mobilenet(imagenet_fixtures, tmp_path_factory.mktemp("bundle") / "mobilenet")


@pytest.fixture
def model_uri(s3: Any, mobilenet_dir: Path) -> str:
    return upload_bundle(s3, mobilenet_dir, "models", "mobilenet/1/")


def summary(s3: Any, job_id: str, index: int = 0) -> dict[str, Any]:
    key = f"output/_summaries/{job_id}/{index}.json"
    return json.loads(s3.get_object(Bucket=DATA_BUCKET, Key=key)["Body"].read())


def count_outputs(s3: Any) -> int:
    listed = s3.list_objects_v2(Bucket=DATA_BUCKET, Prefix="output/")
    return sum(1 for o in listed.get("Contents", []) if "/_summaries/" not in o["Key"])


def output_versions(s3: Any) -> Counter[str]:
    versions: Counter[str] = Counter()
    for page in s3.get_paginator("list_object_versions").paginate(
        Bucket=DATA_BUCKET, Prefix="output/"
    ):
        for version in page.get("Versions", []):
            if "/_summaries/" not in version["Key"]:
                versions[version["Key"]] += 1
    return versions


def worker_command(manifest: str, model_uri: str, job_id: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "inferstack_worker.main",
        "--manifest",
        manifest,
        "--model-uri",
        model_uri,
        "--job-id",
        job_id,
        "--interpreter-threads",
        "1",
        "--io-threads",
        "2",
    ]


def test_worker_killed_mid_shard_resumes_without_loss_or_duplicates(
    s3: Any, model_uri: str, aws_env: dict[str, str]
) -> None:
    s3.put_bucket_versioning(Bucket=DATA_BUCKET, VersioningConfiguration={"Status": "Enabled"})
    total = 160
    photos = photo_jpegs(total, seed=7, sizes=((1024, 768), (800, 600)))
    keys = put_images(s3, {f"input/run/{i:04d}.jpg": body for i, body in enumerate(photos)})
    (manifest,) = write_manifests(s3, keys, images_per_child=total)
    env = {**os.environ, **aws_env}
    command = worker_command(manifest, model_uri, "job-kill")

    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    try:
        while count_outputs(s3) < 10:
            assert process.poll() is None, process.stderr.read().decode() if process.stderr else ""
            assert time.monotonic() < deadline, "worker produced no outputs in time"
            time.sleep(0.05)
        process.send_signal(signal.SIGKILL)
    finally:
        process.wait(timeout=30)
    assert process.returncode == -signal.SIGKILL
    done_at_kill = count_outputs(s3)
    assert 10 <= done_at_kill < total, "the kill must land mid-shard for this test to mean anything"

    rerun = subprocess.run(command, env=env, capture_output=True, timeout=300, check=False)
    assert rerun.returncode == 0, rerun.stderr.decode()[-2000:]

    outputs = read_outputs(s3)
    expected = {f"output/run/{i:04d}.jpg.json" for i in range(total)}
    assert set(outputs) == expected
    etags = {key: etag.strip('"') for key, etag in keys}
    for key, record in outputs.items():
        assert "predictions" in record, key
        assert record["input"]["etag"] == etags[record["input"]["key"]]
    # Every image was written exactly once: the rerun rewrote none of the finished ones.
    assert set(output_versions(s3).values()) == {1}
    stats = summary(s3, "job-kill")
    assert stats["skipped"] >= done_at_kill
    assert stats["skipped"] + stats["ok"] == total
    assert stats["failed"] == 0


RETRY_STRATEGY = MODULE_RETRY_STRATEGY


def run_child_like_batch(
    s3: Any,
    command: list[str],
    env: dict[str, str],
    *,
    kill_when: Any = None,
) -> list[int]:
    """Attempts of one array child as Batch makes them (AWS_BATCH_JOB_ATTEMPT, the retry
    strategy, exit 128 + N for signal N); ``kill_when(s3)``: SIGKILL the first attempt once
    it returns True. Returns the attempts' exit codes."""
    codes: list[int] = []
    for attempt in range(1, RETRY_STRATEGY["attempts"] + 1):
        process = subprocess.Popen(
            command,
            env={**env, "AWS_BATCH_JOB_ATTEMPT": str(attempt)},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        try:
            if kill_when is not None and attempt == 1:
                deadline = time.monotonic() + 120
                while not kill_when(s3):
                    assert process.poll() is None, "the worker ended before the kill"
                    assert time.monotonic() < deadline, "worker produced no outputs in time"
                    time.sleep(0.02)
                process.send_signal(signal.SIGKILL)
            _, stderr = process.communicate(timeout=300)
        finally:
            if process.poll() is None:
                process.kill()
        codes.append(exit_code_of(process.returncode))
        if codes[-1] == 0:
            break
        if not retry_decision(codes[-1], "", RETRY_STRATEGY, EXITED_REASON):
            raise AssertionError(stderr.decode()[-2000:])
    return codes


def test_killed_child_and_poison_image_every_input_has_exactly_one_record(
    s3: Any, model_uri: str, aws_env: dict[str, str]
) -> None:
    """Child 0 is SIGKILLed part-way; an image of child 1 kills the worker whenever it is
    decoded (the test-only fault hook). Batch's retries finish both, and every input ends
    with exactly one output or error record."""
    s3.put_bucket_versioning(Bucket=DATA_BUCKET, VersioningConfiguration={"Status": "Enabled"})
    per_child, children = 20, 3
    total = per_child * children
    photos = photo_jpegs(total, seed=9, sizes=((1024, 768),))
    keys = put_images(s3, {f"input/x/{i:03d}.jpg": body for i, body in enumerate(photos)})
    (manifest,) = write_manifests(s3, keys, images_per_child=per_child)
    poison = "input/x/027.jpg"
    env = {**os.environ, **aws_env, TEST_CRASH_ENV: "/027.jpg"}
    child0 = {f"output/x/{i:03d}.jpg.json" for i in range(per_child)}

    at_kill: list[int] = []

    def child0_part_done(s3: Any) -> bool:
        listed = s3.list_objects_v2(Bucket=DATA_BUCKET, Prefix="output/x/0")
        at_kill.append(len({o["Key"] for o in listed.get("Contents", [])} & child0))
        return at_kill[-1] >= 3

    codes = {}
    for index in range(children):
        child_env = {
            **env,
            "AWS_BATCH_JOB_ID": f"job-faults:{index}",
            "AWS_BATCH_JOB_ARRAY_INDEX": str(index),
        }
        command = worker_command(manifest, model_uri, f"job-faults:{index}")
        codes[index] = run_child_like_batch(
            s3, command, child_env, kill_when=child0_part_done if index == 0 else None
        )
        if index == 0:
            assert at_kill[-1] < per_child, "the kill must land mid-shard"

    assert codes == {0: [137, 0], 1: [137, 137, 0], 2: [0]}
    outputs = read_outputs(s3)
    assert set(outputs) == {f"output/x/{i:03d}.jpg.json" for i in range(total)}
    # None duplicated: no output was written twice, not even by the retries.
    assert set(output_versions(s3).values()) == {1}
    crashed = outputs["output/x/027.jpg.json"]
    assert crashed["error"]["code"] == "worker_crash"
    assert crashed["error"]["attempts"] == 2
    assert (crashed["job"]["attempt"], crashed["input"]["key"]) == (3, poison)
    assert sum("predictions" in r for r in outputs.values()) == total - 1

    job = json.loads(
        s3.get_object(Bucket=DATA_BUCKET, Key="output/_summaries/job-faults.json")["Body"].read()
    )
    assert (job["complete"], job["images"], job["with_record"]) == (True, total, total)
    assert (job["failed"], job["errors"]) == (1, {"worker_crash": 1})
    assert job["ok"] + job["skipped"] == total - 1
    assert job["children_with_worker_crash"] == [1]
    for index in range(children):
        marker_key = inflight_key("output/", "job-faults", index)
        marker = json.loads(s3.get_object(Bucket=DATA_BUCKET, Key=marker_key)["Body"].read())
        assert marker["inflight"] == [], index


class FlakyS3:
    """Answers the first ``failures`` GetObject attempts with a 503 SlowDown (or 500) before
    they reach the emulator; botocore's own retry logic then retries them with backoff."""

    def __init__(self, failures: int, *, status: int = 503, only_key: str | None = None) -> None:
        self.remaining = failures
        self.status = status
        self.only_key = only_key
        self.lock = threading.Lock()
        self.attempts: Counter[str] = Counter()
        self.injected: Counter[str] = Counter()

    def __call__(self, request: Any, **_: Any) -> Any:
        from botocore.awsrequest import AWSResponse  # noqa: PLC0415

        path = request.url.split("?", 1)[0]
        key = path.split(f"/{DATA_BUCKET}/", 1)[-1]
        if request.method != "GET" or not key.startswith("input/"):
            return None
        if self.only_key is not None and key != self.only_key:
            return None
        with self.lock:
            self.attempts[key] += 1
            if self.remaining <= 0:
                return None
            self.remaining -= 1
            self.injected[key] += 1
        code = "SlowDown" if self.status == 503 else "InternalError"
        body = f"<Error><Code>{code}</Code><Message>injected</Message></Error>".encode()
        return AWSResponse(
            request.url, self.status, {"Content-Type": "application/xml"}, _Raw(body)
        )


class _Raw:
    def __init__(self, body: bytes) -> None:
        self.body = body

    def stream(self, **_: Any) -> Iterator[bytes]:
        yield self.body


def flaky_client(url: str, hook: FlakyS3, attempts: int) -> Any:
    from botocore.config import Config  # noqa: PLC0415

    config = Config(
        retries={"mode": "standard", "total_max_attempts": attempts},
        s3={"addressing_style": "path"},
    )
    s3 = client("s3", url, config=config)
    s3.meta.events.register("before-send.s3.GetObject", hook)
    return s3


def run_in_process(manifest: str, model_uri: str, s3: Any, job_id: str) -> int:
    from inferstack_worker.main import main  # noqa: PLC0415

    argv = ["--manifest", manifest, "--model-uri", model_uri, "--job-id", job_id]
    return main([*argv, "--interpreter-threads", "1", "--io-threads", "3"], s3=s3)


@pytest.mark.parametrize("status", [503, 500])
def test_transient_s3_errors_are_retried_and_the_job_succeeds(
    s3: Any, model_uri: str, aws_env: dict[str, str], status: int
) -> None:
    photos = photo_jpegs(12, seed=1)
    keys = put_images(s3, {f"input/t/{i:02d}.jpg": body for i, body in enumerate(photos)})
    (manifest,) = write_manifests(s3, keys, images_per_child=12)
    hook = FlakyS3(failures=8, status=status)
    flaky = flaky_client(aws_env["AWS_ENDPOINT_URL"], hook, attempts=8)

    assert run_in_process(manifest, model_uri, flaky, "job-flaky") == 0
    assert sum(hook.injected.values()) == 8
    # Each injected failure was followed by a real attempt for the same key.
    for key, failures in hook.injected.items():
        assert hook.attempts[key] == failures + 1, key
    outputs = read_outputs(s3)
    assert len(outputs) == 12
    assert all("predictions" in r for r in outputs.values())
    assert summary(s3, "job-flaky")["ok"] == 12


def test_s3_failing_beyond_the_retries_exits_for_a_batch_retry(
    s3: Any, model_uri: str, aws_env: dict[str, str]
) -> None:
    photos = photo_jpegs(3, seed=2)
    keys = put_images(s3, {f"input/f/{i}.jpg": body for i, body in enumerate(photos)})
    (manifest,) = write_manifests(s3, keys, images_per_child=3)
    hook = FlakyS3(failures=1000, only_key="input/f/1.jpg")
    flaky = flaky_client(aws_env["AWS_ENDPOINT_URL"], hook, attempts=3)

    assert run_in_process(manifest, model_uri, flaky, "job-down") == 75
    assert hook.attempts["input/f/1.jpg"] == 3
    # No error record for an infrastructure fault, no summary: Batch retries the child.
    assert "output/f/1.jpg.json" not in read_outputs(s3)
    assert list_child_summary_keys(s3, DATA_BUCKET, "output/", "job-down") == []
    assert (
        s3.list_objects_v2(Bucket=DATA_BUCKET, Prefix="output/_summaries/job-down.")["KeyCount"]
        == 0
    )
    # The in-flight marker says nothing was in flight: the exit was handled, no image blamed.
    marker = json.loads(
        s3.get_object(Bucket=DATA_BUCKET, Key=inflight_key("output/", "job-down", 0))["Body"].read()
    )
    assert marker["inflight"] == []
    # The retry (S3 healthy again) completes the shard.
    assert run_in_process(manifest, model_uri, s3, "job-down") == 0
    assert len(read_outputs(s3)) == 3


def test_corrupt_images_become_error_records_and_the_others_succeed(
    s3: Any, model_uri: str, aws_env: dict[str, str], imagenet_fixtures: Path
) -> None:
    good = photo_jpegs(5, seed=4)
    parrot = (imagenet_fixtures / "parrot.jpg").read_bytes()
    images = {f"input/c/good{i}.jpg": body for i, body in enumerate(good)}
    images.update(
        {
            "input/c/truncated.jpg": parrot[: len(parrot) // 3],
            "input/c/garbage.jpg": os.urandom(5000),
            "input/c/empty.png": b"",
            "input/c/header-only.png": b"\x89PNG\r\n\x1a\n" + b"\x00" * 40,
            "input/c/parrot.jpg": parrot,
        }
    )
    keys = put_images(s3, images)
    (manifest,) = write_manifests(s3, keys, images_per_child=4)
    env = {**os.environ, **aws_env}
    for index in range(3):
        result = subprocess.run(
            worker_command(manifest, model_uri, "job-corrupt"),
            env={**env, "AWS_BATCH_JOB_ARRAY_INDEX": str(index)},
            capture_output=True,
            timeout=300,
            check=False,
        )
        assert result.returncode == 0, result.stderr.decode()[-2000:]
    outputs = read_outputs(s3)
    assert len(outputs) == 10
    for name in ("truncated.jpg", "garbage.jpg", "empty.png", "header-only.png"):
        assert outputs[f"output/c/{name}.json"]["error"]["code"] == "invalid_image", name
    assert outputs["output/c/parrot.jpg.json"]["predictions"][0]["label"] == "macaw"
    assert all("predictions" in outputs[f"output/c/good{i}.jpg.json"] for i in range(5))
    job = json.loads(
        s3.get_object(Bucket=DATA_BUCKET, Key="output/_summaries/job-corrupt.json")["Body"].read()
    )
    assert (job["ok"], job["failed"], job["complete"]) == (6, 4, True)


def test_s3_events_through_sqs_duplicated_delivery_one_job_end_to_end(
    s3: Any, model_uri: str, aws_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Real S3 -> SQS notifications from the emulator, the dispatcher invoked twice with the
    same messages (a redelivery), then the job's children run as Batch would run them."""
    url = aws_env["AWS_ENDPOINT_URL"]
    sqs = client("sqs", url)
    queue_url = sqs.create_queue(QueueName="inferstack-events")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])[
        "Attributes"
    ]["QueueArn"]
    s3.put_bucket_notification_configuration(
        Bucket=DATA_BUCKET,
        NotificationConfiguration={
            "QueueConfigurations": [
                {
                    "QueueArn": queue_arn,
                    "Events": ["s3:ObjectCreated:*"],
                    "Filter": {"Key": {"FilterRules": [{"Name": "prefix", "Value": "input/"}]}},
                }
            ]
        },
    )
    queue, job_definition = create_batch_env(lambda service: client(service, url))
    photos = photo_jpegs(5, seed=5)
    names = ["my photo (1).jpg", "b+c.JPG", "x/é.png", "d.jpeg", "e.jpg"]
    images = dict(zip([f"input/{n}" for n in names], photos, strict=True))
    put_images(s3, images)
    s3.put_object(Bucket=DATA_BUCKET, Key="input/notes.txt", Body=b"not an image")

    messages: list[dict[str, Any]] = []
    for _ in range(20):
        got = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=1)
        messages.extend(got.get("Messages", []))
        if len(messages) >= 7:  # TestEvent + 6 objects
            break
    event = {
        "Records": [
            {
                "messageId": m["MessageId"],
                "receiptHandle": m["ReceiptHandle"],
                "body": m["Body"],
                "attributes": {},
                "messageAttributes": {},
                "md5OfBody": m["MD5OfBody"],
                "eventSource": "aws:sqs",
                "eventSourceARN": queue_arn,
                "awsRegion": REGION,
            }
            for m in messages
        ]
    }
    for name, value in {
        "INPUT_PREFIX": "input/",
        "MANIFEST_PREFIX": "manifests/",
        "IMAGES_PER_CHILD": "2",
        "MAX_ARRAY_SIZE": "10000",
        "JOB_QUEUE": queue,
        "JOB_DEFINITION": job_definition,
    }.items():
        monkeypatch.setenv(name, value)
    from inferstack_dispatcher import handler  # noqa: PLC0415

    handler._clients.cache_clear()

    class Context:
        function_name = "dispatcher"
        memory_limit_in_mb = 256
        invoked_function_arn = f"arn:aws:lambda:{REGION}:123456789012:function:dispatcher"
        aws_request_id = "req"

    assert handler.lambda_handler(event, Context()) == {"batchItemFailures": []}
    assert handler.lambda_handler(event, Context()) == {"batchItemFailures": []}
    handler._clients.cache_clear()

    batch = client("batch", url)
    listed = batch.list_jobs(
        jobQueue=queue, filters=[{"name": "JOB_NAME", "values": ["inferstack-*"]}]
    )["jobSummaryList"]
    parents = [j for j in listed if ":" not in j["jobId"]]
    assert len(parents) == 1
    (job,) = batch.describe_jobs(jobs=[parents[0]["jobId"]])["jobs"]
    size = job["arrayProperties"]["size"]
    assert size == 3  # 5 images, 2 per child

    env = {**os.environ, **aws_env, "AWS_BATCH_JOB_ID": job["jobId"]}
    for index in range(size):
        command = [
            sys.executable,
            "-m",
            "inferstack_worker.main",
            "--manifest",
            job["parameters"]["manifest"],
            "--model-uri",
            model_uri,
            "--interpreter-threads",
            "1",
        ]
        result = subprocess.run(
            command,
            env={**env, "AWS_BATCH_JOB_ARRAY_INDEX": str(index)},
            capture_output=True,
            timeout=300,
            check=False,
        )
        assert result.returncode == 0, result.stderr.decode()[-2000:]
    outputs = read_outputs(s3)
    assert set(outputs) == {f"output/{n}.json" for n in names}
    job_summary = json.loads(
        s3.get_object(Bucket=DATA_BUCKET, Key=f"output/_summaries/{job['jobId']}.json")[
            "Body"
        ].read()
    )
    assert (job_summary["ok"], job_summary["complete"]) == (5, True)
