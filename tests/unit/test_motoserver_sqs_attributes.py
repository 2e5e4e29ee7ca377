"""The emulator's SetQueueAttributes changes only the attributes it is given, as SQS does.

Terraform's aws_sqs_queue_policy and aws_sqs_queue_redrive_policy each write one attribute
of the same queue and then wait until GetQueueAttributes(All) reads their value back six
times in a row; moto's own SetQueueAttributes reset the policy on any write without one.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import boto3
import pytest
from inferstack.local.emulator import FAKE_CREDENTIALS, Emulator


@pytest.fixture(scope="module")
def sqs() -> Iterator[object]:
    with Emulator() as emulator:
        yield boto3.client(
            "sqs",
            endpoint_url=emulator.url,
            region_name="us-east-1",
            aws_access_key_id=FAKE_CREDENTIALS["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=FAKE_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
        )


def _queue(sqs: object, name: str) -> tuple[str, str]:
    url = sqs.create_queue(QueueName=name)["QueueUrl"]  # type: ignore[attr-defined]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])  # type: ignore[attr-defined]
    return url, arn["Attributes"]["QueueArn"]


def _policy(queue_arn: str) -> dict:
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "AllowDataBucketEvents",
                "Effect": "Allow",
                "Principal": {"Service": "s3.amazonaws.com"},
                "Action": "sqs:SendMessage",
                "Resource": queue_arn,
            }
        ],
    }


@pytest.mark.parametrize("policy_first", [True, False], ids=["policy-first", "redrive-first"])
def test_policy_and_redrive_policy_written_separately_both_read_back(
    sqs: object, policy_first: bool
) -> None:
    name = f"attrs-{'p' if policy_first else 'r'}"
    url, arn = _queue(sqs, name)
    _, dlq_arn = _queue(sqs, f"{name}-dlq")
    policy = _policy(arn)
    redrive = {"deadLetterTargetArn": dlq_arn, "maxReceiveCount": 5}
    writes = [{"Policy": json.dumps(policy)}, {"RedrivePolicy": json.dumps(redrive)}]
    for attributes in writes if policy_first else writes[::-1]:
        sqs.set_queue_attributes(QueueUrl=url, Attributes=attributes)  # type: ignore[attr-defined]
    # What both of the provider's waiters read (GetQueueAttributes with All).
    got = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]  # type: ignore[attr-defined]
    assert json.loads(got["Policy"]) == policy
    assert json.loads(got["RedrivePolicy"]) == redrive


def test_other_attributes_keep_the_policy_and_an_empty_policy_removes_it(sqs: object) -> None:
    url, arn = _queue(sqs, "attrs-visibility")
    policy = _policy(arn)
    sqs.set_queue_attributes(QueueUrl=url, Attributes={"Policy": json.dumps(policy)})  # type: ignore[attr-defined]
    sqs.set_queue_attributes(QueueUrl=url, Attributes={"VisibilityTimeout": "120"})  # type: ignore[attr-defined]
    got = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]  # type: ignore[attr-defined]
    assert got["VisibilityTimeout"] == "120"
    assert json.loads(got["Policy"]) == policy
    # What the provider's aws_sqs_queue_policy delete sends: the empty value removes it.
    sqs.set_queue_attributes(QueueUrl=url, Attributes={"Policy": ""})  # type: ignore[attr-defined]
    got = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]  # type: ignore[attr-defined]
    assert "Policy" not in got
