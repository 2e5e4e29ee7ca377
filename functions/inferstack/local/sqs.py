"""SQS event source mappings, run locally the way the Lambda service runs them.

Long-polls each mapped queue and gathers a batch as Lambda does: from the first message
received, it keeps polling until the batch holds BatchSize messages, the mapping's batching
window has passed, or one more message would take the event over Lambda's 6 MB invocation
payload (that message waits for the next batch). Without a window, a batch is what one poll
returns. It then invokes the function with an SQS event and deletes what succeeded:
everything on success, everything but `batchItemFailures` with ReportBatchItemFailures,
nothing when the function fails. Messages left behind reappear after the queue's visibility
timeout, and the emulator's redrive policy moves them to the dead-letter queue after
maxReceiveCount receives.
"""

from __future__ import annotations

import json
import math
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

from inferstack.local.discovery import QueueMapping
from inferstack.local.execenv import InvocationError

Invoker = Callable[[str, str | None, dict, str], Any]

# Lambda's limit for a synchronous invocation's payload, which an SQS batch is sent as.
MAX_PAYLOAD_BYTES = 6 * 1024 * 1024
# Longest wait one ReceiveMessage call allows.
MAX_SQS_WAIT_S = 20


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


class BatchGatherer:
    """The records of one batch, bounded by the batch size and the invocation payload."""

    def __init__(self, batch_size: int) -> None:
        self.batch_size = batch_size
        self.records: list[dict] = []
        self.payload_bytes = len(b'{"Records": []}')
        self.closed = False

    @property
    def room(self) -> int:
        return self.batch_size - len(self.records)

    @property
    def full(self) -> bool:
        return self.closed or self.room <= 0

    def add(self, records: list[dict]) -> list[dict]:
        """Add what fits; return the records that would take the payload over the limit."""
        for index, record in enumerate(records):
            size = len(json.dumps(record)) + 2
            if self.records and self.payload_bytes + size > MAX_PAYLOAD_BYTES:
                self.closed = True
                return records[index:]
            self.records.append(record)
            self.payload_bytes += size
        return []


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
        self._carried_over: list[dict] = []  # records over the last batch's payload limit

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self.stop_event.set()
        self.thread.join(timeout=self.wait_s + 5)

    def _poll(self, max_messages: int, wait_s: int) -> list[dict]:
        """Messages received, as the records of Lambda's SQS event."""
        answer = self.sqs.receive_message(
            QueueUrl=self.mapping.queue_url,
            MaxNumberOfMessages=max_messages,
            WaitTimeSeconds=wait_s,
            AttributeNames=["All"],
            MessageAttributeNames=["All"],
        )
        return [lambda_record(m, self.mapping, self.region) for m in answer.get("Messages", [])]

    def _receive(self) -> list[dict]:
        """One batch of records: see the module docstring for when it is complete."""
        batch = BatchGatherer(self.mapping.batch_size)
        self._carried_over = batch.add(self._carried_over)
        window = self.mapping.batching_window_s
        deadline = time.monotonic() + window if batch.records else None
        while not batch.full and not self.stop_event.is_set():
            if deadline is None:
                wait = self.wait_s  # nothing yet: a long poll, then look at stop_event again
            else:
                remaining = deadline - time.monotonic()
                if window == 0 or remaining <= 0:
                    break
                wait = min(MAX_SQS_WAIT_S, max(1, math.ceil(remaining)))
            received = self._poll(min(10, batch.room), wait)
            if not received:
                if deadline is None:
                    return []  # idle queue: back to the loop
                continue
            if deadline is None:
                deadline = time.monotonic() + window
            self._carried_over += batch.add(received)
        return batch.records

    def poll_once(self) -> int:
        records = self._receive()
        if not records:
            return 0
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
