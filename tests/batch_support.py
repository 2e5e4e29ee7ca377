"""Helpers shared by the batch tests: emulated AWS resources, S3 events, model bundles."""

from __future__ import annotations

import contextlib
import io
import json
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any
from urllib.parse import quote_plus

import boto3
from inferstack.batch.worker import TEST_CRASH_ENV
from moto import mock_aws

REGION = "us-east-1"
DATA_BUCKET = "inferstack-data"
JOB_QUEUE = "inferstack-batch"
JOB_DEFINITION = "inferstack-worker"
# The batch module's retry conditions (modules/batch/batch.tf, on demand), as Batch's
# DescribeJobDefinitions returns them; tests/unit/test_batch_local_retries.py checks that they
# are the module's.
MODULE_RETRY_STRATEGY: dict[str, Any] = {
    "attempts": 3,
    "evaluateOnExit": [
        {"action": "RETRY", "onStatusReason": "Host EC2*"},
        {"action": "EXIT", "onExitCode": "65"},
        {"action": "EXIT", "onExitCode": "78"},
        {"action": "EXIT", "onExitCode": "2"},
        {"action": "RETRY", "onReason": "*"},
    ],
}


def create_batch_env(session_or_clients: Any) -> tuple[str, str]:
    """A Fargate compute environment, job queue and job definition in the emulator.

    ``session_or_clients``: a callable ``(service) -> client``.
    """
    client = session_or_clients
    iam, ec2, batch = client("iam"), client("ec2"), client("batch")
    role = iam.create_role(
        RoleName=f"batch-{uuid.uuid4().hex[:8]}",
        AssumeRolePolicyDocument=json.dumps(
            {
                "Version": "2012-10-17",
                "Statement": [
                    {
                        "Effect": "Allow",
                        "Principal": {"Service": "batch.amazonaws.com"},
                        "Action": "sts:AssumeRole",
                    }
                ],
            }
        ),
    )["Role"]["Arn"]
    vpc = ec2.create_vpc(CidrBlock="10.42.0.0/16")["Vpc"]["VpcId"]
    subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.42.1.0/24")["Subnet"]["SubnetId"]
    sg = ec2.create_security_group(GroupName="batch", Description="batch", VpcId=vpc)["GroupId"]
    env = batch.create_compute_environment(
        computeEnvironmentName=f"ce-{uuid.uuid4().hex[:8]}",
        type="MANAGED",
        state="ENABLED",
        computeResources={
            "type": "FARGATE",
            "maxvCpus": 16,
            "subnets": [subnet],
            "securityGroupIds": [sg],
        },
        serviceRole=role,
    )["computeEnvironmentArn"]
    batch.create_job_queue(
        jobQueueName=JOB_QUEUE,
        state="ENABLED",
        priority=1,
        computeEnvironmentOrder=[{"order": 1, "computeEnvironment": env}],
    )
    batch.register_job_definition(
        jobDefinitionName=JOB_DEFINITION,
        type="container",
        platformCapabilities=["FARGATE"],
        containerProperties={
            "image": "inferstack-worker:latest",
            "command": ["inferstack-worker", "--manifest", "Ref::manifest"],
            "resourceRequirements": [
                {"type": "VCPU", "value": "2"},
                {"type": "MEMORY", "value": "4096"},
            ],
            "executionRoleArn": role,
        },
    )
    return JOB_QUEUE, JOB_DEFINITION


def s3_record(
    key: str, etag: str, *, bucket: str = DATA_BUCKET, event: str = "ObjectCreated:Put"
) -> dict[str, Any]:
    """One S3 event record, key URL-encoded as S3 sends it."""
    return {
        "eventVersion": "2.1",
        "eventSource": "aws:s3",
        "awsRegion": REGION,
        "eventTime": "2026-01-01T00:00:00.000Z",
        "eventName": event,
        "s3": {
            "s3SchemaVersion": "1.0",
            "configurationId": "input",
            "bucket": {"name": bucket, "arn": f"arn:aws:s3:::{bucket}"},
            "object": {
                "key": quote_plus(key, safe="/"),
                "size": 1,
                "eTag": etag,
                "sequencer": "0055AED6DCD90281E5",
            },
        },
    }


def sqs_message(body: Any, message_id: str | None = None) -> dict[str, Any]:
    return {
        "messageId": message_id or str(uuid.uuid4()),
        "receiptHandle": "handle",
        "body": body if isinstance(body, str) else json.dumps(body),
        "attributes": {"ApproximateReceiveCount": "1"},
        "messageAttributes": {},
        "md5OfBody": "",
        "eventSource": "aws:sqs",
        "eventSourceARN": f"arn:aws:sqs:{REGION}:123456789012:inferstack-events",
        "awsRegion": REGION,
    }


def sqs_event(*messages: dict[str, Any]) -> dict[str, Any]:
    return {"Records": list(messages)}


TEST_EVENT = {
    "Service": "Amazon S3",
    "Event": "s3:TestEvent",
    "Time": "2026-01-01T00:00:00.000Z",
    "Bucket": DATA_BUCKET,
    "RequestId": "1",
    "HostId": "1",
}


def import_mobilenet(fixtures: Path, out: Path) -> Path:
    """The pretrained MobileNetV2 fixture as a bundle, through the CLI a user would run."""
    from inferstack.cli import main  # noqa: PLC0415

    status = main(
        [
            "model",
            "import",
            "--tflite",
            str(fixtures / "mobilenet_v2_1.0_224_quant.tflite"),
            "--labels",
            str(fixtures / "imagenet_labels.txt"),
            "--preprocess",
            "raw",
            "--out",
            str(out),
        ]
    )
    assert status == 0
    return out


def upload_bundle(s3: Any, bundle: Path, bucket: str, prefix: str) -> str:
    for path in sorted(bundle.iterdir()):
        if path.is_file():
            s3.put_object(Bucket=bucket, Key=f"{prefix}{path.name}", Body=path.read_bytes())
    return f"s3://{bucket}/{prefix}"


def photo_jpegs(
    count: int, *, seed: int = 0, sizes: tuple[tuple[int, int], ...] = ((640, 480),)
) -> list[bytes]:
    """Real photos (scikit-image's sample data) as JPEGs, cropped/flipped/resized for variety."""
    import numpy as np  # noqa: PLC0415
    from PIL import Image  # noqa: PLC0415
    from skimage import data as skdata  # noqa: PLC0415

    names = [
        "astronaut",
        "chelsea",
        "coffee",
        "rocket",
        "hubble_deep_field",
        "immunohistochemistry",
    ]
    photos = [Image.fromarray(getattr(skdata, name)()).convert("RGB") for name in names]
    rng = np.random.default_rng(seed)
    out = []
    for i in range(count):
        img = photos[i % len(photos)]
        w, h = img.size
        left, top = int(rng.integers(0, w // 8 + 1)), int(rng.integers(0, h // 8 + 1))
        crop = img.crop(
            (left, top, w - int(rng.integers(0, w // 8 + 1)), h - int(rng.integers(0, h // 8 + 1)))
        )
        if rng.random() < 0.5:
            crop = crop.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        size = sizes[i % len(sizes)]
        buf = io.BytesIO()
        crop.resize(size, Image.Resampling.BILINEAR).save(
            buf, "JPEG", quality=int(rng.integers(80, 95))
        )
        out.append(buf.getvalue())
    return out


def write_manifests(
    s3: Any,
    keys_etags: list[tuple[str, str]],
    *,
    images_per_child: int,
    max_array_size: int = 10_000,
) -> list[str]:
    """Store manifests (as the submitters do, without submitting) and return their URIs."""
    from inferstack.batch.manifest import build_manifests, make_item, unique_sorted  # noqa: PLC0415
    from inferstack.batch.naming import manifest_key, shard_key  # noqa: PLC0415

    def store(body: bytes, sha: str) -> str:
        key = shard_key("manifests/", sha)
        s3.put_object(Bucket=DATA_BUCKET, Key=key, Body=body)
        return key

    uris = []
    items = unique_sorted(make_item(k, e) for k, e in keys_etags)
    for manifest in build_manifests(
        items,
        bucket=DATA_BUCKET,
        input_prefix="input/",
        images_per_child=images_per_child,
        max_array_size=max_array_size,
        store_shard=store,
    ):
        key = manifest_key("manifests/", manifest.id)
        s3.put_object(Bucket=DATA_BUCKET, Key=key, Body=manifest.to_json())
        uris.append(f"s3://{DATA_BUCKET}/{key}")
    return uris


def put_images(s3: Any, images: dict[str, bytes]) -> list[tuple[str, str]]:
    """Upload ``{key: bytes}``; returns (key, etag) as a listing would."""
    out = []
    for key, body in images.items():
        etag = s3.put_object(Bucket=DATA_BUCKET, Key=key, Body=body)["ETag"]
        out.append((key, etag))
    return out


def read_outputs(s3: Any, prefix: str = "output/") -> dict[str, dict[str, Any]]:
    """Every output record (summaries excluded), by key."""
    records = {}
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=DATA_BUCKET, Prefix=prefix):
        for obj in page.get("Contents", []):
            if "/_summaries/" in obj["Key"]:
                continue
            body = s3.get_object(Bucket=DATA_BUCKET, Key=obj["Key"])["Body"].read()
            records[obj["Key"]] = json.loads(body)
    return records


@contextlib.contextmanager
def worker_s3(monkeypatch: Any, tmp_path: Path) -> Iterator[Any]:
    """An in-process moto S3 with the data and model buckets, in the environment a worker run
    outside Batch sees: no endpoint, profile, job id, index, attempt or test fault hook."""
    for name in ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_PROFILE", "AWS_BATCH_JOB_ID"):
        monkeypatch.delenv(name, raising=False)
    for name in ("AWS_BATCH_JOB_ARRAY_INDEX", "AWS_BATCH_JOB_ATTEMPT", TEST_CRASH_ENV):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    monkeypatch.setenv("MODEL_CACHE_DIR", str(tmp_path / "model-cache"))
    monkeypatch.setenv("DATA_BUCKET", DATA_BUCKET)
    monkeypatch.setenv("OUTPUT_PREFIX", "output/")
    monkeypatch.setenv("INFERSTACK_S3_MAX_ATTEMPTS", "2")
    with mock_aws():
        client = boto3.client("s3", region_name=REGION)
        client.create_bucket(Bucket=DATA_BUCKET)
        client.create_bucket(Bucket="models")
        yield client


# The dispatcher's environment as modules/batch sets it (with a small IMAGES_PER_CHILD).
DISPATCHER_ENV = {
    "DATA_BUCKET": DATA_BUCKET,
    "INPUT_PREFIX": "input/",
    "OUTPUT_PREFIX": "output/",
    "MANIFEST_PREFIX": "manifests/",
    "IMAGE_SUFFIXES": ".jpg,.jpeg,.png,.webp,.bmp,.gif",
    "IMAGES_PER_CHILD": "2",
    "MAX_ARRAY_SIZE": "10000",
    "JOB_QUEUE": JOB_QUEUE,
    "JOB_DEFINITION": JOB_DEFINITION,
    "POWERTOOLS_METRICS_NAMESPACE": "Inferstack",
    "POWERTOOLS_SERVICE_NAME": "inferstack-dispatcher",
}


class DispatcherContext:
    """The Lambda context the dispatcher's handler reads."""

    function_name = "dispatcher"
    memory_limit_in_mb = 256
    invoked_function_arn = f"arn:aws:lambda:{REGION}:123456789012:function:dispatcher"
    aws_request_id = "req-1"


@contextlib.contextmanager
def dispatcher_aws(
    monkeypatch: Any, env: dict[str, str] = DISPATCHER_ENV
) -> Iterator[tuple[ModuleType, Callable[[str], Any]]]:
    """The dispatcher's handler on moto in-process, with the data bucket and a Batch job queue
    and job definition; yields the handler module and a factory of the test's own clients."""
    for name in ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with mock_aws(config={"batch": {"use_docker": False}}):
        from inferstack_dispatcher import handler  # noqa: PLC0415  (reads the environment)

        handler._clients.cache_clear()

        def client(service: str) -> Any:
            return boto3.client(service, region_name=REGION)

        client("s3").create_bucket(Bucket=DATA_BUCKET)
        create_batch_env(client)
        yield handler, client
        handler._clients.cache_clear()
