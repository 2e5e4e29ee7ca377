"""Powertools Logger, Metrics and Tracer factories shared by every entry point.

Each entry point (real-time handler, batch dispatcher, batch worker) calls these with its own
default service name; ``POWERTOOLS_SERVICE_NAME`` overrides it, so one deployment can rename a
service without code changes. Metrics go to the ``Inferstack`` namespace unless
``POWERTOOLS_METRICS_NAMESPACE`` says otherwise.

Metric names are constants here because dashboards and alarms (Terraform) refer to them.
Dimensions stay low-cardinality on purpose: ``service`` on every metric, plus ``ErrorCode`` (a
closed set of error codes) on the per-code error counter only. The real-time function also
emits each of its metrics a second time, in the same EMF document, with ``ModelSha256`` (the
first 12 hex digits of the model's sha256: one value per deployed model, two during a canary
rollout), so a candidate can be compared with the primary; the ``service``-only set stays, so
alarms and graphs of the whole service keep matching (CloudWatch matches the exact dimension
set). Request ids and labels never become dimensions; they go into log lines instead.
"""

from __future__ import annotations

import os
from collections.abc import Generator, Sequence
from contextlib import contextmanager
from typing import Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit, single_metric
from aws_lambda_powertools.tracing.base import BaseProvider, BaseSegment

NAMESPACE = "Inferstack"

# Real-time service metric names (unit in the comment).
METRIC_PREDICTIONS = "PredictionCount"  # Count, one per 200 answer
METRIC_ERRORS = "ErrorCount"  # Count; also emitted per error code with the ErrorCode dimension
METRIC_DECODE_MS = "DecodeLatency"  # Milliseconds
METRIC_PREPROCESS_MS = "PreprocessLatency"  # Milliseconds
METRIC_INFER_MS = "InferLatency"  # Milliseconds
METRIC_TOTAL_MS = "TotalLatency"  # Milliseconds, whole request inside the handler
METRIC_IMAGE_BYTES = "ImageBytes"  # Bytes of the decoded request image
METRIC_COLD_START = "ColdStart"  # Count, emitted by powertools (dimensions service, function_name)
METRIC_TOP_PROBABILITY = "TopProbability"  # None, the top-1 probability of a 200 answer
DIMENSION_ERROR_CODE = "ErrorCode"
# The model an answer came from: a metric dimension (12 hex digits of its sha256, known before
# the model loads from the deployment's MODEL_SHA256 pin) and a response header
# (<name>/<version>/<12 hex digits>, "-" for what is not known while the model is not loaded).
DIMENSION_MODEL = "ModelSha256"
MODEL_HEADER = "X-Inferstack-Model"
MODEL_ID_HEX_DIGITS = 12

# The closed set of codes the ErrorCode dimension may take; anything else is folded into
# "internal_error" so a bug can never create unbounded metric streams.
KNOWN_ERROR_CODES = frozenset(
    {
        "invalid_image",
        "invalid_request",
        "image_too_large",
        "unsupported_media_type",
        "invalid_parameter",
        "model_unavailable",
        "bundle_integrity",
        "not_found",
        "method_not_allowed",
        "internal_error",
    }
)


def service_name(default: str) -> str:
    """The service name: ``POWERTOOLS_SERVICE_NAME`` when set, else the entry point's default."""
    return os.environ.get("POWERTOOLS_SERVICE_NAME") or default


def namespace() -> str:
    return os.environ.get("POWERTOOLS_METRICS_NAMESPACE") or NAMESPACE


def make_logger(default_service: str) -> Logger:
    """Structured JSON logger; level from ``POWERTOOLS_LOG_LEVEL`` or ``LOG_LEVEL`` (INFO)."""
    level = os.environ.get("POWERTOOLS_LOG_LEVEL") or os.environ.get("LOG_LEVEL") or "INFO"
    return Logger(service=service_name(default_service), level=level.upper(), utc=True)


def make_metrics(default_service: str) -> Metrics:
    """EMF metrics with ``service`` as the only default dimension."""
    return Metrics(namespace=namespace(), service=service_name(default_service))


class _NoOpSegment(BaseSegment):
    def close(self, end_time: int | None = None) -> None:
        return None

    def add_subsegment(self, subsegment: Any) -> None:
        return None

    def remove_subsegment(self, subsegment: Any) -> None:
        return None

    def put_annotation(self, key: str, value: Any) -> None:
        return None

    def put_metadata(self, key: str, value: Any, namespace: str = "default") -> None:
        return None

    def add_exception(self, exception: BaseException, stack: Any, remote: bool = False) -> None:
        return None


class NoOpTracingProvider(BaseProvider):
    """Used when tracing is off, so the X-Ray SDK is never imported.

    Importing ``aws_xray_sdk.core`` builds a botocore X-Ray client for its sampler (a known
    SDK behaviour), which costs a few hundred milliseconds of cold start for nothing when no
    trace is sent.
    """

    @contextmanager
    def in_subsegment(self, name: Any = None, **kwargs: Any) -> Generator[BaseSegment, None, None]:
        yield _NoOpSegment()

    @contextmanager
    def in_subsegment_async(
        self, name: Any = None, **kwargs: Any
    ) -> Generator[BaseSegment, None, None]:
        yield _NoOpSegment()

    def put_annotation(self, key: str, value: Any) -> None:
        return None

    def put_metadata(self, key: str, value: Any, namespace: str = "default") -> None:
        return None

    def patch(self, modules: Sequence[str]) -> None:
        return None

    def patch_all(self) -> None:
        return None


def tracing_disabled() -> bool:
    """Powertools' own rule: off when POWERTOOLS_TRACE_DISABLED is true or outside Lambda."""
    flag = os.environ.get("POWERTOOLS_TRACE_DISABLED", "false").strip().lower()
    if flag in {"1", "true", "yes", "on", "y", "t"}:
        return True
    in_lambda = bool(os.environ.get("LAMBDA_TASK_ROOT"))
    local_emulator = bool(os.environ.get("AWS_SAM_LOCAL") or os.environ.get("AWS_CHALICE_CLI_MODE"))
    return not in_lambda or local_emulator


def make_tracer(default_service: str) -> Tracer:
    """X-Ray tracer; a no-op outside Lambda and when ``POWERTOOLS_TRACE_DISABLED=true``.

    Only botocore is patched (S3 calls at init show up as subsegments); patching everything
    would import and wrap libraries the functions never use.
    """
    if tracing_disabled():
        return Tracer(
            service=service_name(default_service),
            disabled=True,
            auto_patch=False,
            provider=NoOpTracingProvider(),
        )
    return Tracer(service=service_name(default_service), patch_modules=["botocore"])


def error_code_dimension(code: str) -> str:
    return code if code in KNOWN_ERROR_CODES else "internal_error"


def emit_error(metrics: Metrics, code: str) -> None:
    """Count one error twice: in the service-wide ErrorCount (through ``metrics``, flushed with
    the invocation's other metrics) and, immediately, in ErrorCount by ErrorCode."""
    metrics.add_metric(name=METRIC_ERRORS, unit=MetricUnit.Count, value=1)
    with single_metric(
        name=METRIC_ERRORS,
        unit=MetricUnit.Count,
        value=1,
        namespace=metrics.namespace,
        default_dimensions={"service": str(metrics.service)},
    ) as metric:
        metric.add_dimension(name=DIMENSION_ERROR_CODE, value=error_code_dimension(code))


def model_dimension(sha256: str | None) -> str:
    """The ``ModelSha256`` dimension value of a model: its sha256's first 12 hex digits."""
    text = (sha256 or "").strip().lower()
    return text[:MODEL_ID_HEX_DIGITS] if text else "unknown"


def model_header(name: str | None, version: str | None, sha256: str | None) -> str:
    """The ``X-Inferstack-Model`` value: ``<name>/<version>/<sha256 prefix>``."""
    return f"{name or '-'}/{version or '-'}/{model_dimension(sha256) if sha256 else '-'}"


def add_model_dimension(metrics: Metrics, sha256: str | None) -> None:
    """Emit this invocation's metrics also by model (a second dimension set, same document)."""
    metrics.add_dimensions(
        **{"service": str(metrics.service), DIMENSION_MODEL: model_dimension(sha256)}
    )
