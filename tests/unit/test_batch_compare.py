"""``inferstack batch compare`` over two runs' output records, on moto."""

from __future__ import annotations

import argparse
import json
import threading
import time
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from inferstack.batch import compare as compare_module
from inferstack.batch.cli import add_batch_commands
from inferstack.batch.compare import Location, compare_prefixes, parse_location, read_entry
from inferstack.batch.records import encode, error_record, input_info, model_info, result_record
from moto import mock_aws

REGION = "us-east-1"
BUCKET = "inferstack-data"
PRIMARY = model_info("resnet50", "1", "a" * 64)
CANDIDATE = model_info("resnet50", "2", "b" * 64)
CAND_PREFIX = "output/_models/resnet50/2/"


@pytest.fixture
def s3(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    for name in ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_PROFILE", "DATA_BUCKET"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    with mock_aws():
        client = boto3.client("s3", region_name=REGION)
        client.create_bucket(Bucket=BUCKET)
        yield client


def put_result(
    s3: Any, prefix: str, name: str, model: dict[str, str], top: list[tuple[str, float]]
) -> None:
    record = result_record(
        [{"label": label, "index": i, "probability": p} for i, (label, p) in enumerate(top)],
        model=model,
        source=input_info(BUCKET, f"input/{name}", "etag"),
        timing_ms={"total": 1.0},
        job={"id": "j"},
    )
    s3.put_object(Bucket=BUCKET, Key=f"{prefix}{name}.json", Body=encode(record))


def put_error(s3: Any, prefix: str, name: str, model: dict[str, str], code: str) -> None:
    record = error_record(
        code, "x", model=model, source=input_info(BUCKET, f"input/{name}", "e"), job={}
    )
    s3.put_object(Bucket=BUCKET, Key=f"{prefix}{name}.json", Body=encode(record))


def two_runs(s3: Any) -> None:
    """Primary under output/, candidate under output/_models/resnet50/2/ (nested in it)."""
    put_result(s3, "output/", "a.jpg", PRIMARY, [("cat", 0.9), ("dog", 0.1)])
    put_result(s3, CAND_PREFIX, "a.jpg", CANDIDATE, [("cat", 0.7), ("dog", 0.3)])
    put_result(s3, "output/", "b.jpg", PRIMARY, [("dog", 0.6), ("cat", 0.4)])
    # The candidate's predictions are not sorted: the top-1 is the most probable.
    put_result(s3, CAND_PREFIX, "b.jpg", CANDIDATE, [("dog", 0.2), ("fox", 0.8)])
    put_result(s3, "output/", "sub/c.jpg", PRIMARY, [("owl", 0.5)])
    put_result(s3, CAND_PREFIX, "sub/c.jpg", CANDIDATE, [("owl", 0.9)])
    put_error(s3, "output/", "d.png", PRIMARY, "not_an_image")
    put_error(s3, CAND_PREFIX, "d.png", CANDIDATE, "not_an_image")
    put_result(s3, "output/", "e.jpg", PRIMARY, [("cat", 0.8)])
    put_error(s3, CAND_PREFIX, "e.jpg", CANDIDATE, "worker_crash")
    put_result(s3, "output/", "only-primary.jpg", PRIMARY, [("cat", 0.8)])
    put_result(s3, CAND_PREFIX, "only-candidate.jpg", CANDIDATE, [("cat", 0.8)])
    # Job summaries are not records.
    s3.put_object(Bucket=BUCKET, Key="output/_summaries/j.json", Body=b'{"job_id": "j"}')
    s3.put_object(Bucket=BUCKET, Key=f"{CAND_PREFIX}_summaries/k/0.json", Body=b"{}")


def test_compare_two_runs_image_by_image(s3: Any) -> None:
    two_runs(s3)
    doc = compare_prefixes(s3, Location(BUCKET, "output/"), Location(BUCKET, CAND_PREFIX))
    assert doc["common_keys"] == 5
    # a, b, sub/c have a result in both runs; b differs.
    assert doc["compared"] == 3
    assert doc["top1_agreement"] == {"count": 2, "fraction": pytest.approx(2 / 3, abs=1e-6)}
    assert doc["a"]["mean_top1_probability"] == pytest.approx((0.9 + 0.6 + 0.5) / 3)
    assert doc["b"]["mean_top1_probability"] == pytest.approx((0.7 + 0.8 + 0.9) / 3)
    assert doc["differ"] == [
        {
            "key": "input/b.jpg",
            "a": {"label": "dog", "probability": 0.6},
            "b": {"label": "fox", "probability": 0.8},
        }
    ]
    assert doc["error_in_one_run"] == 1
    # The candidate's records nested under output/ are not the primary's.
    assert doc["a"]["records"] == 6
    assert doc["b"]["records"] == 6
    assert doc["a"]["models"] == [{**PRIMARY, "records": 6}]
    assert doc["b"]["models"] == [{**CANDIDATE, "records": 6}]
    assert doc["a"]["errors"] == {"not_an_image": 1}
    assert doc["b"]["errors"] == {"not_an_image": 1, "worker_crash": 1}
    assert doc["a"]["only_here_keys"] == ["input/only-primary.jpg"]
    assert doc["b"]["only_here_keys"] == ["input/only-candidate.jpg"]
    assert doc["a"]["unreadable"] == doc["b"]["unreadable"] == 0


def test_disjoint_keys_compare_nothing(s3: Any) -> None:
    put_result(s3, "run1/", "x.jpg", PRIMARY, [("cat", 0.9)])
    put_result(s3, "run2/", "y.jpg", CANDIDATE, [("cat", 0.9)])
    doc = compare_prefixes(s3, Location(BUCKET, "run1/"), Location(BUCKET, "run2/"))
    assert doc["common_keys"] == doc["compared"] == 0
    assert doc["top1_agreement"] == {"count": 0, "fraction": None}
    assert doc["a"]["mean_top1_probability"] is None
    assert doc["a"]["only_here_keys"] == ["input/x.jpg"]
    assert doc["b"]["only_here_keys"] == ["input/y.jpg"]
    assert "no image has a result in both runs" in compare_module.render_table(doc)


def test_a_run_nested_in_the_other_is_not_counted_twice(s3: Any) -> None:
    put_result(s3, "runs/", "x.jpg", PRIMARY, [("cat", 0.9)])
    put_result(s3, "runs/v2/", "x.jpg", CANDIDATE, [("dog", 0.8)])
    doc = compare_prefixes(s3, Location(BUCKET, "runs/"), Location(BUCKET, "runs/v2/"))
    assert doc["a"]["records"] == doc["b"]["records"] == 1
    assert doc["a"]["duplicates"] == 0
    assert doc["a"]["models"] == [{**PRIMARY, "records": 1}]
    assert doc["differ_count"] == 1


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b"[1, 2]",
        b'{"predictions": [{"label": "cat", "probability": 0.5}]}',  # no input
        b'{"input": {"key": "input/m.jpg"}, "predictions": [{"label": "cat"}]}',
        b'{"input": {"key": "input/m.jpg"}, "predictions": "cat"}',
        b"\xff\xfe",
    ],
)
def test_a_malformed_record_is_counted_as_unreadable(s3: Any, body: bytes) -> None:
    put_result(s3, "run1/", "m.jpg", PRIMARY, [("cat", 0.9)])
    put_result(s3, "run2/", "ok.jpg", CANDIDATE, [("cat", 0.9)])
    s3.put_object(Bucket=BUCKET, Key="run2/m.jpg.json", Body=body)
    doc = compare_prefixes(s3, Location(BUCKET, "run1/"), Location(BUCKET, "run2/"))
    assert doc["b"]["unreadable"] == 1
    assert doc["b"]["unreadable_keys"] == ["run2/m.jpg.json"]
    assert doc["b"]["records"] == 1
    assert doc["a"]["only_here_keys"] == ["input/m.jpg"]


def test_reads_are_bounded_by_workers_and_pages_are_followed(
    s3: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    for i in range(25):
        put_result(s3, "run1/", f"{i:02d}.jpg", PRIMARY, [("cat", 0.9)])
        put_result(s3, "run2/", f"{i:02d}.jpg", CANDIDATE, [("cat", 0.8)])
    monkeypatch.setattr(compare_module, "CHUNK", 7)
    real = s3.get_paginator

    def small_pages(name: str) -> Any:
        paginator = real(name)
        paginate = paginator.paginate

        def paged(**kwargs: Any) -> Any:
            return paginate(**kwargs, PaginationConfig={"PageSize": 4})

        paginator.paginate = paged
        return paginator

    monkeypatch.setattr(s3, "get_paginator", small_pages)
    lock = threading.Lock()
    in_flight = [0, 0]  # now, most
    get_object = s3.get_object

    def counted_get(**kwargs: Any) -> Any:
        with lock:
            in_flight[0] += 1
            in_flight[1] = max(in_flight[1], in_flight[0])
        try:
            time.sleep(0.002)
            return get_object(**kwargs)
        finally:
            with lock:
                in_flight[0] -= 1

    monkeypatch.setattr(s3, "get_object", counted_get)
    doc = compare_prefixes(
        s3, Location(BUCKET, "run1/"), Location(BUCKET, "run2/"), workers=3, limit=2
    )
    assert doc["compared"] == 25
    assert doc["top1_agreement"]["fraction"] == 1.0
    assert 1 < in_flight[1] <= 3


def test_the_same_prefix_twice_is_refused(s3: Any) -> None:
    with pytest.raises(ValueError, match="two output prefixes"):
        compare_prefixes(s3, Location(BUCKET, "output/"), Location(BUCKET, "output/"))


def test_parse_location() -> None:
    assert parse_location("s3://b/out", None) == Location("b", "out/")
    assert parse_location("output", "data") == Location("data", "output/")
    with pytest.raises(ValueError, match="DATA_BUCKET"):
        parse_location("output/", None)
    with pytest.raises(ValueError, match="no bucket"):
        parse_location("s3:///x", None)


def test_read_entry_takes_the_most_probable_prediction() -> None:
    raw = json.dumps(
        {
            "input": {"key": "input/a.jpg"},
            "model": PRIMARY,
            "predictions": [{"label": "a", "probability": 0.1}, {"label": "b", "probability": 0.7}],
        }
    ).encode()
    key, entry = read_entry(raw)
    assert (key, entry.label, entry.probability, entry.model) == (
        "input/a.jpg",
        "b",
        0.7,
        ("resnet50", "1", "a" * 64),
    )


def run_cli(*argv: str) -> int:
    parser = argparse.ArgumentParser()
    add_batch_commands(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["batch", "compare", *argv])
    return int(args.func(args))


def test_compare_command_table_and_json(
    s3: Any, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    two_runs(s3)
    monkeypatch.setenv("DATA_BUCKET", BUCKET)
    assert run_cli("output/", f"s3://{BUCKET}/{CAND_PREFIX}") == 0
    table = capsys.readouterr().out
    assert "top-1 agreement: 2 of 3 images with a result in both runs (66.7%)" in table
    assert "input/b.jpg  A: dog 0.600  B: fox 0.800" in table
    assert f"resnet50 2 ({'b' * 12})" in table
    assert run_cli("output/", CAND_PREFIX, "--json", "--limit", "0") == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["differ_count"] == 1
    assert doc["differ"] == []


def test_compare_command_errors_are_one_line(
    s3: Any, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run_cli("output/", "other/") == 2
    assert "DATA_BUCKET" in capsys.readouterr().err
    assert run_cli("s3://no-such-bucket/a/", "s3://no-such-bucket/b/") == 2
    err = capsys.readouterr().err
    assert "inferstack: error: AWS:" in err
    assert "NoSuchBucket" in err
    assert "Traceback" not in err
