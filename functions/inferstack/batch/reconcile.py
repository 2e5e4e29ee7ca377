"""``inferstack batch reconcile``: which inputs under a prefix have no current output.

An output is current when its record (``output/<key relative to input/>.json``) names the
input's current ETag and the expected model sha256: the worker's own "already done" rule.
Error records (an ``error`` key) follow the same rule: an image that was tried by this model
at this ETag and could not be classified is accounted for, not retried.

Cost: one listing of the inputs, one listing of the outputs under the same relative prefix
(so a missing output costs no request), and one GetObject per existing output.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from itertools import islice
from typing import Any

from inferstack.batch.manifest import Item
from inferstack.batch.naming import normalize_etag, normalize_prefix, output_key, relative_key

CURRENT = "current"
MISSING = "missing"
STALE_INPUT = "stale_input"
OTHER_MODEL = "other_model"
UNREADABLE_RECORD = "unreadable_record"
CLASSES = (CURRENT, MISSING, STALE_INPUT, OTHER_MODEL, UNREADABLE_RECORD)

_NOT_FOUND = frozenset({"NoSuchKey", "404", "NotFound"})
CHUNK = 1000


def _chunks(items: Iterable[Item], size: int) -> Iterator[list[Item]]:
    iterator = iter(items)
    while chunk := list(islice(iterator, size)):
        yield chunk


def classify_record(body: bytes, item: Item, model_sha256: str) -> str:
    """The class of an existing output record for ``item``.

    A record made from another ETag is ``stale_input`` whatever model made it (the input
    changed: it must be classified again in any case).
    """
    try:
        record = json.loads(body)
        etag = normalize_etag(str(record["input"]["etag"]))
        sha = str(record["model"]["sha256"])
    except (ValueError, KeyError, TypeError):
        return UNREADABLE_RECORD
    if etag != normalize_etag(item.etag):
        return STALE_INPUT
    if sha != model_sha256:
        return OTHER_MODEL
    return CURRENT


def output_listing_prefix(prefix: str, input_prefix: str, output_prefix: str) -> str:
    """The output prefix that mirrors the input ``prefix`` (``input/2026/`` -> ``output/2026/``)."""
    input_prefix = normalize_prefix(input_prefix)
    if input_prefix.startswith(prefix):
        # ``input``, ``inp`` or the bucket root: every output of the input folder may match.
        return normalize_prefix(output_prefix)
    return normalize_prefix(output_prefix) + relative_key(prefix, input_prefix)


def list_keys(s3: Any, bucket: str, prefix: str) -> set[str]:
    keys: set[str] = set()
    paginator = s3.get_paginator("list_objects_v2")
    for page in paginator.paginate(
        Bucket=bucket, Prefix=prefix, PaginationConfig={"PageSize": 1000}
    ):
        keys.update(obj["Key"] for obj in page.get("Contents", []))
    return keys


@dataclass(frozen=True)
class Entry:
    item: Item
    output: str
    status: str

    def to_dict(self) -> dict[str, str]:
        return {
            "key": self.item.key,
            "etag": self.item.etag,
            "output": self.output,
            "class": self.status,
        }


@dataclass
class Report:
    bucket: str
    prefix: str
    output_prefix: str
    model_sha256: str
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(CLASSES, 0))
    not_current: list[Entry] = field(default_factory=list)

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    @property
    def all_current(self) -> bool:
        return not self.not_current

    def add(self, entry: Entry) -> None:
        self.counts[entry.status] += 1
        if entry.status != CURRENT:
            self.not_current.append(entry)

    def items(self) -> list[Item]:
        """The not-current inputs, sorted and unique: what a resubmission needs."""
        return sorted({entry.item for entry in self.not_current})

    def to_dict(self) -> dict[str, Any]:
        return {
            "bucket": self.bucket,
            "prefix": self.prefix,
            "output_prefix": self.output_prefix,
            "model_sha256": self.model_sha256,
            "total": self.total,
            "counts": dict(self.counts),
            "not_current": [entry.to_dict() for entry in self.not_current],
        }


class Reconciler:
    """Classifies inputs against their output records (``workers`` GetObjects at a time)."""

    def __init__(
        self,
        s3: Any,
        bucket: str,
        *,
        model_sha256: str,
        input_prefix: str = "input/",
        output_prefix: str = "output/",
        workers: int = 16,
    ) -> None:
        self.s3 = s3
        self.bucket = bucket
        self.model_sha256 = model_sha256
        self.input_prefix = normalize_prefix(input_prefix)
        self.output_prefix = normalize_prefix(output_prefix)
        self.workers = max(1, workers)

    def read_record(self, key: str) -> bytes | None:
        """The record's bytes, or None when it vanished since the listing."""
        from botocore.exceptions import ClientError  # noqa: PLC0415

        try:
            return bytes(self.s3.get_object(Bucket=self.bucket, Key=key)["Body"].read())
        except ClientError as exc:
            if str(exc.response.get("Error", {}).get("Code")) in _NOT_FOUND:
                return None
            raise

    def classify(self, item: Item, out_key: str, exists: bool) -> Entry:
        body = self.read_record(out_key) if exists else None
        if body is None:
            return Entry(item, out_key, MISSING)
        return Entry(item, out_key, classify_record(body, item, self.model_sha256))

    def run(self, prefix: str, items: Iterable[Item]) -> Report:
        listing = output_listing_prefix(prefix, self.input_prefix, self.output_prefix)
        outputs = list_keys(self.s3, self.bucket, listing)
        report = Report(self.bucket, prefix, self.output_prefix, self.model_sha256)

        with ThreadPoolExecutor(max_workers=self.workers) as pool:
            # In chunks, so a listing of millions of keys never becomes millions of futures.
            for chunk in _chunks(items, CHUNK):
                jobs = []
                for item in chunk:
                    key = output_key(item.key, self.input_prefix, self.output_prefix)
                    jobs.append((item, key, key in outputs))
                for entry in pool.map(lambda job: self.classify(*job), jobs):
                    report.add(entry)
        return report


def render_table(report: Report) -> str:
    """Counts by class, then one ``class  key`` line per input that is not current."""
    lines = [f"{name:<18} {report.counts[name]}" for name in CLASSES]
    lines.append(f"{'total':<18} {report.total}")
    if report.not_current:
        lines.append("")
        lines.append(f"{'CLASS':<18} KEY")
        lines.extend(f"{e.status:<18} {e.item.key}" for e in report.not_current)
    return "\n".join(lines)
