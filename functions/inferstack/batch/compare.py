"""``inferstack batch compare``: two runs over the same inputs, image by image.

Each output prefix holds one JSON record per input image (inferstack.batch.records): a result
(``predictions``, best first) or an error record (``error``), both naming the input key and
the model (name, version, sha256). Records are matched by their input key, so the two runs
may write under any output prefixes (``inferstack batch submit --model-uri`` writes under
``<output>/_models/<name>/<version>/``). Reported: the top-1 agreement over the images with
a result in both runs, each run's mean top-1 probability over those same images, each run's
models, error records by code, records that are not readable, keys found in one run only,
and the images whose top-1 differs.

Cost: one listing of each prefix and one GetObject per record, ``workers`` at a time, a chunk
of keys in flight at once (memory stays flat in the listing; one small tuple per record).
Not records: the job summaries (``_summaries/``), other models' runs (``_models/``) and, when
one prefix lies inside the other, the inner one's keys while listing the outer one.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from itertools import islice
from typing import Any

from inferstack.batch.naming import MODEL_RUNS_DIR, SUMMARIES_DIR, normalize_prefix

CHUNK = 1000
RECORD_SUFFIX = ".json"


@dataclass(frozen=True)
class Location:
    bucket: str
    prefix: str

    @property
    def uri(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}"


def parse_location(text: str, default_bucket: str | None) -> Location:
    """``s3://bucket/prefix`` or a prefix of ``default_bucket`` (the stack's data bucket)."""
    if text.startswith("s3://"):
        bucket, _, prefix = text[len("s3://") :].partition("/")
        if not bucket:
            raise ValueError(f"no bucket in {text!r}")
        return Location(bucket, normalize_prefix(prefix))
    if not default_bucket:
        raise ValueError(f"{text!r} is a prefix: give --bucket (or DATA_BUCKET) or an s3:// URI")
    return Location(default_bucket, normalize_prefix(text))


@dataclass(frozen=True)
class Entry:
    """What one record says: its top-1 or its error code, and its model."""

    label: str | None
    probability: float | None
    error: str | None
    model: tuple[str, str, str]


def read_entry(raw: bytes) -> tuple[str, Entry]:
    """(input key, entry) of a record; ValueError when it is not a record."""
    try:
        doc = json.loads(raw)
        key = doc["input"]["key"]
        model = doc.get("model") or {}
        ident = (str(model.get("name", "")), str(model.get("version", "")))
        ident3 = (*ident, str(model.get("sha256", "")))
        if not isinstance(key, str) or not key:
            raise ValueError("no input key")
        if "error" in doc:
            code = doc["error"].get("code") if isinstance(doc["error"], dict) else None
            return key, Entry(None, None, str(code or "unknown"), ident3)
        predictions = doc["predictions"]
        if not predictions:
            return key, Entry(None, None, "no_predictions", ident3)
        best = max(predictions, key=lambda p: float(p["probability"]))
        probability = float(best["probability"])
        if not math.isfinite(probability):
            raise ValueError("probability is not a number")
        return key, Entry(str(best["label"]), probability, None, ident3)
    except (ValueError, KeyError, TypeError, AttributeError, UnicodeDecodeError) as exc:
        raise ValueError(f"not a record: {exc}") from exc


@dataclass
class Run:
    location: Location
    entries: dict[str, Entry] = field(default_factory=dict)
    unreadable: list[str] = field(default_factory=list)  # object keys
    duplicates: int = 0  # records naming an input key already seen (the first one is kept)

    def errors(self) -> Counter[str]:
        return Counter(e.error for e in self.entries.values() if e.error is not None)

    def models(self) -> Counter[tuple[str, str, str]]:
        return Counter(e.model for e in self.entries.values())


def _chunks(items: Iterable[str], size: int) -> Iterator[list[str]]:
    iterator = iter(items)
    while chunk := list(islice(iterator, size)):
        yield chunk


def list_records(s3: Any, location: Location, skip: tuple[str, ...] = ()) -> Iterator[str]:
    """Keys of the records under ``location`` (paginated), without the skipped prefixes."""
    skipped = (
        f"{location.prefix}{SUMMARIES_DIR}/",
        f"{location.prefix}{MODEL_RUNS_DIR}/",
        *skip,
    )
    paginator = s3.get_paginator("list_objects_v2")
    for page in paginator.paginate(Bucket=location.bucket, Prefix=location.prefix):
        for obj in page.get("Contents", []):
            key = obj["Key"]
            if key.endswith(RECORD_SUFFIX) and not key.startswith(skipped):
                yield key


def read_run(s3: Any, location: Location, *, workers: int = 16, skip: tuple[str, ...] = ()) -> Run:
    """Every record under ``location``, read ``workers`` at a time."""
    run = Run(location)

    def fetch(key: str) -> tuple[str, bytes | None]:
        from botocore.exceptions import ClientError  # noqa: PLC0415

        try:
            body = s3.get_object(Bucket=location.bucket, Key=key)["Body"].read()
        except ClientError as exc:
            # Deleted between the listing and the read: not a record any more.
            if exc.response.get("Error", {}).get("Code") in {"NoSuchKey", "404"}:
                return key, None
            raise
        return key, body

    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="compare") as pool:
        for chunk in _chunks(list_records(s3, location, skip), CHUNK):
            for key, body in pool.map(fetch, chunk):
                if body is None:
                    continue
                try:
                    input_key, entry = read_entry(body)
                except ValueError:
                    run.unreadable.append(key)
                    continue
                if input_key in run.entries:
                    run.duplicates += 1
                    continue
                run.entries[input_key] = entry
    return run


def _nested_skip(outer: Location, inner: Location) -> tuple[str, ...]:
    """The inner prefix, when it lies strictly inside the outer one in the same bucket."""
    if (
        outer.bucket == inner.bucket
        and inner.prefix != outer.prefix
        and inner.prefix.startswith(outer.prefix)
    ):
        return (inner.prefix,)
    return ()


def _mean(values: list[float]) -> float | None:
    return round(sum(values) / len(values), 6) if values else None


def _run_doc(run: Run, mean_top1: float | None, only: list[str], limit: int) -> dict[str, Any]:
    results = sum(1 for e in run.entries.values() if e.error is None)
    return {
        "uri": run.location.uri,
        "records": len(run.entries),
        "results": results,
        "errors": dict(sorted(run.errors().items())),
        "unreadable": len(run.unreadable),
        "unreadable_keys": sorted(run.unreadable)[:limit],
        "duplicates": run.duplicates,
        "models": [
            {"name": n, "version": v, "sha256": s, "records": count}
            for (n, v, s), count in sorted(run.models().items())
        ],
        "mean_top1_probability": mean_top1,
        "only_here": len(only),
        "only_here_keys": only[:limit],
    }


def compare_runs(a: Run, b: Run, *, limit: int = 20) -> dict[str, Any]:
    """The comparison document (see the module docstring)."""
    keys_a, keys_b = set(a.entries), set(b.entries)
    common = sorted(keys_a & keys_b)
    compared: list[tuple[str, Entry, Entry]] = []
    error_in_one = 0
    for key in common:
        ea, eb = a.entries[key], b.entries[key]
        if ea.error is None and eb.error is None:
            compared.append((key, ea, eb))
        elif (ea.error is None) != (eb.error is None):
            error_in_one += 1
    differ = [(k, ea, eb) for k, ea, eb in compared if ea.label != eb.label]
    agree = len(compared) - len(differ)
    mean_a = _mean([ea.probability for _, ea, _ in compared if ea.probability is not None])
    mean_b = _mean([eb.probability for _, _, eb in compared if eb.probability is not None])
    return {
        "a": _run_doc(a, mean_a, sorted(keys_a - keys_b), limit),
        "b": _run_doc(b, mean_b, sorted(keys_b - keys_a), limit),
        "common_keys": len(common),
        "compared": len(compared),
        "error_in_one_run": error_in_one,
        "top1_agreement": {
            "count": agree,
            "fraction": round(agree / len(compared), 6) if compared else None,
        },
        "differ_count": len(differ),
        "differ": [
            {
                "key": k,
                "a": {"label": ea.label, "probability": ea.probability},
                "b": {"label": eb.label, "probability": eb.probability},
            }
            for k, ea, eb in differ[:limit]
        ],
    }


def compare_prefixes(
    s3: Any, a: Location, b: Location, *, workers: int = 16, limit: int = 20
) -> dict[str, Any]:
    if a == b:
        raise ValueError(f"both runs are {a.uri}: give two output prefixes")
    run_a = read_run(s3, a, workers=workers, skip=_nested_skip(a, b))
    run_b = read_run(s3, b, workers=workers, skip=_nested_skip(b, a))
    return compare_runs(run_a, run_b, limit=limit)


def _model_text(doc: dict[str, Any]) -> str:
    models = doc["models"]
    if not models:
        return "-"
    text = ", ".join(f"{m['name']} {m['version']} ({m['sha256'][:12]})" for m in models[:2])
    return text + (f" +{len(models) - 2} more" if len(models) > 2 else "")


def _fmt_p(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def render_table(doc: dict[str, Any]) -> str:
    a, b = doc["a"], doc["b"]

    def errors(run: dict[str, Any]) -> str:
        total = sum(run["errors"].values())
        detail = ", ".join(f"{c} {n}" for c, n in run["errors"].items())
        return f"{total} ({detail})" if total else "0"

    rows = [
        ("", "A", "B"),
        ("run", a["uri"], b["uri"]),
        ("model", _model_text(a), _model_text(b)),
        ("records", str(a["records"]), str(b["records"])),
        ("error records", errors(a), errors(b)),
        ("unreadable", str(a["unreadable"]), str(b["unreadable"])),
        ("only in this run", str(a["only_here"]), str(b["only_here"])),
        (
            "mean top-1 probability",
            _fmt_p(a["mean_top1_probability"]),
            _fmt_p(b["mean_top1_probability"]),
        ),
    ]
    w0 = max(len(r[0]) for r in rows)
    w1 = max(len(r[1]) for r in rows)
    lines = [f"{r[0]:<{w0}}  {r[1]:<{w1}}  {r[2]}".rstrip() for r in rows]
    agreement = doc["top1_agreement"]
    if doc["compared"]:
        lines.append(
            f"top-1 agreement: {agreement['count']} of {doc['compared']} images with a result "
            f"in both runs ({agreement['fraction']:.1%}); means are over those images"
        )
    else:
        lines.append("top-1 agreement: no image has a result in both runs")
    if doc["error_in_one_run"]:
        lines.append(f"an error record in one run only: {doc['error_in_one_run']} images")
    if doc["differ"]:
        shown = len(doc["differ"])
        lines.append(f"top-1 differs ({shown} of {doc['differ_count']}):")
        for d in doc["differ"]:
            lines.append(
                f"  {d['key']}  A: {d['a']['label']} {_fmt_p(d['a']['probability'])}"
                f"  B: {d['b']['label']} {_fmt_p(d['b']['probability'])}"
            )
    for side, run in (("A", a), ("B", b)):
        if run["unreadable_keys"]:
            lines.append(f"unreadable in {side}: {', '.join(run['unreadable_keys'])}")
    return "\n".join(lines)
