"""Enforced IAM on the local emulator: identities, service roles, and what moto evaluates.

One moto server (the project's launcher) started with enforcement; the admin identity comes
from its first calls, the runner's service users assume the stack's kind of roles.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from inferstack.local import iam
from inferstack.local.discovery import client
from inferstack.local.emulator import Emulator, http_json
from inferstack.local.motoserver import CALLS_PATH

REGION = "us-east-1"
ACCOUNT = "123456789012"
BUCKET = "iam-probe-bucket"


def _trust(service: str) -> str:
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Effect": "Allow",
                    "Action": "sts:AssumeRole",
                    "Principal": {"Service": f"{service}.amazonaws.com"},
                }
            ],
        }
    )


POLICY = {
    "Version": "2012-10-17",
    "Statement": [
        {
            "Effect": "Allow",
            "Action": "s3:GetObject",
            "Resource": f"arn:aws:s3:::{BUCKET}/models/*",
        },
        {"Effect": "Allow", "Action": "batch:ListJobs", "Resource": "*"},
        {
            "Effect": "Allow",
            "Action": "batch:SubmitJob",
            "Resource": [
                f"arn:aws:batch:{REGION}:{ACCOUNT}:job-queue/q",
                f"arn:aws:batch:{REGION}:{ACCOUNT}:job-definition/d",
                f"arn:aws:batch:{REGION}:{ACCOUNT}:job-definition/d:*",
            ],
        },
    ],
}


@pytest.fixture(scope="module")
def emulator() -> Iterator[Emulator]:
    with Emulator(enforce_iam=True) as emu:
        admin = client("iam", emu.url, REGION)
        for name, service in (("fn-role", "lambda"), ("job-role", "ecs-tasks")):
            admin.create_role(RoleName=name, AssumeRolePolicyDocument=_trust(service))
            admin.put_role_policy(RoleName=name, PolicyName="p", PolicyDocument=json.dumps(POLICY))
        s3 = client("s3", emu.url, REGION)
        s3.create_bucket(Bucket=BUCKET)
        for key in ("models/a", "other/a"):
            s3.put_object(Bucket=BUCKET, Key=key, Body=b"x")
        batch = client("batch", emu.url, REGION)
        batch.register_job_definition(
            jobDefinitionName="d",
            type="container",
            containerProperties={"image": "busybox", "vcpus": 1, "memory": 128},
        )
        batch.register_job_definition(
            jobDefinitionName="other",
            type="container",
            containerProperties={"image": "busybox", "vcpus": 1, "memory": 128},
        )
        batch.create_compute_environment(
            computeEnvironmentName="local-ce",
            type="UNMANAGED",
            serviceRole=f"arn:aws:iam::{ACCOUNT}:role/job-role",
        )
        for name in ("q", "q2"):
            batch.create_job_queue(
                jobQueueName=name,
                state="ENABLED",
                priority=1,
                computeEnvironmentOrder=[{"order": 1, "computeEnvironment": "local-ce"}],
            )
        yield emu


def _role(emu: Emulator, name: str, service: str) -> dict[str, Any]:
    arn = f"arn:aws:iam::{ACCOUNT}:role/{name}"
    keys = iam.role_keys(emu.url, REGION, arn, service=service, session=f"test-{name}")
    return {"endpoint_url": emu.url, "region_name": REGION, **keys.client_kwargs()}


def _code(call: Any) -> str:
    try:
        call()
    except ClientError as err:
        code = str(err.response["Error"]["Code"])
        # moto answers some JSON-protocol services' refusals with an XML body: code "403"
        denied = code == "403" and "AccessDenied" in str(err.response["Error"].get("Message", ""))
        return "AccessDenied" if denied else code
    return "ok"


def test_unknown_keys_are_refused_after_the_bootstrap(emulator: Emulator) -> None:
    assert emulator.identities is not None
    fake = boto3.client(
        "s3",
        endpoint_url=emulator.url,
        region_name=REGION,
        aws_access_key_id="test",
        aws_secret_access_key="test",
    )
    assert _code(fake.list_buckets) == "InvalidAccessKeyId"
    assert _code(client("s3", emulator.url, REGION).list_buckets) == "ok"  # the admin


def test_each_service_assumes_only_the_roles_that_trust_it(emulator: Emulator) -> None:
    services = emulator.identities.services  # type: ignore[union-attr]
    arn = f"arn:aws:iam::{ACCOUNT}:role/fn-role"

    def assume(keys: iam.Keys) -> str:
        sts = boto3.client(
            "sts", endpoint_url=emulator.url, region_name=REGION, **keys.client_kwargs()
        )
        return _code(lambda: sts.assume_role(RoleArn=arn, RoleSessionName="probe"))

    assert assume(services["lambda"]) == "ok"
    assert assume(services["ecs-tasks"]) == "AccessDenied"
    assert assume(emulator.identities.admin) == "AccessDenied"  # type: ignore[union-attr]


def test_role_credentials_are_authorised_by_the_role_policy(emulator: Emulator) -> None:
    s3 = boto3.client("s3", **_role(emulator, "fn-role", "lambda"))
    assert _code(lambda: s3.get_object(Bucket=BUCKET, Key="models/a")) == "ok"
    assert _code(lambda: s3.get_object(Bucket=BUCKET, Key="other/a")) == "AccessDenied"
    assert _code(lambda: s3.put_object(Bucket=BUCKET, Key="models/b", Body=b"")) == "AccessDenied"
    batch = boto3.client("batch", **_role(emulator, "job-role", "ecs-tasks"))
    # moto names Batch actions from the lower-case URL: matched case-insensitively, as AWS does
    assert _code(lambda: batch.list_jobs(jobQueue="q")) == "ok"
    assert _code(
        lambda: boto3.client("sqs", **_role(emulator, "fn-role", "lambda")).list_queues()
    ) == ("AccessDenied")


def test_submit_job_is_authorised_on_its_queue_and_definition(emulator: Emulator) -> None:
    batch = boto3.client("batch", **_role(emulator, "fn-role", "lambda"))
    assert _code(lambda: batch.submit_job(jobName="j", jobQueue="q", jobDefinition="d")) == "ok"
    assert _code(lambda: batch.submit_job(jobName="j", jobQueue="q2", jobDefinition="d")) == (
        "AccessDenied"
    )
    assert _code(lambda: batch.submit_job(jobName="j", jobQueue="q", jobDefinition="other")) == (
        "AccessDenied"
    )


def test_role_calls_are_recorded_with_their_decision(emulator: Emulator) -> None:
    s3 = boto3.client("s3", **_role(emulator, "fn-role", "lambda"))
    _code(lambda: s3.get_object(Bucket=BUCKET, Key="other/recorded"))
    calls = http_json(emulator.url + CALLS_PATH)
    mine = [c for c in calls if c["resources"] == [f"arn:aws:s3:::{BUCKET}/other/recorded"]]
    assert len(mine) == 1
    assert mine[0]["action"] == "s3:GetObject"
    assert mine[0]["decision"] == "deny"
    assert mine[0]["principal"].startswith(f"arn:aws:sts::{ACCOUNT}:assumed-role/fn-role/")
    assert all(":assumed-role/" in c["principal"] for c in calls)  # admin calls are not kept


def test_requests_without_query_or_body_are_signed_over_an_empty_payload(
    emulator: Emulator,
) -> None:
    """moto checked GETs without a query string against a signature over its headers."""
    apigw = client("apigateway", emulator.url, REGION)
    api = apigw.create_rest_api(name="signed-get")
    assert apigw.get_rest_api(restApiId=api["id"])["name"] == "signed-get"
    assert "Functions" in client("lambda", emulator.url, REGION).list_functions()


def test_role_client_calls_as_the_role_and_renews_its_credentials(
    emulator: Emulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    # What Lambda's SQS mapping does with the execution role: the runner's own environment
    # (the admin's keys, say) must not be used instead.
    admin = iam.admin_keys(emulator.url)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", admin.access_key_id)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", admin.secret_access_key)
    arn = f"arn:aws:iam::{ACCOUNT}:role/fn-role"
    s3 = iam.role_client("s3", emulator.url, REGION, arn, service="lambda", session="as-role")
    assert _code(lambda: s3.get_object(Bucket=BUCKET, Key="models/a")) == "ok"
    assert _code(lambda: s3.get_object(Bucket=BUCKET, Key="other/a")) == "AccessDenied"

    # Sessions that are always due for renewal: each call assumes the role again.
    monkeypatch.setattr(iam, "REFRESH_MARGIN_S", iam.SESSION_SECONDS)
    s3 = iam.role_client("s3", emulator.url, REGION, arn, service="lambda", session="renew")
    key = (emulator.url, arn, "renew")
    seen = {iam._CACHE[key][0]}
    for _ in range(2):
        assert _code(lambda: s3.get_object(Bucket=BUCKET, Key="models/a")) == "ok"
        seen.add(iam._CACHE[key][0])
    assert len(seen) == 3


def test_sqs_batch_calls_are_authorised_as_their_single_message_action(
    emulator: Emulator,
) -> None:
    sqs_admin = client("sqs", emulator.url, REGION)
    url = sqs_admin.create_queue(QueueName="batch-actions")["QueueUrl"]
    arn = f"arn:aws:sqs:{REGION}:{ACCOUNT}:batch-actions"
    admin = client("iam", emulator.url, REGION)
    admin.create_role(RoleName="sqs-role", AssumeRolePolicyDocument=_trust("lambda"))
    allowed = ["sqs:SendMessage", "sqs:ReceiveMessage", "sqs:DeleteMessage"]
    admin.put_role_policy(
        RoleName="sqs-role",
        PolicyName="p",
        PolicyDocument=json.dumps(
            {
                "Version": "2012-10-17",
                "Statement": [{"Effect": "Allow", "Action": allowed, "Resource": arn}],
            }
        ),
    )
    sqs = boto3.client("sqs", **_role(emulator, "sqs-role", "lambda"))
    entries = [{"Id": "a", "MessageBody": "a"}, {"Id": "b", "MessageBody": "b"}]
    assert _code(lambda: sqs.send_message_batch(QueueUrl=url, Entries=entries)) == "ok"
    messages = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10)["Messages"]
    receipts = [{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(messages)]
    # sqs:ChangeMessageVisibility is not granted: its batch form is refused too.
    assert (
        _code(
            lambda: sqs.change_message_visibility_batch(
                QueueUrl=url, Entries=[{**r, "VisibilityTimeout": 0} for r in receipts]
            )
        )
        == "AccessDenied"
    )
    assert _code(lambda: sqs.delete_message_batch(QueueUrl=url, Entries=receipts)) == "ok"
    calls = http_json(emulator.url + CALLS_PATH)
    deletes = [c for c in calls if c.get("operation", "").lower() == "sqs:deletemessagebatch"]
    assert deletes and all(c["action"] == "sqs:DeleteMessage" for c in deletes)
