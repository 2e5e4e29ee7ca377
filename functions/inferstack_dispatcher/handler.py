"""Batch dispatcher: S3 ObjectCreated events (through SQS) -> one manifest -> one array job.

Handler string: ``inferstack_dispatcher.handler.lambda_handler``. The SQS event source mapping
must enable ReportBatchItemFailures.

Each SQS message is parsed on its own (powertools BatchProcessor): a malformed message is
reported in ``batchItemFailures`` so only it comes back (and, after the queue's
maxReceiveCount, lands in the DLQ), while the images of every good message of the invocation
are grouped into one manifest (several if over MAX_ARRAY_SIZE * IMAGES_PER_CHILD) and one
array job. If the submission itself fails (Batch or S3 unavailable, or another caller holds a
fresh claim on the same manifest), the invocation fails and SQS redelivers every message: the
manifest id and job name are derived from the images, so a redelivery does not submit twice
(see ``inferstack.batch.submit``).

Grouping is per invocation, so a redelivery that SQS regroups with other messages makes a
different manifest; its job then finds the outputs already written and skips them.
"""

from __future__ import annotations

import json
from functools import cache
from typing import Any
from urllib.parse import unquote_plus

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType
from aws_lambda_powertools.utilities.data_classes.s3_event import S3Event
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext
from inferstack.batch.clients import make_client
from inferstack.batch.manifest import Item, make_item, unique_sorted
from inferstack.batch.settings import BatchSettings
from inferstack.batch.submit import JobSubmitter
from inferstack.telemetry import make_logger, make_metrics

SERVICE = "inferstack-dispatcher"
logger = make_logger(SERVICE)
metrics = make_metrics(SERVICE)

TEST_EVENT = "s3:TestEvent"


class MalformedMessageError(ValueError):
    """An SQS message that is not an S3 event notification."""


@cache
def _clients() -> tuple[Any, Any]:
    """Created once per execution environment, on first use (tests set the endpoint first)."""
    return make_client("s3"), make_client("batch")


def images_in_message(record: SQSRecord, settings: BatchSettings) -> list[Item]:
    """The accepted images of one SQS message (an S3 notification may hold several records).

    Ignored, not failed: the s3:TestEvent S3 sends when a notification is configured, events
    other than ObjectCreated, other buckets, keys outside INPUT_PREFIX, other suffixes.
    """
    try:
        body = json.loads(record.body)
    except (TypeError, ValueError) as exc:
        raise MalformedMessageError(f"message {record.message_id} body is not JSON: {exc}") from exc
    if not isinstance(body, dict):
        raise MalformedMessageError(f"message {record.message_id} body is not a JSON object")
    if body.get("Event") == TEST_EVENT:
        logger.info("ignoring s3:TestEvent", extra={"message_id": record.message_id})
        return []
    if not isinstance(body.get("Records"), list):
        raise MalformedMessageError(f"message {record.message_id} is not an S3 event notification")
    items = []
    try:
        for s3_record in S3Event(body).records:
            # S3 URL-encodes keys in notifications ("input/my+photo%281%29.jpg" for
            # "input/my photo(1).jpg"); powertools' record.s3.get_object.key returns them raw.
            key = unquote_plus(s3_record.s3.get_object.key)
            bucket = s3_record.s3.bucket.name
            if not s3_record.event_name.startswith("ObjectCreated"):
                continue
            if bucket != settings.bucket or not settings.is_image_key(key):
                logger.debug("ignoring key", extra={"bucket": bucket, "key": key})
                continue
            items.append(make_item(key, s3_record.s3.get_object.etag))
    except (KeyError, TypeError, AttributeError) as exc:
        raise MalformedMessageError(
            f"message {record.message_id} has a malformed record: {exc}"
        ) from exc
    return items


def dispatch(event: dict[str, Any], context: LambdaContext | None, settings: BatchSettings) -> dict:
    collected: list[Item] = []

    def record_handler(record: SQSRecord) -> None:
        collected.extend(images_in_message(record, settings))

    messages = event.get("Records", [])
    metrics.add_metric(name="MessagesReceived", unit=MetricUnit.Count, value=len(messages))
    processor = BatchProcessor(event_type=EventType.SQS)
    with processor(records=messages, handler=record_handler):
        processor.process()
    response = processor.response()

    items = unique_sorted(collected)
    if items:
        s3, batch = _clients()
        owner = getattr(context, "aws_request_id", "") or ""
        submitter = JobSubmitter(settings, s3, batch, owner=owner)
        # Raises on failure: the whole invocation is retried, since every good message
        # contributed to the manifest(s) that could not be submitted.
        for submission in submitter.submit_items(items, source="dispatcher"):
            logger.info("batch job", extra=submission.to_dict())
            if submission.status == "submitted":
                metrics.add_metric(name="JobsSubmitted", unit=MetricUnit.Count, value=1)
            else:
                metrics.add_metric(name="DuplicateDeliveries", unit=MetricUnit.Count, value=1)
            metrics.add_metric(
                name="ImagesDispatched", unit=MetricUnit.Count, value=submission.count
            )
    failed = len(response.get("batchItemFailures", []))
    if failed:
        metrics.add_metric(name="MalformedMessages", unit=MetricUnit.Count, value=failed)
    return response


@metrics.log_metrics
@logger.inject_lambda_context
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict:
    return dispatch(event, context, BatchSettings.from_env())
