"""The local SQS event source mapping gathers batches as Lambda does (moto SQS in-process)."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from inferstack.local.discovery import QueueMapping
from inferstack.local.sqs import MAX_PAYLOAD_BYTES, QueuePoller
from moto import mock_aws

REGION = "eu-west-1"


@pytest.fixture
def sqs(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    for name in ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_SQS", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    with mock_aws():
        yield boto3.client("sqs", region_name=REGION)


def _mapping(sqs: Any, batch_size: int, window_s: int) -> QueueMapping:
    url = sqs.create_queue(QueueName="events", Attributes={"VisibilityTimeout": "60"})["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    return QueueMapping(
        uuid="m-1",
        function_name="dispatcher",
        qualifier=None,
        queue_arn=arn,
        queue_url=url,
        batch_size=batch_size,
        batching_window_s=window_s,
        report_batch_item_failures=True,
        enabled=True,
    )


class Recorder:
    """Stands in for the function: records each batch's message bodies, and succeeds."""

    def __init__(self) -> None:
        self.batches: list[list[str]] = []

    def __call__(self, function: str, qualifier: str | None, event: dict, request_id: str) -> Any:
        self.batches.append([r["body"] for r in event["Records"]])
        assert len(json.dumps(event)) <= MAX_PAYLOAD_BYTES
        return {"batchItemFailures": []}


def _drain(poller: QueuePoller, expected: int, timeout_s: float = 30) -> None:
    deadline = time.monotonic() + timeout_s
    while poller.deleted < expected and time.monotonic() < deadline:
        poller.poll_once()


def test_uploads_within_one_window_reach_the_function_as_one_invocation(sqs: Any) -> None:
    """One message every 0.1 s, as uploads arrive one by one: with a 3 s window they form one
    batch (a poller that stops at the first empty receive made a batch of each)."""
    mapping = _mapping(sqs, batch_size=100, window_s=3)
    recorder = Recorder()
    poller = QueuePoller(mapping, sqs, recorder, REGION, wait_s=1)

    def upload() -> None:
        for i in range(15):
            sqs.send_message(QueueUrl=mapping.queue_url, MessageBody=f"m{i}")
            time.sleep(0.1)

    sender = threading.Thread(target=upload)
    sender.start()
    _drain(poller, 15)
    sender.join()
    assert [len(b) for b in recorder.batches] == [15]
    assert sorted(recorder.batches[0]) == sorted(f"m{i}" for i in range(15))


def test_a_full_batch_is_sent_without_waiting_for_the_window(sqs: Any) -> None:
    mapping = _mapping(sqs, batch_size=10, window_s=20)
    for i in range(25):
        sqs.send_message(QueueUrl=mapping.queue_url, MessageBody=f"m{i}")
    recorder = Recorder()
    poller = QueuePoller(mapping, sqs, recorder, REGION, wait_s=1)
    start = time.monotonic()
    poller.poll_once()
    poller.poll_once()
    assert time.monotonic() - start < 10  # two full batches, no window waited out
    _drain(poller, 25)
    assert [len(b) for b in recorder.batches] == [10, 10, 5]


def test_without_a_window_a_batch_is_one_poll(sqs: Any) -> None:
    mapping = _mapping(sqs, batch_size=100, window_s=0)
    for i in range(3):
        sqs.send_message(QueueUrl=mapping.queue_url, MessageBody=f"m{i}")
    recorder = Recorder()
    poller = QueuePoller(mapping, sqs, recorder, REGION, wait_s=1)
    _drain(poller, 3)
    assert sum(len(b) for b in recorder.batches) == 3
    assert all(len(b) <= 10 for b in recorder.batches)


def test_the_invocation_payload_stays_under_6_mb_and_nothing_is_lost(sqs: Any) -> None:
    mapping = _mapping(sqs, batch_size=100, window_s=2)
    bodies = [f"{i:03d}" + "x" * 200_000 for i in range(40)]  # 8 MB in all
    for body in bodies:
        sqs.send_message(QueueUrl=mapping.queue_url, MessageBody=body)
    recorder = Recorder()  # asserts each event's size
    poller = QueuePoller(mapping, sqs, recorder, REGION, wait_s=1)
    _drain(poller, len(bodies))
    assert len(recorder.batches) == 2
    assert sorted(b for batch in recorder.batches for b in batch) == sorted(bodies)
