"""Submitting manifests as AWS Batch array jobs, at most once per manifest.

AWS Batch does not de-duplicate jobs by name, so idempotency is built on an S3 marker object
``manifests/<id>.submitted`` written with S3 conditional writes:

1. claim: PUT the marker with ``If-None-Match: *`` (state "claimed", time, owner). Only one
   writer can create it; everyone else gets 412 PreconditionFailed.
2. write the manifest header, submit the job (name ``inferstack-<id[:16]>``), then overwrite
   the marker with state "submitted" and the job id.

A caller that finds the marker:
- "submitted": the job exists, nothing to do (the common redelivery case);
- "claimed": looks the job up by name (list_jobs, JOB_NAME filter). Found: records it, done.
  Not found and the claim is younger than the lease (900 s, longer than any Lambda run):
  another invocation is probably submitting right now, so raise SubmissionInProgress and let
  SQS redeliver later. Older: the claimer died before submitting; take the claim over with
  ``If-Match: <marker etag>`` (one winner) and submit.

Remaining window, stated honestly: a claimer that submits the job and then dies before it
updates the marker leaves a "claimed" marker; a later caller finds the job through list_jobs
(Batch lists jobs by name for days after they finish), so no duplicate unless list_jobs
misses a job submitted moments before, which the lease rules out. A claimer running longer
than the lease could race a taker; the lease exceeds the Lambda timeout to prevent that.
A duplicate job, should one ever start, costs little: the worker skips every image whose
output already exists for the same input ETag and model.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from inferstack.batch.manifest import Item, Manifest, build_manifests
from inferstack.batch.naming import job_name, manifest_key, marker_key, shard_key
from inferstack.batch.settings import BatchSettings
from inferstack.batch.sharding import array_properties

_CONDITION_FAILED = frozenset({"PreconditionFailed", "412"})
# S3 answers 409 when two conditional writes to one key race: the other writer is active.
_CONDITION_CONFLICT = frozenset({"ConditionalRequestConflict", "409"})


class SubmissionInProgress(Exception):  # noqa: N818  (a state, reported to SQS as a retry)
    """Another caller holds a fresh claim on this manifest: retry later."""


@dataclass(frozen=True)
class Submission:
    manifest_id: str
    manifest_uri: str
    job_name: str
    count: int
    children: int
    status: str  # "submitted" | "already_submitted" | "dry_run"
    job_id: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "manifest_id": self.manifest_id,
            "manifest": self.manifest_uri,
            "job_name": self.job_name,
            "images": self.count,
            "children": self.children,
            "status": self.status,
            "job_id": self.job_id,
        }


def _error_code(exc: Exception) -> str:
    response = getattr(exc, "response", None) or {}
    error = response.get("Error", {})
    return str(error.get("Code") or response.get("ResponseMetadata", {}).get("HTTPStatusCode"))


class JobSubmitter:
    """Stores shards and manifests in S3 and submits each manifest's job once."""

    def __init__(
        self,
        settings: BatchSettings,
        s3: Any,
        batch: Any,
        *,
        dry_run: bool = False,
        owner: str = "",
        clock: Callable[[], float] = time.time,
        environment: Mapping[str, str] | None = None,
    ) -> None:
        """``environment``: variables every job's container gets on top of the job
        definition's (SubmitJob containerOverrides; they win, and an array job's children
        inherit them), e.g. MODEL_URI and MODEL_SHA256 to run a named model."""
        self.settings = settings
        self.s3 = s3
        self.batch = batch
        self.dry_run = dry_run
        self.owner = owner
        self.clock = clock
        self.environment = dict(environment or {})

    # ------------------------------------------------------------------ storage

    def store_shard(self, body: bytes, sha256: str) -> str:
        key = shard_key(self.settings.manifest_prefix, sha256)
        if not self.dry_run:
            self.s3.put_object(
                Bucket=self.settings.bucket,
                Key=key,
                Body=body,
                ContentType="application/x-ndjson",
            )
        return key

    def manifest_uri(self, manifest_id: str) -> str:
        key = manifest_key(self.settings.manifest_prefix, manifest_id)
        return f"s3://{self.settings.bucket}/{key}"

    def _put_marker(self, manifest_id: str, doc: dict[str, Any], **condition: str) -> None:
        self.s3.put_object(
            Bucket=self.settings.bucket,
            Key=marker_key(self.settings.manifest_prefix, manifest_id),
            Body=json.dumps(doc, sort_keys=True).encode(),
            ContentType="application/json",
            **condition,
        )

    def _read_marker(self, manifest_id: str) -> tuple[dict[str, Any], str]:
        from botocore.exceptions import ClientError  # noqa: PLC0415

        try:
            response = self.s3.get_object(
                Bucket=self.settings.bucket,
                Key=marker_key(self.settings.manifest_prefix, manifest_id),
            )
        except ClientError as exc:
            if _error_code(exc) in {"NoSuchKey", "404"}:
                raise SubmissionInProgress(f"marker of {manifest_id} vanished") from exc
            raise
        return json.loads(response["Body"].read()), response["ETag"]

    # ------------------------------------------------------------------ jobs

    def find_job(self, name: str) -> str | None:
        """The id of a job with this name in the queue, any status, or None."""
        paginator = self.batch.get_paginator("list_jobs")
        pages = paginator.paginate(
            jobQueue=self.settings.job_queue,
            filters=[{"name": "JOB_NAME", "values": [name]}],
        )
        for page in pages:
            for job in page.get("jobSummaryList", []):
                if job.get("jobName") == name:
                    return str(job["jobId"])
        return None

    def _claim(self, manifest_id: str, name: str) -> str | None:
        """Take the claim (returns None) or return the id of the job already submitted."""
        from botocore.exceptions import ClientError  # noqa: PLC0415

        claim = {"state": "claimed", "claimed_at": self.clock(), "owner": self.owner}
        try:
            self._put_marker(manifest_id, claim, IfNoneMatch="*")
            return None
        except ClientError as exc:
            code = _error_code(exc)
            if code in _CONDITION_CONFLICT:
                raise SubmissionInProgress(f"{manifest_id}: concurrent claim") from exc
            if code not in _CONDITION_FAILED:
                raise
        marker, etag = self._read_marker(manifest_id)
        if marker.get("state") == "submitted" and marker.get("job_id"):
            return str(marker["job_id"])
        job_id = self.find_job(name)
        if job_id is not None:
            self._record_submitted(manifest_id, name, job_id)
            return job_id
        age = self.clock() - float(marker.get("claimed_at", 0.0))
        if age < self.settings.lease_seconds:
            raise SubmissionInProgress(f"{manifest_id}: claimed {age:.0f} s ago by another caller")
        try:
            self._put_marker(manifest_id, claim, IfMatch=etag)
        except ClientError as exc:
            if _error_code(exc) in _CONDITION_FAILED | _CONDITION_CONFLICT:
                raise SubmissionInProgress(f"{manifest_id}: claim taken over meanwhile") from exc
            raise
        return None

    def _record_submitted(self, manifest_id: str, name: str, job_id: str) -> None:
        doc = {
            "state": "submitted",
            "job_id": job_id,
            "job_name": name,
            "manifest": self.manifest_uri(manifest_id),
            "submitted_at": self.clock(),
            "owner": self.owner,
        }
        self._put_marker(manifest_id, doc)

    def submit(self, manifest: Manifest) -> Submission:
        name = job_name(manifest.id)
        uri = self.manifest_uri(manifest.id)

        def result(status: str, job_id: str | None) -> Submission:
            return Submission(
                manifest.id, uri, name, manifest.count, manifest.children, status, job_id
            )

        if self.dry_run:
            return result("dry_run", None)
        existing = self._claim(manifest.id, name)
        if existing is not None:
            return result("already_submitted", existing)
        self.s3.put_object(
            Bucket=self.settings.bucket,
            Key=manifest_key(self.settings.manifest_prefix, manifest.id),
            Body=manifest.to_json(),
            ContentType="application/json",
        )
        request: dict[str, Any] = {
            "jobName": name,
            "jobQueue": self.settings.job_queue,
            "jobDefinition": self.settings.job_definition,
            "parameters": {"manifest": uri},
        }
        props = array_properties(manifest.children)
        if props is not None:
            request["arrayProperties"] = props
        if self.environment:
            request["containerOverrides"] = {
                "environment": [
                    {"name": k, "value": v} for k, v in sorted(self.environment.items())
                ]
            }
        job_id = str(self.batch.submit_job(**request)["jobId"])
        self._record_submitted(manifest.id, name, job_id)
        return result("submitted", job_id)

    def submit_items(
        self,
        items: Iterable[Item],
        *,
        salt: str = "",
        source: str = "",
        on_submission: Callable[[Submission], None] | None = None,
    ) -> list[Submission]:
        """Build manifests from sorted unique items (streaming) and submit each one."""
        submissions = []
        for manifest in build_manifests(
            items,
            bucket=self.settings.bucket,
            input_prefix=self.settings.input_prefix,
            images_per_child=self.settings.images_per_child,
            max_array_size=self.settings.max_array_size,
            store_shard=self.store_shard,
            salt=salt,
            source=source,
        ):
            submission = self.submit(manifest)
            submissions.append(submission)
            if on_submission is not None:
                on_submission(submission)
        return submissions
