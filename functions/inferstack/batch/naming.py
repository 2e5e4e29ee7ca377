"""Deterministic names: job names, manifest, marker, output and summary keys."""

from __future__ import annotations

import re

JOB_NAME_PREFIX = "inferstack-"
# Batch job names: 1-128 of [A-Za-z0-9_-], starting with a letter or digit.
_JOB_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,127}$")
SUMMARIES_DIR = "_summaries"
# Outputs of a re-run with a named model: <output>/_models/<name>/<version>/ (batch submit).
MODEL_RUNS_DIR = "_models"


def normalize_prefix(prefix: str) -> str:
    """``input`` and ``input/`` both mean the folder ``input/``; empty means the bucket root."""
    prefix = prefix.lstrip("/")
    return prefix if not prefix or prefix.endswith("/") else prefix + "/"


def normalize_etag(etag: str | None) -> str:
    """S3 events carry ETags bare, S3 API responses quoted: compare them bare."""
    return (etag or "").strip().strip('"')


def job_name(manifest_id: str) -> str:
    """The job name for a manifest: the same manifest always gets the same name."""
    name = f"{JOB_NAME_PREFIX}{manifest_id[:16]}"
    if not _JOB_NAME_RE.match(name):
        raise ValueError(f"invalid job name {name!r}")
    return name


def manifest_key(manifest_prefix: str, manifest_id: str) -> str:
    return f"{normalize_prefix(manifest_prefix)}{manifest_id}.json"


def marker_key(manifest_prefix: str, manifest_id: str) -> str:
    return f"{normalize_prefix(manifest_prefix)}{manifest_id}.submitted"


def shard_key(manifest_prefix: str, shard_sha256: str) -> str:
    return f"{normalize_prefix(manifest_prefix)}shards/{shard_sha256}.jsonl"


def relative_key(input_key: str, input_prefix: str) -> str:
    """The key below the input prefix; a key outside it is kept whole (bulk submits may
    name any prefix)."""
    prefix = normalize_prefix(input_prefix)
    return input_key[len(prefix) :] if prefix and input_key.startswith(prefix) else input_key


def output_key(input_key: str, input_prefix: str, output_prefix: str) -> str:
    """input/x/a.jpg -> output/x/a.jpg.json: deterministic, so a rerun overwrites."""
    return f"{normalize_prefix(output_prefix)}{relative_key(input_key, input_prefix)}.json"


def parent_job_id(job_id: str) -> str:
    """Batch gives array children ``<parent id>:<index>`` as AWS_BATCH_JOB_ID."""
    return job_id.split(":", 1)[0]


def summaries_prefix(output_prefix: str, job_id: str) -> str:
    return f"{normalize_prefix(output_prefix)}{SUMMARIES_DIR}/{parent_job_id(job_id)}/"


def child_summary_key(output_prefix: str, job_id: str, index: int) -> str:
    return f"{summaries_prefix(output_prefix, job_id)}{index}.json"


def job_summary_key(output_prefix: str, job_id: str) -> str:
    return f"{normalize_prefix(output_prefix)}{SUMMARIES_DIR}/{parent_job_id(job_id)}.json"
