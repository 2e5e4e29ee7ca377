"""Per-child and per-job summaries.

Every array child writes ``output/_summaries/<job id>/<index>.json``. After writing its own,
a child lists that folder: if every child of the manifest has written one, it writes the
job summary ``output/_summaries/<job id>.json``. S3 listings are strongly consistent, so the
child that finishes last always sees all of them (two children finishing together may both
write it, with the same content). A child whose retries are exhausted never writes its
summary, so no job summary appears; ``inferstack batch status --job-id`` aggregates whatever
children have written and says how many are missing.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from inferstack.batch.naming import job_summary_key, parent_job_id, summaries_prefix

COUNTERS = ("images", "ok", "skipped", "failed")


def aggregate(job_id: str, children: Iterable[Mapping[str, Any]], expected: int) -> dict[str, Any]:
    """The job summary from child summaries (the latest attempt of each index)."""
    by_index = {int(c["array_index"]): c for c in children}
    totals = dict.fromkeys(COUNTERS, 0)
    errors: Counter[str] = Counter()
    seconds = []
    for child in by_index.values():
        for name in COUNTERS:
            totals[name] += int(child.get(name, 0))
        errors.update({str(k): int(v) for k, v in child.get("errors", {}).items()})
        seconds.append(float(child.get("seconds", 0.0)))
    processed = totals["ok"] + totals["failed"]
    busy = sum(seconds)
    return {
        "job_id": parent_job_id(job_id),
        "children": expected,
        "children_done": len(by_index),
        "complete": len(by_index) == expected,
        "missing_indexes": sorted(set(range(expected)) - set(by_index))[:100],
        **totals,
        "errors": dict(sorted(errors.items())),
        # Per-child throughput averaged over the children's busy time; children run in
        # parallel, so the job's wall time is not known here.
        "images_per_s_per_child": round(processed / busy, 3) if busy else 0.0,
        "max_child_seconds": round(max(seconds), 3) if seconds else 0.0,
        "model": next((c.get("model") for c in by_index.values() if c.get("model")), None),
        "manifest": next((c.get("manifest") for c in by_index.values()), None),
    }


def list_child_summary_keys(s3: Any, bucket: str, output_prefix: str, job_id: str) -> list[str]:
    prefix = summaries_prefix(output_prefix, job_id)
    keys = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        keys.extend(
            o["Key"]
            for o in page.get("Contents", [])
            if o["Key"].endswith(".json") and "/" not in o["Key"][len(prefix) :]
        )
    return keys


def read_child_summaries(s3: Any, bucket: str, keys: list[str]) -> list[dict[str, Any]]:
    def read(key: str) -> dict[str, Any]:
        return json.loads(s3.get_object(Bucket=bucket, Key=key)["Body"].read())

    with ThreadPoolExecutor(max_workers=8) as pool:
        return list(pool.map(read, keys))


def write_json(s3: Any, bucket: str, key: str, doc: Mapping[str, Any]) -> None:
    s3.put_object(
        Bucket=bucket,
        Key=key,
        Body=(json.dumps(doc, indent=1, sort_keys=True) + "\n").encode(),
        ContentType="application/json",
    )


def job_status(
    s3: Any, bucket: str, output_prefix: str, job_id: str, expected: int | None
) -> dict[str, Any]:
    """Aggregate the child summaries written so far. ``expected``: children of the job
    (None: take it from the children's summaries)."""
    children = read_child_summaries(
        s3, bucket, list_child_summary_keys(s3, bucket, output_prefix, job_id)
    )
    if expected is None:
        expected = max((int(c.get("children", 0)) for c in children), default=0)
    return aggregate(job_id, children, expected)


def maybe_write_job_summary(
    s3: Any, bucket: str, output_prefix: str, job_id: str, expected: int
) -> dict[str, Any] | None:
    """Write the job summary if every child has written its own; return it, else None."""
    keys = list_child_summary_keys(s3, bucket, output_prefix, job_id)
    if len(keys) < expected:
        return None
    summary = aggregate(job_id, read_child_summaries(s3, bucket, keys), expected)
    if not summary["complete"]:
        return None
    write_json(s3, bucket, job_summary_key(output_prefix, job_id), summary)
    return summary
