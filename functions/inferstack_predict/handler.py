"""Real-time image classification: API Gateway REST (proxy integration) -> ``POST /predict``.

Handler string: ``inferstack_predict.handler.lambda_handler``.

The model is loaded here at import time (the Lambda init phase, which also gets a full CPU
burst), from ``MODEL_URI`` (s3://bucket/prefix/ or a folder) into ``MODEL_CACHE_DIR``. If that
fails the init still succeeds and every request answers 503 with a clear message; the cause
is logged once with its traceback.

Answers: 200 with predictions; ``{"error": {"code", "message"}}`` with 400 (corrupt image or
body), 413 (over the byte or pixel limit), 415 (unsupported type), 422 (bad parameter), 503
(model unavailable), 404/405 for other paths/methods. 500 ``internal_error`` only for a bug.

Limits: API Gateway accepts at most 10 MB and a synchronous Lambda invocation at most 6 MB
of request payload, so binary uploads (base64 in the event) top out near 4.5 MB whatever
MAX_IMAGE_BYTES says; MAX_IMAGE_BYTES is checked on the base64 length first (no decoding of
an oversized body), then on the decoded bytes.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from collections.abc import Iterator
from typing import Any

import PIL.Image
from aws_lambda_powertools.event_handler import APIGatewayRestResolver, CORSConfig, Response
from aws_lambda_powertools.event_handler.exceptions import NotFoundError
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext
from inferstack import telemetry
from inferstack.bundle import load_bundle
from inferstack.classifier import Classifier
from inferstack.errors import InferstackError, InvalidRequest
from inferstack.pipeline import Pipeline

from inferstack_predict.config import ConfigError, Settings
from inferstack_predict.loader import ModelLoader
from inferstack_predict.request import parse_request

SERVICE = "inferstack-predict"
ROUTE = "/predict"
JSON = "application/json"

logger = telemetry.make_logger(SERVICE)
metrics = telemetry.make_metrics(SERVICE)
tracer = telemetry.make_tracer(SERVICE)


def _cors() -> CORSConfig | None:
    """CORS only when CORS_ALLOW_ORIGIN is set (browsers calling the API directly)."""
    origin = os.environ.get("CORS_ALLOW_ORIGIN", "").strip()
    if not origin:
        return None
    return CORSConfig(allow_origin=origin, allow_headers=["x-api-key"], max_age=300)


app = APIGatewayRestResolver(cors=_cors())


def load_model() -> tuple[Settings, Classifier]:
    """Settings from the environment, the bundle from MODEL_URI, the interpreter."""
    settings = Settings.from_env()
    if not settings.model_uri:
        raise ConfigError("MODEL_URI is not set")
    # No X-Ray subsegment here: the init runs before any trace header exists, so it would be
    # unsampled and never sent (Lambda traces the init phase itself).
    bundle = load_bundle(
        settings.model_uri, cache_dir=settings.cache_dir, expected_sha256=settings.model_sha256
    )
    classifier = Classifier.from_bundle(bundle)
    # Pillow imports its common format plugins on the first open: do it during the init
    # (ahead of traffic with provisioned concurrency), not in the first request's decode.
    PIL.Image.preinit()
    return settings, classifier


# The only module state besides the powertools objects: built once per sandbox (init).
MODEL = ModelLoader(load_model, logger=logger)
MODEL.load()


# --------------------------------------------------------------------------- responses


def error_response(
    status: int, code: str, message: str, headers: dict[str, str] | None = None
) -> Response:
    return Response(
        status_code=status,
        content_type=JSON,
        body={"error": {"code": code, "message": message}},
        headers=headers,
    )


def _request_id() -> str:
    """The API Gateway request id (what clients and access logs see), else Lambda's."""
    event = app.current_event
    request_id = (event.raw_event.get("requestContext") or {}).get("requestId")
    if request_id:
        return str(request_id)
    return getattr(app.lambda_context, "aws_request_id", "") or ""


def _reject(status: int, code: str, message: str, **headers: str) -> Response:
    telemetry.emit_error(metrics, code)
    tracer.put_annotation("error_code", code)
    log = logger.error if status >= 500 else logger.info
    log("request rejected", extra={"status": status, "error_code": code, "reason": message})
    return error_response(status, code, message, headers or None)


@app.exception_handler(InferstackError)
def handle_inferstack_error(exc: InferstackError) -> Response:
    return _reject(exc.http_status, exc.code, exc.message)


@app.exception_handler(NotFoundError)
def handle_not_found(_exc: NotFoundError) -> Response:
    event = app.current_event
    path = event.path.rstrip("/") or "/"
    if path == ROUTE:
        return _reject(
            405, "method_not_allowed", f"{event.http_method} is not allowed; use POST", Allow="POST"
        )
    return _reject(404, "not_found", f"no route for {event.http_method} {path[:100]}")


@app.exception_handler(Exception)
def handle_unexpected(exc: Exception) -> Response:
    # A bug, never a client mistake: the traceback goes to the logs, not to the client.
    logger.exception("unhandled error while serving a request")
    return _reject(500, "internal_error", "internal error; the request id identifies the logs")


# --------------------------------------------------------------------------- route


class TracedPipeline(Pipeline):
    """The shared classification path with each stage in an X-Ray subsegment."""

    @contextlib.contextmanager
    def stage(self, name: str) -> Iterator[None]:
        with tracer.provider.in_subsegment(name):
            yield


@app.post(ROUTE)
def predict() -> dict[str, Any]:
    started = time.perf_counter()
    settings, classifier = MODEL.get()  # 503 when the model is not loaded
    request = parse_request(
        app.current_event.raw_event,
        max_bytes=settings.limits.max_bytes,
        default_top_k=settings.default_top_k,
        image_types=settings.image_types,
    )
    result = TracedPipeline(classifier, settings.limits).run(request.image, top_k=request.top_k)
    predictions, stages = result.predictions, result.timing_ms
    total_ms = (time.perf_counter() - started) * 1000.0

    # total: the whole request as the function saw it (parsing included), not only the stages.
    timing = {
        "decode": stages["decode"],
        "preprocess": stages["preprocess"],
        "infer": stages["infer"],
        "total": round(total_ms, 3),
    }
    _record_success(request.image, timing, predictions)
    bundle = classifier.bundle
    return {
        "predictions": predictions,
        "model": {"name": bundle.name, "version": bundle.version},
        "request_id": _request_id(),
        "timing_ms": timing,
    }


def _record_success(image: bytes, timing: dict[str, float], predictions: list[Any]) -> None:
    metrics.add_metric(name=telemetry.METRIC_PREDICTIONS, unit=MetricUnit.Count, value=1)
    metrics.add_metric(name=telemetry.METRIC_IMAGE_BYTES, unit=MetricUnit.Bytes, value=len(image))
    for key, name in (
        ("decode", telemetry.METRIC_DECODE_MS),
        ("preprocess", telemetry.METRIC_PREPROCESS_MS),
        ("infer", telemetry.METRIC_INFER_MS),
        ("total", telemetry.METRIC_TOTAL_MS),
    ):
        metrics.add_metric(name=name, unit=MetricUnit.Milliseconds, value=timing[key])
    top = predictions[0] if predictions else {}
    if "probability" in top:
        metrics.add_metric(
            name=telemetry.METRIC_TOP_PROBABILITY, unit=MetricUnit.NoUnit, value=top["probability"]
        )
    logger.info(
        "prediction served",
        extra={"image_bytes": len(image), "timing_ms": timing, "top_label": top.get("label")},
    )


# --------------------------------------------------------------------------- entry point


def _is_rest_proxy_event(event: Any) -> bool:
    return (
        isinstance(event, dict)
        and isinstance(event.get("httpMethod"), str)
        and isinstance(event.get("path"), str)
    )


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_REST)
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics(capture_cold_start_metric=True)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    response = _answer(event, context)
    # Every answer and every metric of this invocation name the model of this environment.
    bundle = MODEL.classifier.bundle if MODEL.classifier is not None else None
    sha256 = bundle.sha256 if bundle is not None else os.environ.get("MODEL_SHA256")
    telemetry.add_model_dimension(metrics, sha256)
    header = telemetry.model_header(
        bundle.name if bundle else None, bundle.version if bundle else None, sha256
    )
    if isinstance(response.get("multiValueHeaders"), dict):
        response["multiValueHeaders"][telemetry.MODEL_HEADER] = [header]
    else:
        response.setdefault("headers", {})[telemetry.MODEL_HEADER] = header
    return response


def _answer(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    if not _is_rest_proxy_event(event):
        # Not from API Gateway (e.g. a console test event): answer in the API's own format.
        error = InvalidRequest("not an API Gateway REST proxy event (httpMethod, path)")
        telemetry.emit_error(metrics, error.code)
        logger.info("request rejected", extra={"status": 400, "error_code": error.code})
        return {
            "statusCode": error.http_status,
            "headers": {"Content-Type": JSON},
            "body": json.dumps({"error": error.to_dict()}),
            "isBase64Encoded": False,
        }
    return app.resolve(event, context)
