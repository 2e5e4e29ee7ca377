"""The dispatcher's IAM policy grants exactly the AWS calls its code makes.

The dispatcher runs through every path of an idempotent submission against moto: a new
manifest, a redelivery of a submitted one, a claim whose job exists, a stale claim taken over.
botocore's ``before-call`` event records each request its clients send; the IAM actions they
need are compared with the statements of ``data.aws_iam_policy_document.dispatcher`` in
modules/batch/iam.tf, read with the project's own HCL reader (modules/docs.py). A grant the
code never uses, or a call the policy does not allow, fails the test.

Some statements serve the platform, not the code, and are named here with the reason.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from batch_support import (
    DATA_BUCKET,
    DISPATCHER_ENV,
    DispatcherContext,
    dispatcher_aws,
    s3_record,
    sqs_event,
    sqs_message,
)
from inferstack.batch.manifest import make_item
from inferstack.batch.naming import marker_key
from inferstack.batch.settings import BatchSettings
from inferstack.batch.submit import JobSubmitter
from tfsource import docs

REPO = Path(__file__).resolve().parents[2]

# Statements of the dispatcher's policy that no line of its code exercises, and why they exist.
PLATFORM_STATEMENTS = {
    "ConsumeS3Events": "the SQS event source mapping polls the queue with the function's role",
    "WriteOwnLogs": "the Lambda runtime writes the function's logs",
    "XRayWrite": "the Lambda service's X-Ray daemon sends the traces (active tracing)",
    "UseDataKeyViaS3": "S3 calls KMS for SSE-KMS objects on the caller's behalf",
}
# Operations whose IAM action is not "<service>:<operation>".
ACTION_OF = {
    ("s3", "HeadObject"): "s3:GetObject",
    ("s3", "ListObjectsV2"): "s3:ListBucket",
    ("s3", "ListObjects"): "s3:ListBucket",
    ("s3", "HeadBucket"): "s3:ListBucket",
}

# The image suffixes these tests were written with (they upload .jpg and .png only).
ENV = {**DISPATCHER_ENV, "IMAGE_SUFFIXES": ".jpg,.png"}


def policy_statements(name: str) -> dict[str, set[str]]:
    """sid -> actions of every statement (static or dynamic) of an aws_iam_policy_document."""
    (document,) = [
        b
        for b in docs.module_blocks(REPO / "modules" / "batch")
        if b.kind == "data" and b.labels == ["aws_iam_policy_document", name]
    ]
    statements = {}
    for block in document.blocks:
        if block.kind == "dynamic" and block.labels == ["statement"]:
            (statement,) = [b for b in block.blocks if b.kind == "content"]
        elif block.kind == "statement":
            statement = block
        else:
            continue
        sid = docs.string_value(statement.attributes["sid"])
        actions = statement.attributes["actions"]
        statements[sid] = set(re.findall(r'"([a-z0-9-]+:[A-Za-z*]+)"', actions))
    return statements


class Recorder:
    """IAM actions of the requests the given clients send."""

    def __init__(self) -> None:
        self.actions: set[str] = set()

    def watch(self, *clients: Any) -> None:
        for client in clients:
            client.meta.events.register("before-call.*.*", self._record)

    def _record(self, model: Any, **_: Any) -> None:
        prefix = model.service_model.signing_name
        self.actions.add(ACTION_OF.get((prefix, model.name), f"{prefix}:{model.name}"))


@pytest.fixture
def dispatcher(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Any, Recorder, Any]]:
    with dispatcher_aws(monkeypatch, ENV) as (handler, client):
        recorder = Recorder()
        recorder.watch(*handler._clients())
        # The test's own client: set-up and inspection, not recorded.
        yield handler, recorder, client("s3")


def _event(key: str, etag: str) -> dict[str, Any]:
    return sqs_event(sqs_message({"Records": [s3_record(key, etag)]}))


def _marker(manifest_id: str) -> str:
    return marker_key(ENV["MANIFEST_PREFIX"], manifest_id)


def _manifest_id(key: str, etag: str, s3: Any) -> str:
    """The manifest the dispatcher will build for one image (a dry run sends nothing)."""
    submitter = JobSubmitter(BatchSettings.from_env(), s3, None, dry_run=True)
    (submission,) = submitter.submit_items([make_item(key, etag)], source="dispatcher")
    return submission.manifest_id


def test_the_dispatcher_policy_grants_exactly_what_its_code_calls(
    dispatcher: tuple[Any, Recorder, Any],
) -> None:
    handler, recorder, s3 = dispatcher

    def invoke(event: dict[str, Any]) -> None:
        assert handler.lambda_handler(event, DispatcherContext()) == {"batchItemFailures": []}

    # 1. A new manifest: shard, claim, manifest, job, marker. 2. Its redelivery.
    invoke(_event("input/a.jpg", "e1"))
    invoke(_event("input/a.jpg", "e1"))
    # 3. A claim whose job was submitted before its claimer died: found by name, recorded.
    first = _manifest_id("input/a.jpg", "e1", s3)
    s3.put_object(Bucket=DATA_BUCKET, Key=_marker(first), Body=b'{"state": "claimed"}')
    invoke(_event("input/a.jpg", "e1"))
    assert json.loads(s3.get_object(Bucket=DATA_BUCKET, Key=_marker(first))["Body"].read())[
        "state"
    ] == ("submitted")
    # 4. A stale claim without a job: taken over (If-Match) and submitted.
    second = _manifest_id("input/b.jpg", "e2", s3)
    s3.put_object(Bucket=DATA_BUCKET, Key=_marker(second), Body=b'{"state": "claimed"}')
    invoke(_event("input/b.jpg", "e2"))

    statements = policy_statements("dispatcher")
    assert PLATFORM_STATEMENTS.keys() <= statements.keys(), "a platform statement was renamed"
    granted = {
        a for sid, actions in statements.items() if sid not in PLATFORM_STATEMENTS for a in actions
    }
    assert recorder.actions == granted, (
        f"granted but never called: {sorted(granted - recorder.actions)}; "
        f"called but not granted: {sorted(recorder.actions - granted)}"
    )


def test_platform_statements_only_serve_the_platform() -> None:
    """The exempt statements hold only the actions their reason covers."""
    statements = policy_statements("dispatcher")
    prefixes = {
        "ConsumeS3Events": "sqs:",
        "WriteOwnLogs": "logs:",
        "XRayWrite": "xray:",
        "UseDataKeyViaS3": "kms:",
    }
    for sid, prefix in prefixes.items():
        assert all(a.startswith(prefix) for a in statements[sid]), (sid, statements[sid])
