"""Model bundles: folder and S3 loading, cache, integrity, model.json validation."""

from __future__ import annotations

import copy
import hashlib
import json
from pathlib import Path
from typing import Any

import boto3
import pytest
from conftest import base_metadata, write_raw_bundle
from inferstack.bundle import (
    cache_dir_for,
    display_label,
    load_bundle,
    parse_metadata,
    read_labels,
    write_bundle,
)
from inferstack.errors import BundleError, BundleIntegrityError, ModelUnavailable
from inferstack.s3 import parse_s3_uri
from moto import mock_aws

BUCKET = "models"
PREFIX = "resnet/v1/"


# ----------------------------------------------------------------------------- folder


def test_load_from_folder(tmp_path: Path, fake_bundle_files: dict[str, Any]) -> None:
    path = write_raw_bundle(tmp_path / "b", fake_bundle_files)
    bundle = load_bundle(path)
    meta = json.loads(fake_bundle_files["model.json"])
    assert bundle.path == path
    assert bundle.model_path == path / "model.tflite"
    assert bundle.sha256 == meta["sha256"]
    assert (bundle.name, bundle.version) == ("test-model", "1")
    assert bundle.labels == ("background", "first, 1st", "second")
    assert bundle.metadata.input.height == 224
    assert bundle.metadata.input.normalization.type == "raw"
    assert bundle.metadata.output.label_offset == 1
    assert bundle.metadata.to_dict() == meta


def test_folder_sha256_mismatch_is_refused(
    tmp_path: Path, fake_bundle_files: dict[str, Any]
) -> None:
    files = dict(fake_bundle_files, **{"model.tflite": fake_bundle_files["model.tflite"] + b"x"})
    path = write_raw_bundle(tmp_path / "b", files)
    with pytest.raises(BundleIntegrityError) as info:
        load_bundle(path)
    expected = json.loads(fake_bundle_files["model.json"])["sha256"]
    assert expected in info.value.message
    assert info.value.http_status == 503
    assert info.value.code == "bundle_integrity"


def test_missing_folder(tmp_path: Path) -> None:
    with pytest.raises(ModelUnavailable, match="not found"):
        load_bundle(tmp_path / "nope")


@pytest.mark.parametrize("missing", ["model.json", "model.tflite", "labels.txt"])
def test_missing_file_is_named(
    tmp_path: Path, fake_bundle_files: dict[str, Any], missing: str
) -> None:
    files = {k: v for k, v in fake_bundle_files.items() if k != missing}
    with pytest.raises(BundleError, match=missing.replace(".", r"\.")):
        load_bundle(write_raw_bundle(tmp_path / "b", files))


def _without(data: dict[str, Any], dotted: str) -> dict[str, Any]:
    data = copy.deepcopy(data)
    *parents, leaf = dotted.split(".")
    target = data
    for key in parents:
        target = target[key]
    del target[leaf]
    return data


def _with(data: dict[str, Any], dotted: str, value: Any) -> dict[str, Any]:
    data = copy.deepcopy(data)
    *parents, leaf = dotted.split(".")
    target = data
    for key in parents:
        target = target[key]
    target[leaf] = value
    return data


VALID = dict(base_metadata(), sha256="ab" * 32)


@pytest.mark.parametrize(
    ("document", "field"),
    [
        (_without(VALID, "name"), "name"),
        (_without(VALID, "sha256"), "sha256"),
        (_without(VALID, "input"), "input"),
        (_without(VALID, "input.height"), "input.height"),
        (_without(VALID, "input.normalization"), "input.normalization"),
        (_without(VALID, "output.activation"), "output.activation"),
        (_without(VALID, "output.label_offset"), "output.label_offset"),
        (_with(VALID, "schema_version", 2), "schema_version"),
        (_with(VALID, "sha256", "xyz"), "sha256"),
        (_with(VALID, "input.height", 0), "input.height"),
        (_with(VALID, "input.width", "224"), "input.width"),
        (_with(VALID, "input.channel_order", "RBG"), "input.channel_order"),
        (_with(VALID, "input.resize", "lanczos"), "input.resize"),
        (_with(VALID, "input.crop_fraction", 0), "input.crop_fraction"),
        (_with(VALID, "input.crop_fraction", 1.5), "input.crop_fraction"),
        (_with(VALID, "input.normalization", {"type": "zscore"}), "input.normalization.type"),
        (
            _with(VALID, "input.normalization", {"type": "mean_std", "mean": [1, 2, 3]}),
            "input.normalization.std",
        ),
        (
            _with(
                VALID, "input.normalization", {"type": "mean_std", "mean": [1, 2], "std": [1] * 3}
            ),
            "normalization.mean",
        ),
        (
            _with(
                VALID,
                "input.normalization",
                {"type": "mean_std", "mean": [0] * 3, "std": [1, 0, 1]},
            ),
            "normalization.std",
        ),
        (_with(VALID, "output.activation", "sigmoid"), "output.activation"),
        (_with(VALID, "output.label_offset", 2), "output.label_offset"),
        (_with(VALID, "output.label_offset", True), "output.label_offset"),
        (_with(VALID, "predictions_meaningful", "yes"), "predictions_meaningful"),
        ([1, 2, 3], "JSON object"),
    ],
)
def test_invalid_metadata_names_the_field(document: Any, field: str) -> None:
    with pytest.raises(BundleError) as info:
        parse_metadata(document)
    assert field in info.value.message


def test_metadata_optional_fields_and_version_number() -> None:
    doc = _with(_without(VALID, "source"), "version", 3)
    doc = _without(doc, "predictions_meaningful")
    meta = parse_metadata(doc)
    assert meta.version == "3"
    assert meta.predictions_meaningful is True
    assert dict(meta.source) == {}


def test_invalid_json_file(tmp_path: Path, fake_bundle_files: dict[str, Any]) -> None:
    files = dict(fake_bundle_files, **{"model.json": "{not json"})
    with pytest.raises(BundleError, match=r"model\.json"):
        load_bundle(write_raw_bundle(tmp_path / "b", files))


def test_labels() -> None:
    assert read_labels("a, b\nc\n\n") == ("a, b", "c")
    assert display_label("tench, Tinca tinca") == "tench"
    with pytest.raises(BundleError):
        read_labels("\n\n")


def test_write_bundle_round_trip(tmp_path: Path) -> None:
    tflite = b"TFL3 not a real model"
    bundle = write_bundle(
        tmp_path / "out", tflite=tflite, labels=["a", "b"], metadata=base_metadata()
    )
    assert bundle.sha256 == hashlib.sha256(tflite).hexdigest()
    assert (tmp_path / "out" / "labels.txt").read_text() == "a\nb\n"
    assert load_bundle(tmp_path / "out").metadata == bundle.metadata
    with pytest.raises(BundleError, match="not empty"):
        write_bundle(tmp_path / "out", tflite=tflite, labels=["a"], metadata=base_metadata())
    again = write_bundle(
        tmp_path / "out", tflite=b"other", labels=["a"], metadata=base_metadata(), overwrite=True
    )
    assert again.labels == ("a",)
    # A failed validation writes nothing.
    with pytest.raises(BundleError):
        write_bundle(tmp_path / "bad", tflite=tflite, labels=["a"], metadata={"name": "x"})
    assert not (tmp_path / "bad").exists()


def test_parse_s3_uri() -> None:
    loc = parse_s3_uri("s3://bucket/a/b/")
    assert (loc.bucket, loc.key) == ("bucket", "a/b/")
    assert loc.child("model.json").key == "a/b/model.json"
    assert parse_s3_uri("s3://bucket").child("x").key == "x"
    with pytest.raises(ValueError, match="bucket"):
        parse_s3_uri("s3:///key")
    with pytest.raises(ValueError, match="not an s3"):
        parse_s3_uri("/local/path")


# ----------------------------------------------------------------------------- S3 (moto)


@pytest.fixture
def s3(monkeypatch: pytest.MonkeyPatch) -> Any:
    """An in-process moto S3 (no network) with a bucket; yields a client."""
    for var in ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_PROFILE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    with mock_aws():
        client = boto3.client("s3", region_name="us-east-1")
        client.create_bucket(Bucket=BUCKET)
        yield client


def _upload(client: Any, files: dict[str, Any], prefix: str = PREFIX) -> None:
    for name, content in files.items():
        body = content.encode() if isinstance(content, str) else content
        client.put_object(Bucket=BUCKET, Key=prefix + name, Body=body)


def _count_get_object(client: Any) -> list[str]:
    """Record the key of every GetObject the client sends (a botocore event hook)."""
    keys: list[str] = []
    client.meta.events.register(
        "before-call.s3.GetObject", lambda params, **_: keys.append(params["url_path"])
    )
    return keys


def test_s3_load_downloads_once_then_reuses_cache(
    s3: Any, tmp_path: Path, fake_bundle_files: dict[str, Any]
) -> None:
    _upload(s3, fake_bundle_files)
    gets = _count_get_object(s3)
    uri = f"s3://{BUCKET}/{PREFIX}"

    first = load_bundle(uri, cache_dir=tmp_path, s3_client=s3)
    assert sorted(Path(k).name for k in gets) == ["labels.txt", "model.json", "model.tflite"]
    assert first.path.is_relative_to(cache_dir_for(uri, tmp_path))
    assert first.model_path.read_bytes() == fake_bundle_files["model.tflite"]
    assert first.labels == ("background", "first, 1st", "second")

    gets.clear()
    second = load_bundle(uri, cache_dir=tmp_path, s3_client=s3)
    # Only the small model.json is read again, to notice a new model under the prefix.
    assert [Path(k).name for k in gets] == ["model.json"]
    assert second.path == first.path
    assert second.metadata == first.metadata
    # No staging folders are left behind.
    assert [p.name for p in cache_dir_for(uri, tmp_path).iterdir()] == [first.sha256]


def test_s3_cache_dir_defaults_to_env(
    s3: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fake_bundle_files: dict[str, Any]
) -> None:
    _upload(s3, fake_bundle_files)
    monkeypatch.setenv("MODEL_CACHE_DIR", str(tmp_path / "env-cache"))
    bundle = load_bundle(f"s3://{BUCKET}/{PREFIX.rstrip('/')}", s3_client=s3)
    assert bundle.path.is_relative_to(tmp_path / "env-cache")


def test_s3_sha256_mismatch_is_refused_and_not_cached(
    s3: Any, tmp_path: Path, fake_bundle_files: dict[str, Any]
) -> None:
    tampered = dict(fake_bundle_files, **{"model.tflite": b"TFL3 something else"})
    _upload(s3, tampered)
    uri = f"s3://{BUCKET}/{PREFIX}"
    with pytest.raises(BundleIntegrityError, match="sha256"):
        load_bundle(uri, cache_dir=tmp_path, s3_client=s3)
    cache = cache_dir_for(uri, tmp_path)
    assert not cache.exists() or list(cache.iterdir()) == []

    # Once the right file is uploaded, the same URI loads.
    _upload(s3, fake_bundle_files)
    assert (
        load_bundle(uri, cache_dir=tmp_path, s3_client=s3).sha256
        == json.loads(fake_bundle_files["model.json"])["sha256"]
    )


def test_s3_damaged_cache_is_downloaded_again(
    s3: Any, tmp_path: Path, fake_bundle_files: dict[str, Any]
) -> None:
    _upload(s3, fake_bundle_files)
    uri = f"s3://{BUCKET}/{PREFIX}"
    bundle = load_bundle(uri, cache_dir=tmp_path, s3_client=s3)
    bundle.model_path.write_bytes(b"changed on disk")
    gets = _count_get_object(s3)
    again = load_bundle(uri, cache_dir=tmp_path, s3_client=s3)
    assert sorted(Path(k).name for k in gets) == ["labels.txt", "model.json", "model.tflite"]
    assert again.model_path.read_bytes() == fake_bundle_files["model.tflite"]


def test_s3_damaged_cache_and_bad_upload_is_refused(
    s3: Any, tmp_path: Path, fake_bundle_files: dict[str, Any]
) -> None:
    _upload(s3, fake_bundle_files)
    uri = f"s3://{BUCKET}/{PREFIX}"
    load_bundle(uri, cache_dir=tmp_path, s3_client=s3).model_path.write_bytes(b"damaged")
    _upload(s3, {"model.tflite": b"TFL3 replaced without updating model.json"})
    with pytest.raises(BundleIntegrityError):
        load_bundle(uri, cache_dir=tmp_path, s3_client=s3)


def test_s3_unwritable_cache_is_model_unavailable(
    s3: Any, tmp_path: Path, fake_bundle_files: dict[str, Any]
) -> None:
    _upload(s3, fake_bundle_files)
    blocker = tmp_path / "file"
    blocker.write_text("a file where the cache folder should be")
    with pytest.raises(ModelUnavailable, match="model cache"):
        load_bundle(f"s3://{BUCKET}/{PREFIX}", cache_dir=blocker, s3_client=s3)


def test_s3_new_model_under_same_prefix_is_downloaded(
    s3: Any, tmp_path: Path, fake_bundle_files: dict[str, Any]
) -> None:
    uri = f"s3://{BUCKET}/{PREFIX}"
    _upload(s3, fake_bundle_files)
    old = load_bundle(uri, cache_dir=tmp_path, s3_client=s3)

    tflite = b"TFL3 version two"
    meta = json.loads(fake_bundle_files["model.json"])
    meta.update(version="2", sha256=hashlib.sha256(tflite).hexdigest())
    _upload(s3, {"model.tflite": tflite, "model.json": json.dumps(meta)})
    new = load_bundle(uri, cache_dir=tmp_path, s3_client=s3)
    assert new.version == "2"
    assert new.model_path.read_bytes() == tflite
    assert new.path != old.path
    assert not old.path.exists()  # the superseded copy is removed from the cache


@pytest.mark.parametrize(
    "uri", [f"s3://{BUCKET}/missing/", "s3://no-such-bucket/x/", f"s3://{BUCKET}/resnet/"]
)
def test_s3_missing_bundle(
    s3: Any, tmp_path: Path, fake_bundle_files: dict[str, Any], uri: str
) -> None:
    _upload(s3, fake_bundle_files)
    with pytest.raises(ModelUnavailable, match=r"model\.json"):
        load_bundle(uri, cache_dir=tmp_path, s3_client=s3)


def test_s3_missing_tflite(s3: Any, tmp_path: Path, fake_bundle_files: dict[str, Any]) -> None:
    _upload(s3, {k: v for k, v in fake_bundle_files.items() if k != "model.tflite"})
    with pytest.raises(ModelUnavailable, match=r"model\.tflite"):
        load_bundle(f"s3://{BUCKET}/{PREFIX}", cache_dir=tmp_path, s3_client=s3)
    assert list(cache_dir_for(f"s3://{BUCKET}/{PREFIX}", tmp_path).iterdir()) == []


def test_s3_default_client_is_used(
    s3: Any, tmp_path: Path, fake_bundle_files: dict[str, Any]
) -> None:
    """Without an explicit client, load_bundle builds one (inferstack.s3) and it works."""
    _upload(s3, fake_bundle_files)
    bundle = load_bundle(f"s3://{BUCKET}/{PREFIX}", cache_dir=tmp_path)
    assert bundle.model_path.read_bytes() == fake_bundle_files["model.tflite"]


def test_s3_client_honours_endpoint_url(monkeypatch: pytest.MonkeyPatch) -> None:
    from inferstack.s3 import make_client, s3_client  # noqa: PLC0415

    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-west-1")
    monkeypatch.delenv("AWS_ENDPOINT_URL_S3", raising=False)
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:5999")
    client = s3_client()
    assert client.meta.endpoint_url == "http://127.0.0.1:5999"
    assert client.meta.config.retries == {"mode": "standard", "total_max_attempts": 6}
    # A service-specific endpoint wins over the general one.
    monkeypatch.setenv("AWS_ENDPOINT_URL_SQS", "http://127.0.0.1:6000")
    assert make_client("sqs").meta.endpoint_url == "http://127.0.0.1:6000"
    monkeypatch.delenv("AWS_ENDPOINT_URL")
    assert s3_client().meta.endpoint_url.startswith("https://")


# ------------------------------------------------------------- the checksum a deployment pins


def test_s3_pinned_sha256_refuses_a_swapped_bundle_before_downloading_it(
    s3: Any, tmp_path: Path, fake_bundle_files: dict[str, Any]
) -> None:
    """model.json and model.tflite replaced together agree with each other: only the checksum
    the deployment pinned tells the swap apart, and the swapped model is never downloaded."""
    deployed = json.loads(fake_bundle_files["model.json"])["sha256"]
    other = b"TFL3 another model"
    swapped = dict(
        fake_bundle_files,
        **{
            "model.tflite": other,
            "model.json": json.dumps(
                dict(
                    json.loads(fake_bundle_files["model.json"]),
                    sha256=hashlib.sha256(other).hexdigest(),
                )
            ),
        },
    )
    _upload(s3, swapped)
    uri = f"s3://{BUCKET}/{PREFIX}"
    assert (
        load_bundle(uri, cache_dir=tmp_path / "unpinned", s3_client=s3).model_path.read_bytes()
        == other
    )

    gets = _count_get_object(s3)
    with pytest.raises(BundleIntegrityError, match=f"expects {deployed}"):
        load_bundle(uri, cache_dir=tmp_path / "pinned", s3_client=s3, expected_sha256=deployed)
    assert [Path(k).name for k in gets] == ["model.json"]

    _upload(s3, fake_bundle_files)
    pinned = load_bundle(
        uri, cache_dir=tmp_path / "pinned", s3_client=s3, expected_sha256=deployed.upper()
    )
    assert pinned.sha256 == deployed


def test_folder_pinned_sha256(tmp_path: Path, fake_bundle_files: dict[str, Any]) -> None:
    for name, content in fake_bundle_files.items():
        body = content.encode() if isinstance(content, str) else content
        (tmp_path / name).write_bytes(body)
    declared = json.loads(fake_bundle_files["model.json"])["sha256"]
    assert load_bundle(tmp_path, expected_sha256=declared).sha256 == declared
    assert load_bundle(tmp_path, expected_sha256="").sha256 == declared  # empty: no pin
    with pytest.raises(BundleIntegrityError, match="expects"):
        load_bundle(tmp_path, expected_sha256="0" * 64)
    with pytest.raises(BundleError, match="64 hex digits"):
        load_bundle(tmp_path, expected_sha256="not-a-sha")
