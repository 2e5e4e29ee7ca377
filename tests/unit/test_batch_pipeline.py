"""The worker pipeline's mechanics with a fake classifier (no model): bounded in-flight
images, several interpreters used at once, unexpected decoder errors contained."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import boto3
import numpy as np
import pytest
from batch_support import DATA_BUCKET, REGION, put_images, read_outputs, write_manifests
from inferstack.batch.worker import ShardWorker, WorkerConfig, read_manifest, read_shard
from inferstack.pipeline import Pipeline
from moto import mock_aws


@dataclass(frozen=True)
class FakeBundle:
    name: str = "fake"
    version: str = "1"
    sha256: str = "f" * 64


class FakeClassifier:
    """Stands in for inferstack.classifier.Classifier: records concurrency, no model."""

    def __init__(self, tracker: Tracker, *, fail_on: bytes = b"") -> None:
        self.bundle = FakeBundle()
        self.num_threads = 1
        self.tracker = tracker
        self.fail_on = fail_on

    def classify_array(self, pixels: np.ndarray, *, top_k: int = 5) -> list[dict[str, Any]]:
        self.tracker.enter("infer")
        time.sleep(0.01)
        self.tracker.leave("infer")
        return [{"label": "thing", "index": 0, "probability": 1.0}][:top_k]


class FakePipeline(Pipeline):
    """The shared pipeline with a fake decoder (the bytes are not images): records concurrency."""

    def decode(self, data: bytes) -> Any:
        classifier = self.classifier
        if classifier.fail_on and data.startswith(classifier.fail_on):
            raise RuntimeError("decoder bug")
        classifier.tracker.enter("prepare")
        time.sleep(0.002)
        classifier.tracker.leave("prepare")
        return data

    def preprocess(self, img: Any) -> np.ndarray:
        return np.zeros((4, 4, 3), np.uint8)


class Tracker:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.active = {"prepare": 0, "infer": 0}
        self.peak = {"prepare": 0, "infer": 0}

    def enter(self, stage: str) -> None:
        with self.lock:
            self.active[stage] += 1
            self.peak[stage] = max(self.peak[stage], self.active[stage])

    def leave(self, stage: str) -> None:
        with self.lock:
            self.active[stage] -= 1


@pytest.fixture
def s3(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    for name in ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    with mock_aws():
        client = boto3.client("s3", region_name=REGION)
        client.create_bucket(Bucket=DATA_BUCKET)
        yield client


def make_worker(s3: Any, classifiers: list[FakeClassifier], count: int, **config: Any) -> Any:
    keys = put_images(s3, {f"input/{i:03d}.jpg": b"img %d" % i for i in range(count)})
    (uri,) = write_manifests(s3, keys, images_per_child=count)
    manifest = read_manifest(s3, uri)
    items = read_shard(s3, manifest, 0, DATA_BUCKET)
    worker = ShardWorker(
        WorkerConfig(manifest_uri=uri, model_uri="fake", job_id="job", **config),
        s3,
        classifiers,
        manifest,
        pipeline=FakePipeline(classifiers[0]),  # type: ignore[arg-type]
    )
    return worker, items


def test_two_interpreters_run_at_once_and_in_flight_is_bounded(s3: Any) -> None:
    tracker = Tracker()
    classifiers = [FakeClassifier(tracker), FakeClassifier(tracker)]
    worker, items = make_worker(s3, classifiers, 40, io_threads=3, prefetch=4)
    stats = worker.run(items)
    assert (stats.ok, stats.failed, stats.skipped) == (40, 0, 0)
    assert tracker.peak["infer"] == 2
    assert tracker.peak["prepare"] <= 3
    assert len(read_outputs(s3)) == 40


def test_one_interpreter_is_never_used_by_two_threads(s3: Any) -> None:
    tracker = Tracker()
    worker, items = make_worker(s3, [FakeClassifier(tracker)], 20, io_threads=4, prefetch=8)
    assert worker.run(items).ok == 20
    assert tracker.peak["infer"] == 1


def test_unexpected_decoder_error_is_an_error_record(s3: Any) -> None:
    tracker = Tracker()
    worker, items = make_worker(s3, [FakeClassifier(tracker, fail_on=b"img 7")], 10)
    stats = worker.run(items)
    assert (stats.ok, stats.failed) == (9, 1)
    record = read_outputs(s3)["output/007.jpg.json"]
    assert record["error"]["code"] == "invalid_image"
    assert "RuntimeError" in record["error"]["message"]
