"""Crash isolation in the worker (moto in-process): the in-flight marker, suspects retried
alone, poison images recorded as ``worker_crash`` without being decoded again."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from batch_support import (
    DATA_BUCKET,
    photo_jpegs,
    put_images,
    read_outputs,
    upload_bundle,
    worker_s3,
    write_manifests,
)
from inferstack.batch import worker as worker_module
from inferstack.batch.inflight import history_from_marker, inflight_key
from inferstack.batch.worker import EXIT_OK, EXIT_TEMPFAIL, ShardWorker
from inferstack_worker.main import main as worker_main

JOB = "job-crash"
MARKER = inflight_key("output/", JOB, 0)


@pytest.fixture
def s3(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Any]:
    with worker_s3(monkeypatch, tmp_path) as client:
        yield client


@pytest.fixture
def model_uri(s3: Any, mobilenet_bundle: Path) -> str:
    return upload_bundle(s3, mobilenet_bundle, "models", "mobilenet/1/")


@pytest.fixture
def shard(s3: Any) -> tuple[str, list[str]]:
    photos = {f"input/c/{i:02d}.jpg": body for i, body in enumerate(photo_jpegs(20, seed=11))}
    keys = put_images(s3, photos)
    (manifest,) = write_manifests(s3, keys, images_per_child=20)
    return manifest, [k for k, _ in keys]


def run_worker(manifest: str, model_uri: str, *extra: str) -> int:
    argv = ["--manifest", manifest, "--model-uri", model_uri, "--job-id", f"{JOB}:0"]
    return worker_main([*argv, "--interpreter-threads", "1", "--prefetch", "4", *extra])


def read_json(s3: Any, key: str) -> dict[str, Any]:
    return json.loads(s3.get_object(Bucket=DATA_BUCKET, Key=key)["Body"].read())


def put_marker(s3: Any, **doc: Any) -> None:
    s3.put_object(Bucket=DATA_BUCKET, Key=MARKER, Body=json.dumps(doc).encode())


class FetchSpy:
    """Wraps ShardWorker.fetch: which keys were fetched, and what the marker said then."""

    def __init__(self, s3: Any, monkeypatch: pytest.MonkeyPatch) -> None:
        self.s3 = s3
        self.fetched: list[str] = []
        self.marker_at_fetch: dict[str, dict[str, Any]] = {}
        original = ShardWorker.fetch

        def fetch(worker: ShardWorker, item: Any, out_key: str, exists: bool) -> Any:
            self.fetched.append(item.key)
            self.marker_at_fetch[item.key] = read_json(s3, MARKER)
            return original(worker, item, out_key, exists)

        monkeypatch.setattr(ShardWorker, "fetch", fetch)


def test_history_from_marker() -> None:
    assert history_from_marker(None, None).attempt == 1
    assert history_from_marker(None, 3).attempt == 3
    died = history_from_marker({"attempt": 1, "inflight": ["a", "b"], "strikes": {}}, None)
    assert (died.attempt, died.strikes, died.poison, died.previous_died) == (
        2,
        {"a": 1, "b": 1},
        {},
        True,
    )
    assert died.suspects == ["a", "b"]
    alone = history_from_marker(
        {"attempt": 2, "inflight": ["a"], "solo": True, "strikes": {"a": 1}}, 3
    )
    assert (alone.poison, alone.suspects) == ({"a": 2}, [])
    # A clean end leaves nothing in flight: no strike for anyone.
    clean = history_from_marker({"attempt": 1, "inflight": [], "strikes": {}}, None)
    assert (clean.strikes, clean.previous_died) == ({}, False)


def test_every_image_is_listed_in_flight_before_it_is_decoded(
    s3: Any, model_uri: str, shard: tuple[str, list[str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    manifest, keys = shard
    spy = FetchSpy(s3, monkeypatch)
    writes: list[list[str]] = []
    original_write = worker_module.InflightMarker.write

    def write(marker: Any, history: Any, inflight: list[str], **kwargs: Any) -> None:
        writes.append(list(inflight))
        original_write(marker, history, inflight, **kwargs)

    monkeypatch.setattr(worker_module.InflightMarker, "write", write)
    assert run_worker(manifest, model_uri) == EXIT_OK

    assert sorted(spy.fetched) == keys
    for key in keys:
        assert key in spy.marker_at_fetch[key]["inflight"], key
    # Batched: one write per `prefetch` (4) images entering, plus the final clear.
    assert len(writes) <= len(keys) // 4 + 2
    assert writes[-1] == []
    final = read_json(s3, MARKER)
    assert (final["inflight"], final["strikes"], final["attempt"]) == ([], {}, 1)
    assert len(read_outputs(s3)) == len(keys)


def test_suspects_of_a_death_are_classified_first_and_alone(
    s3: Any, model_uri: str, shard: tuple[str, list[str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    manifest, keys = shard
    suspects = [keys[5], keys[12]]
    put_marker(s3, attempt=1, inflight=suspects, solo=False, strikes={}, poison={})
    monkeypatch.setenv("AWS_BATCH_JOB_ATTEMPT", "2")
    spy = FetchSpy(s3, monkeypatch)
    assert run_worker(manifest, model_uri) == EXIT_OK

    assert spy.fetched[:2] == suspects
    for key in suspects:
        seen = spy.marker_at_fetch[key]
        assert (seen["inflight"], seen["solo"], seen["attempt"]) == ([key], True, 2)
    outputs = read_outputs(s3)
    assert len(outputs) == len(keys)
    assert all("predictions" in r for r in outputs.values())
    child = read_json(s3, f"output/_summaries/{JOB}/0.json")
    assert (child["ok"], child["suspects_retried"], child["attempt"]) == (20, 2, 2)
    assert read_json(s3, MARKER)["strikes"] == {}


def test_an_image_that_killed_the_worker_alone_gets_a_worker_crash_record(
    s3: Any, model_uri: str, shard: tuple[str, list[str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    manifest, keys = shard
    poison = keys[7]
    # Attempt 1 died with it in the pipeline, attempt 2 died while classifying it alone.
    put_marker(s3, attempt=2, inflight=[poison], solo=True, strikes={poison: 1}, poison={})
    monkeypatch.setenv("AWS_BATCH_JOB_ATTEMPT", "3")
    spy = FetchSpy(s3, monkeypatch)
    assert run_worker(manifest, model_uri) == EXIT_OK

    assert poison not in spy.fetched
    outputs = read_outputs(s3)
    assert len(outputs) == len(keys)
    record = outputs[poison.replace("input/", "output/") + ".json"]
    assert record["error"]["code"] == "worker_crash"
    assert record["error"]["attempts"] == 2
    assert record["job"]["attempt"] == 3
    assert sum("predictions" in r for r in outputs.values()) == len(keys) - 1
    child = read_json(s3, f"output/_summaries/{JOB}/0.json")
    assert (child["ok"], child["failed"], child["errors"]) == (19, 1, {"worker_crash": 1})
    assert child["worker_crash_keys"] == [poison]
    # A later run of the same child does not rewrite the record.
    monkeypatch.setenv("AWS_BATCH_JOB_ATTEMPT", "4")
    assert run_worker(manifest, model_uri) == EXIT_OK
    assert read_json(s3, f"output/_summaries/{JOB}/0.json")["skipped"] == 20


def test_a_handled_infrastructure_exit_leaves_nothing_in_flight(
    s3: Any, model_uri: str, shard: tuple[str, list[str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    manifest, _ = shard

    def failing_write(worker: ShardWorker, out_key: str, record: Any) -> None:
        raise worker_module.InfrastructureError("S3 down")

    monkeypatch.setattr(ShardWorker, "write", failing_write)
    assert run_worker(manifest, model_uri) == EXIT_TEMPFAIL
    marker = read_json(s3, MARKER)
    assert marker["inflight"] == []
    assert history_from_marker(marker, None).strikes == {}


class FakeBatch:
    """DescribeJobs of a FAILED array job of 3 children: child 1 OOM-killed on every attempt."""

    def __init__(self, manifest: str) -> None:
        self.manifest = manifest

    def describe_jobs(self, jobs: list[str]) -> dict[str, Any]:
        oom = {
            "statusReason": "OutOfMemoryError: Container killed due to memory usage",
            "container": {"exitCode": 137},
        }
        ok = {"statusReason": "Essential container in task exited", "container": {"exitCode": 0}}
        described = {
            "job-s": {
                "jobId": "job-s",
                "status": "FAILED",
                "statusReason": "1 of 3 child jobs failed",
                "arrayProperties": {"size": 3},
                "parameters": {"manifest": self.manifest},
            },
            "job-s:0": {"jobId": "job-s:0", "status": "SUCCEEDED", "attempts": [ok]},
            "job-s:1": {"jobId": "job-s:1", "status": "FAILED", "attempts": [oom, oom, oom]},
            "job-s:2": {"jobId": "job-s:2", "status": "SUCCEEDED", "attempts": [ok]},
        }
        return {"jobs": [described[j] for j in jobs if j in described]}


def test_status_of_a_failed_job_shows_attempts_exits_and_keys_without_result(
    s3: Any, model_uri: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from inferstack.batch.summary import incident_status  # noqa: PLC0415

    photos = {f"input/s/{i}.jpg": body for i, body in enumerate(photo_jpegs(6, seed=2))}
    keys = put_images(s3, photos)
    (manifest,) = write_manifests(s3, keys, images_per_child=2)
    argv = ["--manifest", manifest, "--model-uri", model_uri, "--interpreter-threads", "1"]
    for index in (0, 2):  # child 1 died on every attempt
        monkeypatch.setenv("AWS_BATCH_JOB_ID", f"job-s:{index}")
        assert worker_main([*argv, "--array-index", str(index)]) == EXIT_OK
    # It had written one of its two outputs before dying.
    s3.put_object(Bucket=DATA_BUCKET, Key="output/s/2.jpg.json", Body=b"{}")

    status = incident_status(s3, DATA_BUCKET, "output/", "job-s", None, batch=FakeBatch(manifest))
    assert (status["complete"], status["children"], status["missing_indexes"]) == (
        False,
        3,
        [1],
    )
    assert status["keys_without_result"] == ["input/s/3.jpg"]
    assert status["keys_without_result_count"] == 1
    assert (status["ok"], status["with_record"], status["batch_status"]) == (4, 4, "FAILED")
    child = status["per_child"][1]
    assert (child["summary"], child["status"], child["attempts"]) == (False, "FAILED", 3)
    assert {e["exit_code"] for e in child["exits"]} == {137}
    assert child["exits"][0]["reason"].startswith("OutOfMemoryError")
    done = status["per_child"][0]
    assert (done["done"], done["errors"], done["attempts"], done["finished_attempt"]) == (
        2,
        {},
        1,
        1,
    )
