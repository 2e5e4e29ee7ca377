"""The worker on moto (in-process) with the pretrained MobileNetV2 fixture and real photos."""

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
from inferstack.batch.worker import EXIT_CONFIG, EXIT_DATAERR, EXIT_OK, EXIT_TEMPFAIL
from inferstack_worker.main import main as worker_main


@pytest.fixture
def s3(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Any]:
    with worker_s3(monkeypatch, tmp_path) as client:
        yield client


@pytest.fixture
def model_uri(s3: Any, mobilenet_bundle: Path) -> str:
    return upload_bundle(s3, mobilenet_bundle, "models", "mobilenet/1/")


def run_worker(manifest: str, model_uri: str, *extra: str, index: int | None = None) -> int:
    argv = ["--manifest", manifest, "--model-uri", model_uri, "--interpreter-threads", "1", *extra]
    if index is not None:
        argv += ["--array-index", str(index)]
    return worker_main(argv)


def test_classifies_shards_writes_records_and_summaries(
    s3: Any, model_uri: str, imagenet_fixtures: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    images = {
        "input/birds/parrot.jpg": (imagenet_fixtures / "parrot.jpg").read_bytes(),
        "input/cat.bmp": (imagenet_fixtures / "cat.bmp").read_bytes(),
        "input/corrupt.jpg": (imagenet_fixtures / "parrot.jpg").read_bytes()[:600],
        "input/text.png": b"this is not an image at all",
        "input/tiny.gif": bytes.fromhex(
            "47494638396101000100800000000000ffffff21f90401000000002c00000000010001000002024401003b"
        ),
    }
    photos = {f"input/photos/{i}.jpg": body for i, body in enumerate(photo_jpegs(4))}
    keys = put_images(s3, {**images, **photos})
    keys.append(("input/deleted.jpg", "0123"))  # in the manifest, gone from the bucket
    (manifest,) = write_manifests(s3, keys, images_per_child=4)
    monkeypatch.setenv("AWS_BATCH_JOB_ID", "job-1:0")
    for index in range(3):
        assert run_worker(manifest, model_uri, index=index) == EXIT_OK

    records = read_outputs(s3)
    assert len(records) == 10
    parrot = records["output/birds/parrot.jpg.json"]
    assert parrot["predictions"][0]["label"] == "macaw"
    assert parrot["predictions"][0]["probability"] > 0.9
    assert len(parrot["predictions"]) == 5
    assert parrot["input"] == {
        "bucket": DATA_BUCKET,
        "key": "input/birds/parrot.jpg",
        "etag": dict(keys)["input/birds/parrot.jpg"].strip('"'),
    }
    assert parrot["model"]["name"]
    assert len(parrot["model"]["sha256"]) == 64
    assert set(parrot["timing_ms"]) >= {"fetch", "decode_preprocess", "infer", "total"}
    assert records["output/cat.bmp.json"]["predictions"][0]["label"] in {
        "Egyptian cat",
        "tabby",
        "tiger cat",
    }
    assert records["output/corrupt.jpg.json"]["error"]["code"] == "invalid_image"
    assert records["output/text.png.json"]["error"]["code"] == "invalid_image"
    assert records["output/tiny.gif.json"]["error"]["code"] == "invalid_image"
    assert records["output/deleted.jpg.json"]["error"]["code"] == "not_found"
    assert all("predictions" in records[f"output/photos/{i}.jpg.json"] for i in range(4))

    head = s3.head_object(Bucket=DATA_BUCKET, Key="output/birds/parrot.jpg.json")
    assert head["Metadata"]["input-etag"] == parrot["input"]["etag"]
    assert head["Metadata"]["model-sha256"] == parrot["model"]["sha256"]
    assert head["ContentType"] == "application/json"

    children = [
        json.loads(
            s3.get_object(Bucket=DATA_BUCKET, Key=f"output/_summaries/job-1/{i}.json")[
                "Body"
            ].read()
        )
        for i in range(3)
    ]
    assert [c["images"] for c in children] == [4, 4, 2]
    # CPU over the shard (model load excluded), and per image classified.
    for child in children:
        n = child["ok"] + child["failed"]
        # cpu_seconds is rounded to the millisecond, cpu_ms_per_image to 0.01 ms
        rounding = 0.5 / n + 0.005
        assert child["cpu_seconds"] > 0 and child["cpu_ms_per_image"] == pytest.approx(
            1000 * child["cpu_seconds"] / n, abs=rounding
        )
    job = json.loads(
        s3.get_object(Bucket=DATA_BUCKET, Key="output/_summaries/job-1.json")["Body"].read()
    )
    assert job["complete"] is True
    assert (job["images"], job["ok"], job["failed"], job["skipped"]) == (10, 6, 4, 0)
    assert job["errors"] == {"invalid_image": 3, "not_found": 1}


def test_rerun_skips_current_outputs_and_redoes_changed_inputs(
    s3: Any, model_uri: str, mobilenet_bundle: Path
) -> None:
    photos = {f"input/p{i}.jpg": body for i, body in enumerate(photo_jpegs(6, seed=3))}
    keys = put_images(s3, photos)
    (manifest,) = write_manifests(s3, keys, images_per_child=10)
    assert run_worker(manifest, model_uri) == EXIT_OK
    first = read_outputs(s3)
    assert len(first) == 6

    # An output made from another version of the input is stale: it is redone.
    record = first["output/p2.jpg.json"]
    s3.put_object(
        Bucket=DATA_BUCKET,
        Key="output/p2.jpg.json",
        Body=json.dumps(record).encode(),
        Metadata={"input-etag": "stale", "model-sha256": record["model"]["sha256"]},
    )
    s3.delete_object(Bucket=DATA_BUCKET, Key="output/p4.jpg.json")
    assert run_worker(manifest, model_uri) == EXIT_OK
    job_id = f"local-{manifest.rsplit('/', 1)[1][:16]}"
    summary = json.loads(
        s3.get_object(Bucket=DATA_BUCKET, Key=f"output/_summaries/{job_id}/0.json")["Body"].read()
    )
    assert (summary["skipped"], summary["ok"], summary["failed"]) == (4, 2, 0)
    assert len(read_outputs(s3)) == 6
    # Local bundle path works as well as s3://.
    assert run_worker(manifest, str(mobilenet_bundle)) == EXIT_OK


def test_image_over_the_byte_limit_is_an_error_record(
    s3: Any, model_uri: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    (body,) = photo_jpegs(1, sizes=((1280, 960),))
    keys = put_images(s3, {"input/big.jpg": body, "input/small.jpg": photo_jpegs(1)[0]})
    monkeypatch.setenv("MAX_IMAGE_BYTES", str(len(body) - 1))
    (manifest,) = write_manifests(s3, keys, images_per_child=10)
    assert run_worker(manifest, model_uri) == EXIT_OK
    records = read_outputs(s3)
    assert records["output/big.jpg.json"]["error"]["code"] == "image_too_large"
    assert "predictions" in records["output/small.jpg.json"]


def test_exit_codes_for_bad_manifest_index_and_missing_model(s3: Any, model_uri: str) -> None:
    keys = put_images(s3, {"input/a.jpg": photo_jpegs(1)[0]})
    (manifest,) = write_manifests(s3, keys, images_per_child=10)
    assert run_worker(manifest, model_uri, index=1) == EXIT_DATAERR
    s3.put_object(Bucket=DATA_BUCKET, Key="manifests/bad.json", Body=b"{not json")
    assert run_worker(f"s3://{DATA_BUCKET}/manifests/bad.json", model_uri) == EXIT_DATAERR
    assert run_worker(f"s3://{DATA_BUCKET}/manifests/missing.json", model_uri) == EXIT_TEMPFAIL
    assert run_worker(manifest, "s3://models/no-such-model/") == EXIT_TEMPFAIL
    assert read_outputs(s3) == {}


def test_a_model_other_than_the_pinned_one_fails_the_child_without_retry(
    s3: Any, model_uri: str, mobilenet_bundle: Path
) -> None:
    keys = put_images(s3, {"input/a.jpg": photo_jpegs(1)[0]})
    (manifest,) = write_manifests(s3, keys, images_per_child=10)
    deployed = json.loads((mobilenet_bundle / "model.json").read_text())["sha256"]
    assert run_worker(manifest, model_uri, "--model-sha256", "b" * 64) == EXIT_CONFIG
    assert read_outputs(s3) == {}
    assert run_worker(manifest, model_uri, "--model-sha256", deployed) == EXIT_OK
    assert len(read_outputs(s3)) == 1


def test_ref_placeholder_is_a_usage_error(model_uri: str) -> None:
    with pytest.raises(SystemExit) as info:
        run_worker("Ref::manifest", model_uri)
    assert info.value.code == 2


def test_batch_status_aggregates_child_summaries(
    s3: Any, model_uri: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from inferstack.cli import main as cli_main  # noqa: PLC0415

    keys = put_images(s3, {f"input/s/{i}.jpg": body for i, body in enumerate(photo_jpegs(3))})
    (manifest,) = write_manifests(s3, keys, images_per_child=1)
    monkeypatch.setenv("AWS_BATCH_JOB_ID", "job-s")
    for index in (0, 2):  # child 1 has not run (yet)
        assert run_worker(manifest, model_uri, index=index) == EXIT_OK
    capsys.readouterr()
    assert "Contents" not in s3.list_objects_v2(
        Bucket=DATA_BUCKET, Prefix="output/_summaries/job-s."
    )

    assert cli_main(["batch", "status", "--job-id", "job-s", "--bucket", DATA_BUCKET]) == 1
    partial = json.loads(capsys.readouterr().out)
    assert (partial["children"], partial["children_done"], partial["missing_indexes"]) == (
        3,
        2,
        [1],
    )
    assert partial["complete"] is False

    assert run_worker(manifest, model_uri, index=1) == EXIT_OK
    capsys.readouterr()
    assert cli_main(["batch", "status", "--job-id", "job-s", "--bucket", DATA_BUCKET]) == 0
    done = json.loads(capsys.readouterr().out)
    assert (done["complete"], done["ok"], done["images"]) == (True, 3, 3)
    # The last child wrote the job summary itself.
    written = s3.get_object(Bucket=DATA_BUCKET, Key="output/_summaries/job-s.json")["Body"].read()
    assert json.loads(written)["ok"] == 3


def test_io_threads_run_at_a_lower_priority(monkeypatch: pytest.MonkeyPatch) -> None:
    """The nice value lands on the calling thread only (Linux priorities are per thread)."""
    import os  # noqa: PLC0415
    import threading  # noqa: PLC0415

    from inferstack.batch.worker import lower_thread_priority  # noqa: PLC0415
    from inferstack_worker.main import parse_args  # noqa: PLC0415

    def nice_of(tid: int) -> int:
        return os.getpriority(os.PRIO_PROCESS, tid)

    base = nice_of(threading.get_native_id())
    seen: dict[str, int] = {}

    def io_thread() -> None:
        lower_thread_priority(5)
        seen["io"] = nice_of(threading.get_native_id())

    thread = threading.Thread(target=io_thread)
    thread.start()
    thread.join()
    assert seen["io"] == min(19, base + 5)
    assert nice_of(threading.get_native_id()) == base  # the caller's own priority is untouched

    argv = ["--manifest", "s3://b/m.json", "--model-uri", "s3://b/model/"]
    assert parse_args(argv).io_nice == 5
    monkeypatch.setenv("WORKER_IO_NICE", "0")
    assert parse_args(argv).io_nice == 0
    with pytest.raises(SystemExit):
        parse_args([*argv, "--io-nice", "25"])
