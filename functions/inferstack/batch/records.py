"""Output records (one JSON object per input image) and the S3 metadata that marks them done.

A result record is the /predict answer plus where the image came from and exactly which model
produced it; an error record has ``error`` instead of ``predictions``. The object's user
metadata (``x-amz-meta-input-etag``, ``x-amz-meta-model-sha256``) lets a rerun decide with a
HEAD, without reading the record, whether the output is current.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from inferstack.batch.naming import normalize_etag

META_INPUT_ETAG = "input-etag"
META_MODEL_SHA256 = "model-sha256"
META_STATUS = "status"

# Error codes of records for inputs that are not images (the real-time API's codes) plus
# ``not_found`` for an input deleted between the upload event and the job.
CODE_NOT_FOUND = "not_found"


def model_info(name: str, version: str, sha256: str) -> dict[str, str]:
    return {"name": name, "version": version, "sha256": sha256}


def input_info(bucket: str, key: str, etag: str) -> dict[str, str]:
    return {"bucket": bucket, "key": key, "etag": normalize_etag(etag)}


def result_record(
    predictions: list[Any],
    *,
    model: Mapping[str, str],
    source: Mapping[str, str],
    timing_ms: Mapping[str, float],
    job: Mapping[str, Any],
) -> dict[str, Any]:
    return {
        "predictions": [dict(p) for p in predictions],
        "model": dict(model),
        "input": dict(source),
        "timing_ms": dict(timing_ms),
        "job": dict(job),
    }


def error_record(
    code: str,
    message: str,
    *,
    model: Mapping[str, str],
    source: Mapping[str, str],
    job: Mapping[str, Any],
    attempts: int | None = None,
) -> dict[str, Any]:
    """``attempts``: for ``worker_crash``, how many attempts died with the image in flight."""
    error: dict[str, Any] = {"code": code, "message": message}
    if attempts is not None:
        error["attempts"] = attempts
    return {
        "error": error,
        "model": dict(model),
        "input": dict(source),
        "job": dict(job),
    }


def encode(record: Mapping[str, Any]) -> bytes:
    return (json.dumps(record, ensure_ascii=False, sort_keys=True) + "\n").encode("utf-8")


def output_metadata(record: Mapping[str, Any]) -> dict[str, str]:
    """User metadata stored with the output object."""
    return {
        META_INPUT_ETAG: str(record["input"]["etag"]),
        META_MODEL_SHA256: str(record["model"]["sha256"]),
        META_STATUS: "error" if "error" in record else "ok",
    }


def is_current(metadata: Mapping[str, str], *, input_etag: str, model_sha256: str) -> bool:
    """Whether an existing output was made from this input version by this model."""
    return (
        normalize_etag(metadata.get(META_INPUT_ETAG)) == normalize_etag(input_etag)
        and metadata.get(META_MODEL_SHA256) == model_sha256
        and bool(model_sha256)
    )
