"""SQS event source mappings, run locally the way the Lambda service runs them.

Long-polls each mapped queue, gathers up to the mapping's BatchSize (within its batching
window), invokes the function with an SQS event and then deletes what succeeded:
everything on success, everything but `batchItemFailures` with ReportBatchItemFailures,
nothing when the function fails. Messages left behind reappear after the queue's visibility
timeout, and the emulator's redrive policy moves them to the dead-letter queue after
maxReceiveCount receives.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

from inferstack.local.discovery import QueueMapping
from inferstack.local.execenv import InvocationError

Invoker = Callable[[str, str | None, dict, str], Any]


def lambda_record(message: dict[str, Any], mapping: QueueMapping, region: str) -> dict[str, Any]:
    attributes = message.get("Attributes", {})
    message_attributes = {
        name: {
            "stringValue": value.get("StringValue"),
            "binaryValue": value.get("BinaryValue"),
            "stringListValues": value.get("StringListValues", []),
            "binaryListValues": value.get("BinaryListValues", []),
            "dataType": value.get("DataType"),
        }
        for name, value in message.get("MessageAttributes", {}).items()
    }
    return {
        "messageId": message["MessageId"],
        "receiptHandle": message["ReceiptHandle"],
        "body": message["Body"],
        "attributes": {
            k: attributes[k]
            for k in (
                "ApproximateReceiveCount",
                "SentTimestamp",
                "SenderId",
                "ApproximateFirstReceiveTimestamp",
                "MessageGroupId",
                "MessageDeduplicationId",
                "SequenceNumber",
            )
            if k in attributes
        },
        "messageAttributes": message_attributes,
        "md5OfBody": message.get("MD5OfBody", ""),
        "eventSource": "aws:sqs",
        "eventSourceARN": mapping.queue_arn,
        "awsRegion": region,
    }


def succeeded_ids(records: list[dict], result: Any, report_failures: bool) -> set[str]:
    """Message ids to delete after an invocation that returned `result`."""
    all_ids = {r["messageId"] for r in records}
    if not report_failures:
        return all_ids
    if result is None or result == {}:
        return all_ids
    failures = result.get("batchItemFailures") if isinstance(result, dict) else None
    if failures is None:
        return all_ids
    failed: set[str] = set()
    for item in failures:
        identifier = item.get("itemIdentifier") if isinstance(item, dict) else None
        if not identifier or identifier not in all_ids:
            return set()  # Lambda treats an invalid failure report as a failed batch
        failed.add(identifier)
    return all_ids - failed


class QueuePoller:
    def __init__(
        self, mapping: QueueMapping, sqs: Any, invoke: Invoker, region: str, *, wait_s: int = 2
    ) -> None:
        self.mapping = mapping
        self.sqs = sqs
        self.invoke = invoke
        self.region = region
        self.wait_s = wait_s
        self.stop_event = threading.Event()
        self.thread = threading.Thread(target=self._loop, daemon=True, name=f"sqs-{mapping.uuid}")
        self.batches = 0
        self.deleted = 0
        self.failed = 0

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self.stop_event.set()
        self.thread.join(timeout=self.wait_s + 5)

    def _receive(self) -> list[dict]:
        messages: list[dict] = []
        deadline = time.monotonic() + self.mapping.batching_window_s
        while len(messages) < self.mapping.batch_size and not self.stop_event.is_set():
            answer = self.sqs.receive_message(
                QueueUrl=self.mapping.queue_url,
                MaxNumberOfMessages=min(10, self.mapping.batch_size - len(messages)),
                WaitTimeSeconds=0 if messages else self.wait_s,
                AttributeNames=["All"],
                MessageAttributeNames=["All"],
            )
            received = answer.get("Messages", [])
            messages += received
            # window 0: what one poll returned; else keep gathering until the window closes
            if not received or time.monotonic() >= deadline:
                break
        return messages

    def poll_once(self) -> int:
        messages = self._receive()
        if not messages:
            return 0
        records = [lambda_record(m, self.mapping, self.region) for m in messages]
        request_id = str(uuid.uuid4())
        try:
            result = self.invoke(
                self.mapping.function_name, self.mapping.qualifier, {"Records": records}, request_id
            )
            ok = succeeded_ids(records, result, self.mapping.report_batch_item_failures)
        except InvocationError as exc:
            print(f"sqs {self.mapping.function_name}: {exc}", flush=True)
            ok = set()
        handles = {r["messageId"]: r["receiptHandle"] for r in records}
        entries = [{"Id": str(i), "ReceiptHandle": handles[mid]} for i, mid in enumerate(ok)]
        for start in range(0, len(entries), 10):
            self.sqs.delete_message_batch(
                QueueUrl=self.mapping.queue_url, Entries=entries[start : start + 10]
            )
        self.batches += 1
        self.deleted += len(ok)
        self.failed += len(records) - len(ok)
        print(
            f"sqs {self.mapping.function_name}: {len(records)} message(s), "
            f"{len(ok)} done, {len(records) - len(ok)} left for retry",
            flush=True,
        )
        return len(records)

    def _loop(self) -> None:
        while not self.stop_event.is_set():
            try:
                self.poll_once()
            except Exception as exc:  # emulator hiccup: keep polling like Lambda does
                print(f"sqs poller {self.mapping.queue_arn}: {exc!r}", flush=True)
                self.stop_event.wait(1.0)
