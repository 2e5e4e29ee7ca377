"""Dispatcher Lambda against moto (in-process): filtering, idempotency, partial failures."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from batch_support import (
    DATA_BUCKET,
    TEST_EVENT,
    DispatcherContext,
    dispatcher_aws,
    s3_record,
    sqs_event,
    sqs_message,
)
from inferstack.batch.manifest import Manifest, parse_shard


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Any]]:
    with dispatcher_aws(monkeypatch) as (handler, client):
        yield {"handler": handler, "s3": client("s3"), "batch": client("batch")}


def invoke(aws: dict[str, Any], event: dict[str, Any]) -> dict[str, Any]:
    return aws["handler"].lambda_handler(event, DispatcherContext())


def jobs(aws: dict[str, Any]) -> list[dict[str, Any]]:
    pages = (
        aws["batch"]
        .get_paginator("list_jobs")
        .paginate(
            jobQueue="inferstack-batch", filters=[{"name": "JOB_NAME", "values": ["inferstack-*"]}]
        )
    )
    # moto also lists array children ("<parent id>:<index>"); AWS lists parents only.
    listed = [j for page in pages for j in page["jobSummaryList"] if ":" not in j["jobId"]]
    return aws["batch"].describe_jobs(jobs=[j["jobId"] for j in listed])["jobs"] if listed else []


def manifest_items(aws: dict[str, Any], job: dict[str, Any]) -> list[str]:
    uri = job["parameters"]["manifest"]
    key = uri.split("/", 3)[3]
    manifest = Manifest.from_json(aws["s3"].get_object(Bucket=DATA_BUCKET, Key=key)["Body"].read())
    keys = []
    for shard in manifest.shards:
        body = aws["s3"].get_object(Bucket=DATA_BUCKET, Key=shard.key)["Body"].read()
        keys.extend(item.key for item in parse_shard(body, shard))
    return keys


def test_records_of_every_message_go_into_one_array_job(aws: dict[str, Any]) -> None:
    event = sqs_event(
        # One notification holding several records, URL-encoded keys.
        sqs_message(
            {"Records": [s3_record("input/a b+c(1).jpg", "e1"), s3_record("input/x/B.JPG", "e2")]}
        ),
        sqs_message({"Records": [s3_record("input/c.png", "e3")]}),
    )
    assert invoke(aws, event) == {"batchItemFailures": []}
    (job,) = jobs(aws)
    assert job["jobName"].startswith("inferstack-")
    # 3 images, 2 per child: an array job of 2.
    assert job["arrayProperties"]["size"] == 2
    assert sorted(manifest_items(aws, job)) == [
        "input/a b+c(1).jpg",
        "input/c.png",
        "input/x/B.JPG",
    ]


def test_single_child_job_has_no_array_properties(aws: dict[str, Any]) -> None:
    invoke(aws, sqs_event(sqs_message({"Records": [s3_record("input/one.jpg", "e1")]})))
    (job,) = jobs(aws)
    assert "arrayProperties" not in job or not job["arrayProperties"].get("size")
    assert manifest_items(aws, job) == ["input/one.jpg"]


def test_ignores_test_event_outside_prefix_wrong_suffix_and_other_events(
    aws: dict[str, Any],
) -> None:
    event = sqs_event(
        sqs_message(TEST_EVENT),
        sqs_message({"Records": [s3_record("output/a.jpg.json", "e")]}),
        sqs_message({"Records": [s3_record("input/notes.txt", "e")]}),
        sqs_message({"Records": [s3_record("input/folder/", "e")]}),
        sqs_message({"Records": [s3_record("input/a.jpg", "e", event="ObjectRemoved:Delete")]}),
        sqs_message({"Records": [s3_record("input/a.jpg", "e", bucket="someone-else")]}),
    )
    assert invoke(aws, event) == {"batchItemFailures": []}
    assert jobs(aws) == []
    assert "Contents" not in aws["s3"].list_objects_v2(Bucket=DATA_BUCKET, Prefix="manifests/")


def test_suffixes_are_case_insensitive(aws: dict[str, Any]) -> None:
    invoke(aws, sqs_event(sqs_message({"Records": [s3_record("input/A.JpEg", "e")]})))
    assert len(jobs(aws)) == 1


def test_same_event_twice_in_one_invocation_starts_one_job(aws: dict[str, Any]) -> None:
    body = {"Records": [s3_record("input/a.jpg", "e1")]}
    invoke(aws, sqs_event(sqs_message(body), sqs_message(body)))
    (job,) = jobs(aws)
    assert manifest_items(aws, job) == ["input/a.jpg"]


def test_same_message_in_two_invocations_starts_one_job(aws: dict[str, Any]) -> None:
    message = sqs_message(
        {"Records": [s3_record("input/a.jpg", "e1"), s3_record("input/b.jpg", "e2")]}
    )
    invoke(aws, sqs_event(message))
    invoke(aws, sqs_event(message))
    assert len(jobs(aws)) == 1
    marker = aws["s3"].list_objects_v2(Bucket=DATA_BUCKET, Prefix="manifests/")["Contents"]
    markers = [o["Key"] for o in marker if o["Key"].endswith(".submitted")]
    assert len(markers) == 1
    doc = json.loads(aws["s3"].get_object(Bucket=DATA_BUCKET, Key=markers[0])["Body"].read())
    assert doc["state"] == "submitted"
    assert doc["job_id"] == jobs(aws)[0]["jobId"]


def test_new_upload_of_the_same_key_starts_a_new_job(aws: dict[str, Any]) -> None:
    invoke(aws, sqs_event(sqs_message({"Records": [s3_record("input/a.jpg", "etag-1")]})))
    invoke(aws, sqs_event(sqs_message({"Records": [s3_record("input/a.jpg", "etag-2")]})))
    assert len(jobs(aws)) == 2


def test_one_bad_message_is_reported_and_the_others_processed(aws: dict[str, Any]) -> None:
    bad = sqs_message("this is not json", message_id="bad-1")
    not_s3 = sqs_message({"hello": "world"}, message_id="bad-2")
    good = sqs_message({"Records": [s3_record("input/good.jpg", "e1")]}, message_id="good-1")
    response = invoke(aws, sqs_event(bad, good, not_s3))
    failed = sorted(f["itemIdentifier"] for f in response["batchItemFailures"])
    assert failed == ["bad-1", "bad-2"]
    (job,) = jobs(aws)
    assert manifest_items(aws, job) == ["input/good.jpg"]


def test_over_max_array_size_splits_into_several_jobs(
    aws: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("IMAGES_PER_CHILD", "2")
    monkeypatch.setenv("MAX_ARRAY_SIZE", "3")
    records = [s3_record(f"input/{i:02d}.jpg", f"e{i}") for i in range(13)]
    invoke(aws, sqs_event(sqs_message({"Records": records})))
    found = jobs(aws)
    # 13 images, 6 per job: 6 + 6 + 1.
    sizes = sorted((j.get("arrayProperties") or {}).get("size", 1) for j in found)
    assert sizes == [1, 3, 3]
    keys = [k for job in found for k in manifest_items(aws, job)]
    assert sorted(keys) == [f"input/{i:02d}.jpg" for i in range(13)]


def test_submission_failure_fails_the_invocation(
    aws: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("JOB_QUEUE", "no-such-queue")
    with pytest.raises(Exception, match=r"(?i)queue"):
        invoke(aws, sqs_event(sqs_message({"Records": [s3_record("input/a.jpg", "e1")]})))
