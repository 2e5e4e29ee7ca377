"""Manifest identity (what a redelivery maps to), shard integrity, naming."""

from __future__ import annotations

import pytest
from inferstack.batch import naming
from inferstack.batch.manifest import (
    Item,
    Manifest,
    ManifestError,
    build_manifests,
    make_item,
    parse_shard,
    unique_sorted,
)


def manifest_id(items: list[Item], *, salt: str = "", bucket: str = "data", ipc: int = 2) -> str:
    manifests = list(
        build_manifests(
            unique_sorted(items),
            bucket=bucket,
            input_prefix="input/",
            images_per_child=ipc,
            max_array_size=100,
            store_shard=lambda body, sha: sha,
            salt=salt,
        )
    )
    assert len(manifests) == 1
    return manifests[0].id


A = make_item("input/a.jpg", '"aaa"')
B = make_item("input/b.jpg", "bbb")


def test_redelivery_maps_to_the_same_manifest() -> None:
    # Same images in another order, duplicated, with the quoted ETag S3 APIs return.
    first = manifest_id([A, B])
    assert manifest_id([B, A, A]) == first
    assert manifest_id([make_item("input/a.jpg", "aaa"), B]) == first
    assert len(first) == 64


def test_new_upload_of_the_same_key_is_new_work() -> None:
    reuploaded = make_item("input/a.jpg", "ccc")
    assert manifest_id([reuploaded, B]) != manifest_id([A, B])
    # Both uploads in one batch are both kept.
    assert len(unique_sorted([A, reuploaded, B])) == 3


def test_identity_ignores_sharding_but_not_bucket_or_salt() -> None:
    assert manifest_id([A, B], ipc=1) == manifest_id([A, B], ipc=5)
    assert manifest_id([A, B], bucket="other") != manifest_id([A, B])
    assert manifest_id([A, B], salt="rerun-1") != manifest_id([A, B])


def test_keys_with_newlines_and_unicode_stay_one_line() -> None:
    odd = make_item("input/we\nird é+%.jpg", "e")
    assert odd.line().count(b"\n") == 1
    bodies: dict[str, bytes] = {}

    def store(body: bytes, sha: str) -> str:
        bodies[sha] = body
        return sha

    (manifest,) = build_manifests(
        [odd],
        bucket="b",
        input_prefix="input/",
        images_per_child=5,
        max_array_size=1,
        store_shard=store,
    )
    shard = manifest.shards[0]
    assert parse_shard(bodies[shard.key], shard) == [odd]


def test_shard_integrity_is_checked() -> None:
    bodies: dict[str, bytes] = {}

    def store(body: bytes, sha: str) -> str:
        bodies[sha] = body
        return sha

    (manifest,) = build_manifests(
        [A, B],
        bucket="b",
        input_prefix="input/",
        images_per_child=5,
        max_array_size=1,
        store_shard=store,
    )
    shard = manifest.shards[0]
    with pytest.raises(ManifestError, match="sha256"):
        parse_shard(bodies[shard.key] + b"{}\n", shard)


def test_manifest_json_round_trip_and_validation() -> None:
    (manifest,) = build_manifests(
        [A, B],
        bucket="b",
        input_prefix="input/",
        images_per_child=1,
        max_array_size=5,
        store_shard=lambda body, sha: f"manifests/shards/{sha}.jsonl",
        source="test",
    )
    again = Manifest.from_json(manifest.to_json())
    assert again == manifest
    assert again.children == 2
    with pytest.raises(ManifestError):
        Manifest.from_json(b'{"schema_version": 2}')
    with pytest.raises(ManifestError):
        Manifest.from_json(b"not json")


def test_naming() -> None:
    manifest = "0123456789abcdef" * 4
    assert naming.job_name(manifest) == "inferstack-0123456789abcdef"
    assert naming.manifest_key("manifests", manifest) == f"manifests/{manifest}.json"
    assert naming.marker_key("manifests/", manifest) == f"manifests/{manifest}.submitted"
    assert naming.output_key("input/x/a.jpg", "input/", "output/") == "output/x/a.jpg.json"
    assert naming.output_key("photos/a.jpg", "input/", "output") == "output/photos/a.jpg.json"
    assert naming.parent_job_id("abc-123:7") == "abc-123"
    assert naming.child_summary_key("output/", "abc:3", 3) == "output/_summaries/abc/3.json"
    assert naming.job_summary_key("output/", "abc:3") == "output/_summaries/abc.json"
    assert naming.normalize_etag('"x"') == "x"
