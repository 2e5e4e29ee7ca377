"""Manifests: which images a job classifies, cut into one shard per array child.

A manifest is a small JSON header plus one JSON-lines shard object per array child, so a child
reads only its own shard (a backfill of 5 million keys never makes 10,000 children download a
300 MB file each) and the submitter streams: it never holds more than one shard in memory.

Identity: the manifest id is the sha256 of the bucket, an optional salt and the sorted,
de-duplicated ``(key, etag)`` lines. A redelivered S3 event carries the same key and ETag and
maps to the same id (hence the same job name, see ``submit``); a new upload of a key has a
new ETag and gets a new id. Re-uploading identical bytes keeps the ETag and maps to the same
id on purpose: the worker's "already done" test is the same (input ETag, model sha256), so a
second job would only skip. Sharding parameters are not part of the id: the same images are
the same work however they are cut. Use a salt to deliberately run the same images again
(e.g. after a model update, ``inferstack batch submit --salt``).

Shards are content-addressed (``shards/<sha256>.jsonl``) so they can be written before the
manifest id, which depends on every key, is known.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from inferstack.batch.naming import normalize_etag
from inferstack.batch.sharding import max_images_per_job

SCHEMA_VERSION = 1
_HASH_DOMAIN = b"inferstack-manifest-v1\n"


class ManifestError(Exception):
    """A manifest or shard that is malformed or inconsistent (not a transient fault)."""


@dataclass(frozen=True, order=True)
class Item:
    """One input image: S3 key and ETag (bare, without quotes)."""

    key: str
    etag: str

    def line(self) -> bytes:
        """The shard line: JSON escapes newlines, so one item is always one line."""
        return (
            json.dumps({"key": self.key, "etag": self.etag}, ensure_ascii=False, sort_keys=True)
            + "\n"
        ).encode("utf-8")


def make_item(key: str, etag: str | None) -> Item:
    return Item(key=key, etag=normalize_etag(etag))


def unique_sorted(items: Iterable[Item]) -> list[Item]:
    """De-duplicate (the same event delivered twice) and sort by key.

    The same key with two ETags (two uploads in one batch) keeps both: each upload is work.
    """
    return sorted(set(items))


@dataclass(frozen=True)
class Shard:
    key: str  # object key of the JSON-lines shard
    sha256: str
    count: int

    def to_dict(self) -> dict[str, Any]:
        return {"key": self.key, "sha256": self.sha256, "count": self.count}


@dataclass
class Manifest:
    id: str
    bucket: str
    input_prefix: str
    images_per_child: int
    shards: list[Shard] = field(default_factory=list)
    salt: str = ""
    source: str = ""

    @property
    def count(self) -> int:
        return sum(s.count for s in self.shards)

    @property
    def children(self) -> int:
        return len(self.shards)

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema_version": SCHEMA_VERSION,
            "id": self.id,
            "bucket": self.bucket,
            "input_prefix": self.input_prefix,
            "count": self.count,
            "images_per_child": self.images_per_child,
            "salt": self.salt,
            "source": self.source,
            "shards": [s.to_dict() for s in self.shards],
        }

    def to_json(self) -> bytes:
        return (json.dumps(self.to_dict(), indent=1, sort_keys=True) + "\n").encode()

    @classmethod
    def from_json(cls, data: bytes) -> Manifest:
        try:
            doc = json.loads(data)
            if doc.get("schema_version") != SCHEMA_VERSION:
                raise ManifestError(f"unsupported schema_version {doc.get('schema_version')!r}")
            shards = [
                Shard(key=str(s["key"]), sha256=str(s["sha256"]), count=int(s["count"]))
                for s in doc["shards"]
            ]
            manifest = cls(
                id=str(doc["id"]),
                bucket=str(doc["bucket"]),
                input_prefix=str(doc.get("input_prefix", "")),
                images_per_child=int(doc["images_per_child"]),
                shards=shards,
                salt=str(doc.get("salt", "")),
                source=str(doc.get("source", "")),
            )
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise ManifestError(f"malformed manifest: {exc}") from exc
        if manifest.count != int(doc.get("count", manifest.count)):
            raise ManifestError("manifest count differs from the sum of its shards")
        return manifest


def shard_sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def parse_shard(data: bytes, shard: Shard) -> list[Item]:
    """Items of a shard, checked against the sha256 and count the header records."""
    if shard_sha256(data) != shard.sha256:
        raise ManifestError(f"shard {shard.key} does not match its sha256")
    try:
        items = [
            Item(key=str(d["key"]), etag=str(d["etag"]))
            for d in (json.loads(line) for line in data.decode("utf-8").splitlines() if line)
        ]
    except (ValueError, KeyError, TypeError) as exc:
        raise ManifestError(f"malformed shard {shard.key}: {exc}") from exc
    if len(items) != shard.count:
        raise ManifestError(f"shard {shard.key} has {len(items)} items, header says {shard.count}")
    return items


# A callable that stores a shard body and returns its object key (or only names it: dry run).
ShardStore = Callable[[bytes, str], str]


def build_manifests(
    items: Iterable[Item],
    *,
    bucket: str,
    input_prefix: str,
    images_per_child: int,
    max_array_size: int,
    store_shard: ShardStore,
    salt: str = "",
    source: str = "",
) -> Iterator[Manifest]:
    """Cut sorted, unique items into manifests of at most max_array_size shards, streaming.

    ``items`` must be strictly increasing (``unique_sorted`` or an S3 listing, which is in
    UTF-8 binary order = Python str order). Each shard is handed to ``store_shard(body, sha)``
    as soon as it is full, and each manifest is yielded as soon as it is complete.
    """
    per_job = max_images_per_job(images_per_child, max_array_size)
    hasher: Any = None
    manifest: Manifest | None = None
    buffer: list[bytes] = []
    in_job = 0
    previous: Item | None = None

    def flush_shard() -> None:
        body = b"".join(buffer)
        sha = shard_sha256(body)
        assert manifest is not None
        manifest.shards.append(Shard(key=store_shard(body, sha), sha256=sha, count=len(buffer)))
        buffer.clear()

    def finish() -> Manifest:
        assert manifest is not None
        if buffer:
            flush_shard()
        manifest.id = hasher.hexdigest()
        return manifest

    for item in items:
        if previous is not None and not previous < item:
            raise ValueError(f"items not strictly increasing: {previous} then {item}")
        previous = item
        if manifest is None:
            hasher = hashlib.sha256(_HASH_DOMAIN)
            hasher.update(json.dumps([bucket, salt]).encode() + b"\n")
            manifest = Manifest(
                id="",
                bucket=bucket,
                input_prefix=input_prefix,
                images_per_child=images_per_child,
                salt=salt,
                source=source,
            )
        line = item.line()
        hasher.update(line)
        buffer.append(line)
        in_job += 1
        if len(buffer) == images_per_child:
            flush_shard()
        if in_job == per_job:
            yield finish()
            manifest, in_job = None, 0
    if manifest is not None:
        yield finish()
