"""Per-child and per-job summaries.

Every array child writes ``output/_summaries/<job id>/<index>.json``. After writing its own,
a child lists that folder: if every child of the manifest has written one, it writes the
job summary ``output/_summaries/<job id>.json``. S3 listings are strongly consistent, so the
child that finishes last always sees all of them (two children finishing together may both
write it, with the same content). A child whose retries are exhausted never writes its
summary, so no job summary appears; ``inferstack batch status --job-id`` aggregates whatever
children have written, says how many are missing and, from AWS Batch and the manifest, shows
per child its attempts and exit reasons and lists the keys of missing children that have
neither an output nor an error record.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from collections.abc import Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from inferstack.batch.naming import (
    job_summary_key,
    output_key,
    parent_job_id,
    summaries_prefix,
)

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
    failed_children = sorted(i for i, c in by_index.items() if c.get("worker_crash_keys"))
    return {
        "job_id": parent_job_id(job_id),
        "children": expected,
        "children_done": len(by_index),
        "complete": len(by_index) == expected,
        "missing_indexes": sorted(set(range(expected)) - set(by_index))[:100],
        **totals,
        # Images with a record (an output or an error record) after this job: classified now,
        # error records written now, or current outputs found and skipped.
        "with_record": totals["ok"] + totals["failed"] + totals["skipped"],
        "errors": dict(sorted(errors.items())),
        "children_with_worker_crash": failed_children[:100],
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


def child_details(children: Iterable[Mapping[str, Any]]) -> dict[int, dict[str, Any]]:
    """Per child, from its summary: the attempt that finished, images done, errors by code."""
    out: dict[int, dict[str, Any]] = {}
    for child in children:
        out[int(child["array_index"])] = {
            "summary": True,
            "finished_attempt": child.get("attempt"),
            "images": int(child.get("images", 0)),
            "done": int(child.get("ok", 0)) + int(child.get("failed", 0)),
            "skipped": int(child.get("skipped", 0)),
            "errors": dict(child.get("errors", {})),
            "worker_crash_keys": list(child.get("worker_crash_keys", [])),
        }
    return out


def batch_children(batch: Any, job_id: str) -> dict[str, Any]:
    """From AWS Batch: the job's status, manifest, size, and per child its attempts with
    their exit codes and reasons (an OOM kill reads ``OutOfMemoryError: ...``, exit 137)."""
    parent_id = parent_job_id(job_id)
    jobs = batch.describe_jobs(jobs=[parent_id]).get("jobs", [])
    if not jobs:
        return {}
    parent = jobs[0]
    size = int((parent.get("arrayProperties") or {}).get("size") or 0)
    ids = [f"{parent_id}:{i}" for i in range(size)] if size else [parent_id]
    children: dict[int, dict[str, Any]] = {}
    for start in range(0, len(ids), 100):  # DescribeJobs takes at most 100 ids
        for job in batch.describe_jobs(jobs=ids[start : start + 100]).get("jobs", []):
            index = int(job["jobId"].rsplit(":", 1)[1]) if size else 0
            children[index] = {
                "status": job.get("status"),
                "attempts": len(job.get("attempts", [])),
                "exits": [
                    {
                        "exit_code": (a.get("container") or {}).get("exitCode"),
                        "reason": a.get("statusReason") or (a.get("container") or {}).get("reason"),
                    }
                    for a in job.get("attempts", [])
                ],
            }
    return {
        "status": parent.get("status"),
        "status_reason": parent.get("statusReason"),
        "manifest": (parent.get("parameters") or {}).get("manifest"),
        "size": size or 1,
        "children": children,
    }


def keys_without_result(
    s3: Any,
    manifest_uri: str,
    indexes: Iterable[int],
    output_bucket: str,
    output_prefix: str,
) -> list[str]:
    """Input keys of the given children that have no output object (no result, no error)."""
    from inferstack.batch.manifest import Manifest, parse_shard  # noqa: PLC0415
    from inferstack.s3 import parse_s3_uri  # noqa: PLC0415

    location = parse_s3_uri(manifest_uri)
    body = s3.get_object(Bucket=location.bucket, Key=location.key)["Body"].read()
    manifest = Manifest.from_json(body)
    bucket = output_bucket or manifest.bucket
    missing: list[str] = []
    for index in sorted(indexes):
        if not 0 <= index < manifest.children:
            continue
        shard = manifest.shards[index]
        data = s3.get_object(Bucket=location.bucket, Key=shard.key)["Body"].read()
        wanted = {
            output_key(i.key, manifest.input_prefix, output_prefix): i.key
            for i in parse_shard(data, shard)
        }
        found = _existing(s3, bucket, sorted(wanted))
        missing.extend(key for out, key in wanted.items() if out not in found)
    return sorted(missing)


def _existing(s3: Any, bucket: str, keys: list[str]) -> set[str]:
    if not keys:
        return set()
    low, high = keys[0], keys[-1]
    prefix = os.path.commonprefix([low, high])  # noqa: RUF071 (S3 prefixes are not paths)
    found: set[str] = set()
    pages = s3.get_paginator("list_objects_v2").paginate(
        Bucket=bucket, Prefix=prefix, StartAfter=low[:-1]
    )
    for page in pages:
        for obj in page.get("Contents", []):
            if obj["Key"] > high:
                return found
            found.add(obj["Key"])
    return found


def incident_status(
    s3: Any,
    bucket: str,
    output_prefix: str,
    job_id: str,
    expected: int | None,
    *,
    batch: Any = None,
    max_keys: int = 1000,
) -> dict[str, Any]:
    """``job_status`` plus what a user needs after an incident: per child its attempts, exit
    reasons (from Batch, when ``batch`` is given), images done and error records by code,
    and the keys of unfinished children that have no record."""
    children = read_child_summaries(
        s3, bucket, list_child_summary_keys(s3, bucket, output_prefix, job_id)
    )
    from_batch = batch_children(batch, job_id) if batch is not None else {}
    if expected is None:
        expected = int(from_batch.get("size") or 0) or max(
            (int(c.get("children", 0)) for c in children), default=0
        )
    status = aggregate(job_id, children, expected)
    details = child_details(children)
    per_child = []
    for index in range(expected):
        entry = {"index": index, **details.get(index, {"summary": False})}
        entry.update(from_batch.get("children", {}).get(index, {}))
        per_child.append(entry)
    status["per_child"] = per_child
    if from_batch:
        status["batch_status"] = from_batch.get("status")
        status["batch_status_reason"] = from_batch.get("status_reason")
    manifest_uri = status.get("manifest") or from_batch.get("manifest")
    if not status["complete"] and manifest_uri:
        missing = keys_without_result(
            s3, manifest_uri, set(range(expected)) - set(details), bucket, output_prefix
        )
        status["keys_without_result_count"] = len(missing)
        status["keys_without_result"] = missing[:max_keys]
        status["manifest"] = manifest_uri
    return status
