"""Which images were inside a child when it died: the in-flight marker.

A child killed mid-shard (SIGKILL, the kernel's OOM killer, a crash in a native decoder)
leaves no trace in its own process. Before an image enters the pipeline, the child lists it
in a small JSON object, ``<output prefix>_summaries/<job id>/inflight/<index>.json``; the
next attempt of the same child reads it and knows which images were in flight when the
previous attempt died. Those are *suspects*: the retry classifies each of them first, alone,
with the marker naming only that key. A suspect that takes the worker down again while alone
is a *poison* image: the attempt after that writes it an error record (``worker_crash``, with
the number of attempts it was in flight for) without decoding it again, and the shard goes on.

Cost: the marker is written once per ``depth`` images entering the pipeline (it lists the
keys in flight plus the next ones to enter), not once per image, and once per suspect.
A clean end (success, or an infrastructure fault that exits 75) rewrites it with nothing in
flight, so only a death leaves keys in it. The marker lives under the job's summaries folder
(``output/`` is the only prefix the job role may write) and beside, not among, the child
summaries: the summary listing takes only the folder's direct ``<index>.json`` objects.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from inferstack.batch.naming import summaries_prefix

INFLIGHT_DIR = "inflight"
CODE_WORKER_CRASH = "worker_crash"


def inflight_key(output_prefix: str, job_id: str, index: int) -> str:
    return f"{summaries_prefix(output_prefix, job_id)}{INFLIGHT_DIR}/{index}.json"


@dataclass
class CrashHistory:
    """What the previous attempts of this child left: strikes per key and the poison keys."""

    attempt: int  # the attempt this history is read by
    strikes: dict[str, int] = field(default_factory=dict)  # key -> attempts that died with it
    poison: dict[str, int] = field(default_factory=dict)  # key -> strikes, died alone
    previous_attempt: int | None = None
    previous_died: bool = False

    @property
    def suspects(self) -> list[str]:
        return sorted(k for k in self.strikes if k not in self.poison)


def history_from_marker(marker: dict[str, Any] | None, attempt: int | None) -> CrashHistory:
    """Fold the previous attempt's marker into the crash history of this attempt.

    ``attempt``: this attempt's number (AWS_BATCH_JOB_ATTEMPT), or None to count on from the
    marker's. Keys still listed in the marker were in flight when that attempt died.
    """
    if not marker:
        return CrashHistory(attempt=attempt or 1)
    previous = int(marker.get("attempt") or 0)
    strikes = {str(k): int(v) for k, v in (marker.get("strikes") or {}).items()}
    inflight = [str(k) for k in marker.get("inflight") or []]
    for key in inflight:
        strikes[key] = strikes.get(key, 0) + 1
    poison = {str(k): int(v) for k, v in (marker.get("poison") or {}).items()}
    if marker.get("solo") and len(inflight) == 1:
        # It was alone in the worker when the worker died: the image is the cause.
        poison[inflight[0]] = strikes[inflight[0]]
    return CrashHistory(
        attempt=attempt or previous + 1,
        strikes=strikes,
        poison=poison,
        previous_attempt=previous or None,
        previous_died=bool(inflight),
    )


class InflightMarker:
    """Reads and writes one child's marker. S3 errors propagate (the caller maps them)."""

    def __init__(self, s3: Any, bucket: str, key: str, *, job_id: str, array_index: int) -> None:
        self.s3 = s3
        self.bucket = bucket
        self.key = key
        self.job_id = job_id
        self.array_index = array_index
        self.writes = 0

    def read(self) -> dict[str, Any] | None:
        from botocore.exceptions import ClientError  # noqa: PLC0415

        try:
            body = self.s3.get_object(Bucket=self.bucket, Key=self.key)["Body"].read()
        except ClientError as exc:
            code = str(exc.response.get("Error", {}).get("Code", ""))
            if code in {"NoSuchKey", "404", "NotFound"}:
                return None
            raise
        try:
            doc = json.loads(body)
        except ValueError:
            return None  # a torn or foreign object: no history rather than a failed child
        return doc if isinstance(doc, dict) else None

    def write(self, history: CrashHistory, inflight: list[str], *, solo: bool = False) -> None:
        doc = {
            "job_id": self.job_id,
            "array_index": self.array_index,
            "attempt": history.attempt,
            "inflight": sorted(inflight),
            "solo": solo,
            "strikes": dict(sorted(history.strikes.items())),
            "poison": dict(sorted(history.poison.items())),
        }
        self.s3.put_object(
            Bucket=self.bucket,
            Key=self.key,
            Body=(json.dumps(doc, sort_keys=True) + "\n").encode(),
            ContentType="application/json",
        )
        self.writes += 1
