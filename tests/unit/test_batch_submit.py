"""Idempotent submission (S3 conditional-write marker) and the bulk submit command, on moto."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from batch_support import DATA_BUCKET, JOB_DEFINITION, JOB_QUEUE, REGION, create_batch_env
from inferstack.batch.manifest import build_manifests, make_item
from inferstack.batch.naming import marker_key
from inferstack.batch.settings import BatchSettings
from inferstack.batch.submit import JobSubmitter, SubmissionInProgress
from moto import mock_aws


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Any]]:
    for name in ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    with mock_aws(config={"batch": {"use_docker": False}}):

        def client(service: str) -> Any:
            return boto3.client(service, region_name=REGION)

        client("s3").create_bucket(Bucket=DATA_BUCKET)
        create_batch_env(client)
        yield {"s3": client("s3"), "batch": client("batch")}


def settings(**overrides: Any) -> BatchSettings:
    values: dict[str, Any] = {
        "bucket": DATA_BUCKET,
        "job_queue": JOB_QUEUE,
        "job_definition": JOB_DEFINITION,
        "images_per_child": 2,
    }
    values.update(overrides)
    return BatchSettings(**values)


class Clock:
    def __init__(self, now: float = 1_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


ITEMS = [
    make_item("input/a.jpg", "1"),
    make_item("input/b.jpg", "2"),
    make_item("input/c.jpg", "3"),
]


def parent_jobs(batch: Any) -> list[dict[str, Any]]:
    listed = batch.list_jobs(
        jobQueue=JOB_QUEUE, filters=[{"name": "JOB_NAME", "values": ["inferstack-*"]}]
    )["jobSummaryList"]
    return [j for j in listed if ":" not in j["jobId"]]


def test_submit_once_then_already_submitted(aws: dict[str, Any]) -> None:
    submitter = JobSubmitter(settings(), aws["s3"], aws["batch"])
    (first,) = submitter.submit_items(ITEMS)
    (second,) = submitter.submit_items(ITEMS)
    assert first.status == "submitted"
    assert second.status == "already_submitted"
    assert second.job_id == first.job_id
    assert (first.count, first.children) == (3, 2)
    assert len(parent_jobs(aws["batch"])) == 1
    job = aws["batch"].describe_jobs(jobs=[first.job_id])["jobs"][0]
    assert job["jobName"] == first.job_name
    assert job["parameters"] == {"manifest": first.manifest_uri}


def test_fresh_claim_by_another_caller_is_left_alone(aws: dict[str, Any]) -> None:
    clock = Clock()
    submitter = JobSubmitter(settings(), aws["s3"], aws["batch"], clock=clock)
    (manifest,) = build_manifests(
        ITEMS,
        bucket=DATA_BUCKET,
        input_prefix="input/",
        images_per_child=2,
        max_array_size=10,
        store_shard=submitter.store_shard,
    )
    # Another caller claimed this manifest 10 s ago and has not submitted (yet).
    aws["s3"].put_object(
        Bucket=DATA_BUCKET,
        Key=marker_key("manifests/", manifest.id),
        Body=json.dumps({"state": "claimed", "claimed_at": clock.now - 10}).encode(),
    )
    with pytest.raises(SubmissionInProgress):
        submitter.submit(manifest)
    assert parent_jobs(aws["batch"]) == []
    # Once the lease has expired (the claimer died), the claim is taken over, submitted once.
    clock.now += settings().lease_seconds + 1
    assert submitter.submit(manifest).status == "submitted"
    assert submitter.submit(manifest).status == "already_submitted"
    assert len(parent_jobs(aws["batch"])) == 1


def test_claimed_marker_whose_job_exists_is_completed_not_resubmitted(aws: dict[str, Any]) -> None:
    submitter = JobSubmitter(settings(), aws["s3"], aws["batch"])
    (first,) = submitter.submit_items(ITEMS)
    # The submitter died between submit_job and the marker update.
    aws["s3"].put_object(
        Bucket=DATA_BUCKET,
        Key=marker_key("manifests/", first.manifest_id),
        Body=json.dumps({"state": "claimed", "claimed_at": 0}).encode(),
    )
    (again,) = submitter.submit_items(ITEMS)
    assert again.status == "already_submitted"
    assert again.job_id == first.job_id
    marker = json.loads(
        aws["s3"]
        .get_object(Bucket=DATA_BUCKET, Key=marker_key("manifests/", first.manifest_id))["Body"]
        .read()
    )
    assert marker["state"] == "submitted"
    assert len(parent_jobs(aws["batch"])) == 1


def test_conditional_put_refuses_a_second_claim(aws: dict[str, Any]) -> None:
    """The emulator enforces If-None-Match: * (what the claim relies on)."""
    from botocore.exceptions import ClientError  # noqa: PLC0415

    aws["s3"].put_object(Bucket=DATA_BUCKET, Key="k", Body=b"1", IfNoneMatch="*")
    with pytest.raises(ClientError) as info:
        aws["s3"].put_object(Bucket=DATA_BUCKET, Key="k", Body=b"2", IfNoneMatch="*")
    assert info.value.response["Error"]["Code"] == "PreconditionFailed"


def test_dry_run_writes_and_submits_nothing(aws: dict[str, Any]) -> None:
    submitter = JobSubmitter(settings(), aws["s3"], None, dry_run=True)
    (plan,) = submitter.submit_items(ITEMS)
    assert plan.status == "dry_run"
    assert plan.job_id is None
    assert "Contents" not in aws["s3"].list_objects_v2(Bucket=DATA_BUCKET)


def test_bulk_submit_command(
    aws: dict[str, Any], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import argparse  # noqa: PLC0415

    from inferstack.batch.cli import add_batch_commands  # noqa: PLC0415

    for i in range(25):
        aws["s3"].put_object(Bucket=DATA_BUCKET, Key=f"input/bulk/{i:03d}.jpg", Body=b"x%d" % i)
    aws["s3"].put_object(Bucket=DATA_BUCKET, Key="input/bulk/readme.txt", Body=b"x")
    aws["s3"].put_object(Bucket=DATA_BUCKET, Key="input/other/1.jpg", Body=b"x")
    monkeypatch.setenv("DATA_BUCKET", DATA_BUCKET)
    monkeypatch.setenv("JOB_QUEUE", JOB_QUEUE)
    monkeypatch.setenv("JOB_DEFINITION", JOB_DEFINITION)

    def run(*argv: str) -> int:
        parser = argparse.ArgumentParser()
        add_batch_commands(parser.add_subparsers(dest="command"))
        args = parser.parse_args(["batch", *argv])
        return args.func(args)

    common = [
        "submit",
        "--prefix",
        "input/bulk/",
        "--images-per-child",
        "4",
        "--max-array-size",
        "3",
    ]
    assert run(*common, "--dry-run") == 0
    out = capsys.readouterr()
    plans = [json.loads(line) for line in out.out.splitlines()]
    # 25 images, 12 per job: 12 + 12 + 1.
    assert [p["images"] for p in plans] == [12, 12, 1]
    assert [p["children"] for p in plans] == [3, 3, 1]
    assert {p["status"] for p in plans} == {"dry_run"}
    assert "listed 26 objects (" in out.err
    assert parent_jobs(aws["batch"]) == []

    assert run(*common) == 0
    submitted = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [p["manifest_id"] for p in submitted] == [p["manifest_id"] for p in plans]
    assert {p["status"] for p in submitted} == {"submitted"}
    assert len(parent_jobs(aws["batch"])) == 3

    # Running the same backfill again starts nothing; a salt starts it deliberately.
    assert run(*common) == 0
    again = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert {p["status"] for p in again} == {"already_submitted"}
    assert run(*common, "--salt", "model-v2") == 0
    capsys.readouterr()
    assert len(parent_jobs(aws["batch"])) == 6


# ----------------------------------------------------------------- a named model (--model-uri)

CANDIDATE_SHA = "c" * 64
MODEL_BUCKET = "inferstack-models"
CANDIDATE_URI = f"s3://{MODEL_BUCKET}/models/cand/2/"


def job_environment(batch: Any, job_id: str) -> dict[str, str]:
    job = batch.describe_jobs(jobs=[job_id])["jobs"][0]
    return {e["name"]: e["value"] for e in job["container"]["environment"]}


def test_environment_is_sent_as_container_overrides_to_every_child(aws: dict[str, Any]) -> None:
    env = {"MODEL_URI": CANDIDATE_URI, "MODEL_SHA256": CANDIDATE_SHA}
    submitter = JobSubmitter(settings(), aws["s3"], aws["batch"], environment=env)
    (sub,) = submitter.submit_items(ITEMS)
    assert sub.children == 2
    # What the local Batch runner reads: the job's container environment, the overrides
    # merged over the job definition's (they win), in the parent and in each child.
    for job_id in (sub.job_id, f"{sub.job_id}:0", f"{sub.job_id}:1"):
        found = job_environment(aws["batch"], job_id)
        assert found["MODEL_URI"] == CANDIDATE_URI
        assert found["MODEL_SHA256"] == CANDIDATE_SHA


def test_no_environment_sends_no_overrides(aws: dict[str, Any]) -> None:
    calls: list[dict[str, Any]] = []

    class Recording:
        def __getattr__(self, name: str) -> Any:
            return getattr(aws["batch"], name)

        def submit_job(self, **request: Any) -> Any:
            calls.append(request)
            return aws["batch"].submit_job(**request)

    JobSubmitter(settings(), aws["s3"], Recording()).submit_items(ITEMS)
    assert len(calls) == 1
    assert "containerOverrides" not in calls[0]


def _put_candidate(s3: Any, sha: str = CANDIDATE_SHA) -> None:
    from conftest import base_metadata  # noqa: PLC0415

    s3.create_bucket(Bucket=MODEL_BUCKET)
    meta = {**base_metadata(), "name": "cand", "version": "2", "sha256": sha}
    s3.put_object(Bucket=MODEL_BUCKET, Key="models/cand/2/model.json", Body=json.dumps(meta))


def _run_batch_cli(*argv: str) -> int:
    import argparse  # noqa: PLC0415

    from inferstack.batch.cli import add_batch_commands  # noqa: PLC0415

    parser = argparse.ArgumentParser()
    add_batch_commands(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["batch", *argv])
    return args.func(args)


@pytest.fixture
def backfill(aws: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    for i in range(3):
        aws["s3"].put_object(Bucket=DATA_BUCKET, Key=f"input/run/{i}.jpg", Body=b"x%d" % i)
    monkeypatch.setenv("DATA_BUCKET", DATA_BUCKET)
    monkeypatch.setenv("JOB_QUEUE", JOB_QUEUE)
    monkeypatch.setenv("JOB_DEFINITION", JOB_DEFINITION)
    monkeypatch.delenv("OUTPUT_PREFIX", raising=False)
    _put_candidate(aws["s3"])
    return aws


def test_submit_with_model_uri_runs_the_named_model_beside_the_deployed_one(
    backfill: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    common = ["submit", "--prefix", "input/run/", "--images-per-child", "2"]
    assert _run_batch_cli(*common) == 0
    (primary,) = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert _run_batch_cli(*common, "--model-uri", CANDIDATE_URI.rstrip("/")) == 0
    out = capsys.readouterr()
    (candidate,) = [json.loads(line) for line in out.out.splitlines()]
    # Another job for the same images (the deployed model's run is not "already submitted").
    assert candidate["status"] == "submitted"
    assert candidate["manifest_id"] != primary["manifest_id"]
    assert candidate["model_sha256"] == CANDIDATE_SHA
    assert candidate["output_prefix"] == "output/_models/cand/2/"
    assert "outputs under s3://inferstack-data/output/_models/cand/2/" in out.err
    env = job_environment(backfill["batch"], f"{candidate['job_id']}:1")
    assert env["MODEL_URI"] == CANDIDATE_URI
    assert env["MODEL_SHA256"] == CANDIDATE_SHA  # read from its model.json, pinned
    assert env["OUTPUT_PREFIX"] == "output/_models/cand/2/"
    assert "MODEL_URI" not in job_environment(backfill["batch"], primary["job_id"])
    # The same re-run again starts nothing new.
    assert _run_batch_cli(*common, "--model-uri", CANDIDATE_URI) == 0
    (again,) = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert again["status"] == "already_submitted"
    # An explicit output prefix under the stack's.
    assert (
        _run_batch_cli(
            *common,
            "--model-uri",
            CANDIDATE_URI,
            "--model-sha256",
            CANDIDATE_SHA.upper(),
            "--output-prefix",
            "output/backfill-2",
        )
        == 0
    )
    (explicit,) = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    env = job_environment(backfill["batch"], explicit["job_id"])
    assert env["OUTPUT_PREFIX"] == "output/backfill-2/"


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--model-uri", CANDIDATE_URI, "--model-sha256", "d" * 64], "not --model-sha256"),
        (["--model-sha256", CANDIDATE_SHA], "give --model-uri too"),
        (["--model-uri", "/tmp/bundle"], "must be an s3:// bundle prefix"),
        (["--model-uri", f"s3://{MODEL_BUCKET}/models/none/"], "models/none/model.json"),
        (["--model-uri", CANDIDATE_URI, "--output-prefix", "elsewhere/"], "job role writes only"),
        (["--model-uri", CANDIDATE_URI, "--model-sha256", "xyz"], "64 hex digits"),
    ],
)
def test_submit_with_a_wrong_model_is_refused_before_anything_is_submitted(
    backfill: dict[str, Any],
    capsys: pytest.CaptureFixture[str],
    extra: list[str],
    message: str,
) -> None:
    assert _run_batch_cli("submit", "--prefix", "input/run/", *extra) == 2
    err = capsys.readouterr().err
    assert message in err
    assert "Traceback" not in err
    assert parent_jobs(backfill["batch"]) == []
