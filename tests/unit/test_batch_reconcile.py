"""``inferstack batch reconcile``: classes, exit codes, --json and --submit, on moto."""

from __future__ import annotations

import argparse
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from batch_support import (
    DATA_BUCKET,
    JOB_DEFINITION,
    JOB_QUEUE,
    REGION,
    create_batch_env,
    photo_jpegs,
    put_images,
    upload_bundle,
    write_manifests,
)
from conftest import base_metadata
from inferstack.batch import records
from inferstack.batch.cli import add_batch_commands
from inferstack.batch.manifest import Manifest, make_item, parse_shard
from inferstack.batch.naming import normalize_etag
from inferstack.batch.reconcile import (
    CURRENT,
    OTHER_MODEL,
    STALE_INPUT,
    UNREADABLE_RECORD,
    Reconciler,
    classify_record,
    output_listing_prefix,
)
from moto import mock_aws

MODEL = "a" * 64
OLD_MODEL = "b" * 64
JOB = {"id": "job-1", "array_index": 0}


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[dict[str, Any]]:
    for name in (
        "AWS_ENDPOINT_URL",
        "AWS_ENDPOINT_URL_S3",
        "AWS_PROFILE",
        "MODEL_URI",
        "MODEL_SHA256",
        "INPUT_PREFIX",
        "OUTPUT_PREFIX",
        "MANIFEST_PREFIX",
        "JOB_QUEUE",
        "JOB_DEFINITION",
        "IMAGES_PER_CHILD",
        "MAX_ARRAY_SIZE",
        "AWS_BATCH_JOB_ID",
        "AWS_BATCH_JOB_ARRAY_INDEX",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    monkeypatch.setenv("DATA_BUCKET", DATA_BUCKET)
    monkeypatch.setenv("MODEL_CACHE_DIR", str(tmp_path / "model-cache"))
    monkeypatch.setenv("INFERSTACK_S3_MAX_ATTEMPTS", "2")
    with mock_aws(config={"batch": {"use_docker": False}}):

        def client(service: str) -> Any:
            return boto3.client(service, region_name=REGION)

        client("s3").create_bucket(Bucket=DATA_BUCKET)
        client("s3").create_bucket(Bucket="models")
        create_batch_env(client)
        yield {"s3": client("s3"), "batch": client("batch")}


def run(*argv: str) -> int:
    parser = argparse.ArgumentParser()
    add_batch_commands(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["batch", "reconcile", *argv])
    return int(args.func(args))


def put_record(s3: Any, out_key: str, *, key: str, etag: str, sha: str, error: bool) -> None:
    """An output record as the worker writes it (body and metadata)."""
    model = records.model_info("m", "1", sha)
    source = records.input_info(DATA_BUCKET, key, etag)
    record = (
        records.error_record("invalid_image", "not an image", model=model, source=source, job=JOB)
        if error
        else records.result_record([], model=model, source=source, timing_ms={}, job=JOB)
    )
    s3.put_object(
        Bucket=DATA_BUCKET,
        Key=out_key,
        Body=records.encode(record),
        Metadata=records.output_metadata(record),
    )


def scene(s3: Any) -> dict[str, str]:
    """One input of each class under input/set/; returns {key: expected class}."""
    etags = dict(
        put_images(
            s3,
            {
                "input/set/a.jpg": b"a",
                "input/set/b.jpg": b"b",
                "input/set/c.jpg": b"c-new",
                "input/set/d.jpg": b"d",
                "input/set/e.jpg": b"e",
                "input/set/f.jpg": b"f",
                "input/set/g/h.PNG": b"h",
                "input/set/readme.txt": b"not an image suffix",
                "input/setx/z.jpg": b"outside the prefix's folder",
            },
        )
    )

    def record(
        name: str, *, etag: str | None = None, sha: str = MODEL, error: bool = False
    ) -> None:
        key = f"input/set/{name}"
        put_record(
            s3,
            f"output/set/{name}.json",
            key=key,
            etag=etag or etags[key],
            sha=sha,
            error=error,
        )

    record("a.jpg")
    # b.jpg: no output at all.
    record("c.jpg", etag="0123456789abcdef0123456789abcdef")  # made from an older upload
    record("d.jpg", sha=OLD_MODEL)
    s3.put_object(Bucket=DATA_BUCKET, Key="output/set/e.jpg.json", Body=b'{"predictions": [')
    record("f.jpg", error=True)  # tried by this model at this ETag: accounted for
    record("g/h.PNG")
    return {
        "input/set/a.jpg": "current",
        "input/set/b.jpg": "missing",
        "input/set/c.jpg": "stale_input",
        "input/set/d.jpg": "other_model",
        "input/set/e.jpg": "unreadable_record",
        "input/set/f.jpg": "current",
        "input/set/g/h.PNG": "current",
    }


def not_current(expected: dict[str, str]) -> dict[str, str]:
    return {k: v for k, v in expected.items() if v != "current"}


def test_each_class_table_and_exit_1(
    aws: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    expected = scene(aws["s3"])
    assert run("--prefix", "input/set/", "--model-sha256", MODEL) == 1
    out = capsys.readouterr().out
    counts = dict(line.split() for line in out.split("\n\n")[0].splitlines())
    assert counts == {
        "current": "3",
        "missing": "1",
        "stale_input": "1",
        "other_model": "1",
        "unreadable_record": "1",
        "total": "7",
    }
    rows = out.split("\n\n")[1].splitlines()
    assert rows[0].split() == ["CLASS", "KEY"]
    assert {r.split()[1]: r.split()[0] for r in rows[1:]} == not_current(expected)


def test_json_lists_the_inputs_not_current(
    aws: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    expected = scene(aws["s3"])
    # A key prefix as S3 lists it: input/set also matches input/setx/.
    expected["input/setx/z.jpg"] = "missing"
    assert run("--prefix", "input/set", "--model-sha256", MODEL.upper(), "--json") == 1
    doc = json.loads(capsys.readouterr().out)
    assert doc["total"] == len(expected)
    assert doc["model_sha256"] == MODEL
    assert doc["counts"]["current"] == 3
    assert {e["key"]: e["class"] for e in doc["not_current"]} == not_current(expected)
    outputs = {e["key"]: e["output"] for e in doc["not_current"]}
    assert outputs["input/set/b.jpg"] == "output/set/b.jpg.json"
    assert outputs["input/setx/z.jpg"] == "output/setx/z.jpg.json"
    assert doc["submissions"] == []


def test_everything_current_exits_0(
    aws: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    scene(aws["s3"])
    # Under the new model every record of input/set/g/ is current; under the old one it is not.
    assert run("--prefix", "input/set/g/", "--model-sha256", MODEL) == 0
    assert "current            1" in capsys.readouterr().out
    assert run("--prefix", "input/set/g/", "--model-sha256", OLD_MODEL, "--json") == 1
    assert json.loads(capsys.readouterr().out)["counts"]["other_model"] == 1


def test_model_uri_reads_the_sha256_from_model_json(
    aws: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    expected = scene(aws["s3"])
    meta = {**base_metadata(), "sha256": OLD_MODEL}
    aws["s3"].put_object(Bucket="models", Key="m/2/model.json", Body=json.dumps(meta).encode())
    assert run("--prefix", "input/set/", "--model-uri", "s3://models/m/2/", "--json") == 1
    doc = json.loads(capsys.readouterr().out)
    assert doc["model_sha256"] == OLD_MODEL
    # Records of MODEL are now another model's; the record made by OLD_MODEL is current.
    assert doc["counts"]["current"] == 1
    assert "input/set/d.jpg" not in {e["key"] for e in doc["not_current"]}
    assert len(doc["not_current"]) == len(expected) - 1


def test_model_uri_may_be_a_bundle_folder(
    aws: dict[str, Any], capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    scene(aws["s3"])
    (tmp_path / "model.json").write_text(json.dumps({**base_metadata(), "sha256": MODEL}))
    assert run("--prefix", "input/set/g/", "--model-uri", str(tmp_path), "--json") == 0
    assert json.loads(capsys.readouterr().out)["model_sha256"] == MODEL


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--prefix", "input/"], "--model-uri or --model-sha256"),
        (["--prefix", "input/", "--model-sha256", "abc"], "64 hex digits"),
        (["--prefix", "input/", "--model-uri", "s3://models/none/"], "cannot read"),
        (["--prefix", "input/", "--model-sha256", MODEL, "--submit"], "JOB_QUEUE"),
        (["--prefix", "input/", "--model-sha256", MODEL, "--bucket", "no-such"], "NoSuchBucket"),
        (["--prefix", "input/", "--model-sha256", MODEL, "--images-per-child", "0"], "images"),
    ],
)
def test_usage_and_access_errors_exit_2_with_one_line(
    aws: dict[str, Any], capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    assert run(*argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert err[0].startswith("inferstack: error: ")
    assert message in err[0]


def read_manifest_items(s3: Any, uri: str) -> tuple[Manifest, list[tuple[str, str]]]:
    key = uri.removeprefix(f"s3://{DATA_BUCKET}/")
    manifest = Manifest.from_json(s3.get_object(Bucket=DATA_BUCKET, Key=key)["Body"].read())
    items = []
    for shard in manifest.shards:
        data = s3.get_object(Bucket=DATA_BUCKET, Key=shard.key)["Body"].read()
        items += [(i.key, i.etag) for i in parse_shard(data, shard)]
    return manifest, items


def parent_jobs(batch: Any) -> list[dict[str, Any]]:
    listed = batch.list_jobs(
        jobQueue=JOB_QUEUE, filters=[{"name": "JOB_NAME", "values": ["inferstack-*"]}]
    )["jobSummaryList"]
    return [j for j in listed if ":" not in j["jobId"]]


def test_submit_submits_exactly_the_inputs_not_current(
    aws: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    s3 = aws["s3"]
    expected = scene(s3)
    submit = [
        "--prefix",
        "input/set/",
        "--model-sha256",
        MODEL,
        "--submit",
        "--job-queue",
        JOB_QUEUE,
        "--job-definition",
        JOB_DEFINITION,
        "--images-per-child",
        "2",
    ]
    assert run(*submit, "--json") == 1
    doc = json.loads(capsys.readouterr().out)
    (submission,) = doc["submissions"]
    assert submission["status"] == "submitted"
    assert (submission["images"], submission["children"]) == (4, 2)
    manifest, items = read_manifest_items(s3, submission["manifest"])
    etags = {k: normalize_etag(o["ETag"]) for k, o in listing(s3, "input/set/").items()}
    assert items == sorted((key, etags[key]) for key in not_current(expected))
    assert manifest.source == "reconcile"
    assert MODEL in manifest.salt
    job = aws["batch"].describe_jobs(jobs=[submission["job_id"]])["jobs"][0]
    assert job["parameters"] == {"manifest": submission["manifest"]}
    assert job["arrayProperties"]["size"] == 2

    # The same state again: the same manifest, nothing new submitted (the table names it).
    assert run(*submit) == 1
    out = capsys.readouterr().out
    assert f"already_submitted job {submission['job_id']}" in out
    assert len(parent_jobs(aws["batch"])) == 1
    # A salt submits them again; a model change maps to other manifests too.
    assert run(*submit, "--salt", "retry-1") == 1
    capsys.readouterr()
    assert len(parent_jobs(aws["batch"])) == 2

    # Nothing to do: nothing submitted.
    assert run(*submit[:1], "input/set/g/", *submit[2:], "--json") == 0
    assert json.loads(capsys.readouterr().out)["submissions"] == []
    assert len(parent_jobs(aws["batch"])) == 2


def test_records_written_by_the_worker_are_current(
    aws: dict[str, Any], capsys: pytest.CaptureFixture[str], mobilenet_bundle: Path
) -> None:
    """The worker's own records (ok and error), judged against model.json on S3."""
    from inferstack_worker.main import main as worker_main  # noqa: PLC0415

    s3 = aws["s3"]
    model_uri = upload_bundle(s3, mobilenet_bundle, "models", "mobilenet/1/")
    photos = {f"input/w/p{i}.jpg": body for i, body in enumerate(photo_jpegs(2, seed=5))}
    photos["input/w/broken.jpg"] = b"not a jpeg"
    (manifest,) = write_manifests(s3, put_images(s3, photos), images_per_child=10)
    worker = ["--manifest", manifest, "--model-uri", model_uri, "--interpreter-threads", "1"]
    assert worker_main(worker) == 0
    capsys.readouterr()
    assert run("--prefix", "input/w/", "--model-uri", model_uri) == 0
    assert "current            3" in capsys.readouterr().out
    # A new upload of one image makes its output stale.
    s3.put_object(Bucket=DATA_BUCKET, Key="input/w/p1.jpg", Body=photos["input/w/p0.jpg"])
    assert run("--prefix", "input/w/", "--model-uri", model_uri, "--json") == 1
    doc = json.loads(capsys.readouterr().out)
    assert [(e["key"], e["class"]) for e in doc["not_current"]] == [
        ("input/w/p1.jpg", "stale_input")
    ]


class CountingS3:
    """The moto client, counting GetObject calls."""

    def __init__(self, client: Any) -> None:
        self.client = client
        self.gets: list[str] = []

    def get_object(self, **kwargs: Any) -> Any:
        self.gets.append(kwargs["Key"])
        return self.client.get_object(**kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.client, name)


def test_missing_outputs_cost_no_request(aws: dict[str, Any]) -> None:
    expected = scene(aws["s3"])
    s3 = CountingS3(aws["s3"])
    items = [make_item(k, o["ETag"]) for k, o in listing(aws["s3"], "input/set/").items()]
    report = Reconciler(s3, DATA_BUCKET, model_sha256=MODEL, workers=2).run("input/set/", items)
    assert {e.item.key: e.status for e in report.not_current} == not_current(expected)
    # One GetObject per existing output (every image but the missing one), none for b.jpg.
    assert sorted(s3.gets) == sorted(
        f"output/{k.removeprefix('input/')}.json" for k, c in expected.items() if c != "missing"
    )


def listing(s3: Any, prefix: str) -> dict[str, dict[str, Any]]:
    objects = s3.list_objects_v2(Bucket=DATA_BUCKET, Prefix=prefix)["Contents"]
    return {o["Key"]: o for o in objects if not o["Key"].endswith(".txt")}


def test_classify_record_rules() -> None:
    item = make_item("input/x.jpg", '"e1"')
    body = json.dumps({"input": {"etag": "e1"}, "model": {"sha256": MODEL}}).encode()
    assert classify_record(body, item, MODEL) == CURRENT
    assert classify_record(body, item, OLD_MODEL) == OTHER_MODEL
    # Another ETag is stale whatever model made it.
    assert classify_record(body, make_item("input/x.jpg", "e2"), OLD_MODEL) == STALE_INPUT
    for bad in (b"", b"[1]", b'{"input": {}}', b"\xff", b'{"model": {"sha256": "x"}}'):
        assert classify_record(bad, item, MODEL) == UNREADABLE_RECORD


@pytest.mark.parametrize(
    ("prefix", "listing"),
    [
        ("input/2026/", "output/2026/"),
        ("input/2026/a", "output/2026/a"),
        ("input/", "output/"),
        ("input", "output/"),
        ("", "output/"),
        ("other/", "output/other/"),
    ],
)
def test_output_listing_mirrors_the_input_prefix(prefix: str, listing: str) -> None:
    assert output_listing_prefix(prefix, "input/", "output") == listing
