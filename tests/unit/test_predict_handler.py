"""The real-time handler, driven with API Gateway REST proxy events as API Gateway sends them.

The handler module is imported the way Lambda does it (the model loads at import), with the
environment the function gets. One module-wide instance loads the fixture MobileNetV2 from an
in-process moto S3 bucket (the init path end to end); other tests import fresh instances with
other settings. Every answer is checked against the API contract, and no input may get a 500.
"""

from __future__ import annotations

import base64
import contextlib
import importlib
import io
import itertools
import json
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import boto3
import pytest
from aws_lambda_powertools.metrics.provider import cold_start
from imagecorpus import ImageCase, image_cases, jpeg_bytes
from inferstack import telemetry
from inferstack.bundle import MODEL_FILE
from inferstack.errors import ImageTooLarge, InvalidRequest
from inferstack.images import DEFAULT_MAX_BYTES
from inferstack_predict import request as req
from moto import mock_aws
from PIL import Image

HANDLER_MODULE = "inferstack_predict.handler"
EVENTS = Path(__file__).resolve().parent / "events"
BUCKET = "inferstack-models-test"
PREFIX = "models/mobilenet/"
HANDLER_ENV_VARS = (
    "MODEL_URI",
    "MODEL_CACHE_DIR",
    "MAX_IMAGE_BYTES",
    "MAX_IMAGE_PIXELS",
    "DEFAULT_TOP_K",
    "CORS_ALLOW_ORIGIN",
    "AWS_ENDPOINT_URL",
    "AWS_ENDPOINT_URL_S3",
    "AWS_PROFILE",
)
_service_ids = itertools.count()


@dataclass(frozen=True)
class FakeLambdaContext:
    """Stand-in for the context object the Lambda runtime passes (cannot run here)."""

    function_name: str = "inferstack-predict"
    memory_limit_in_mb: int = 2048
    invoked_function_arn: str = (
        "arn:aws:lambda:eu-west-1:123456789012:function:inferstack-predict:live"
    )
    aws_request_id: str = "5e0c1f4a-0000-4000-8000-lambda000001"


# ----------------------------------------------------------------------------- helpers


def load_handler(monkeypatch: pytest.MonkeyPatch, **env: str) -> ModuleType:
    """Import the handler afresh (a new Lambda sandbox) with exactly this environment.

    Each instance gets its own service name, hence its own log handler bound to the stdout of
    the moment: tests importing under ``capsys`` see the init logs too.
    """
    for name in HANDLER_ENV_VARS:
        monkeypatch.delenv(name, raising=False)
    defaults = {
        "POWERTOOLS_TRACE_DISABLED": "true",
        "POWERTOOLS_SERVICE_NAME": f"inferstack-predict-test-{next(_service_ids)}",
        "POWERTOOLS_METRICS_NAMESPACE": "Inferstack",
        "LOG_LEVEL": "INFO",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "eu-west-1",
    }
    for name, value in {**defaults, **env}.items():
        monkeypatch.setenv(name, value)
    sys.modules.pop(HANDLER_MODULE, None)
    return importlib.import_module(HANDLER_MODULE)


def template(name: str) -> dict[str, Any]:
    return json.loads((EVENTS / name).read_text())


def set_header(event: dict[str, Any], name: str, value: str | None) -> None:
    """Set (or remove) a header in both maps, replacing any spelling of the same name."""
    for key in ("headers", "multiValueHeaders"):
        mapping = event.get(key)
        if mapping is None:
            continue
        for existing in [k for k in mapping if k.lower() == name.lower()]:
            del mapping[existing]
        if value is not None:
            mapping[name] = value if key == "headers" else [value]


def set_query(event: dict[str, Any], values: dict[str, list[str]] | None) -> None:
    if not values:
        event["queryStringParameters"] = None
        event["multiValueQueryStringParameters"] = None
        return
    event["queryStringParameters"] = {k: v[-1] for k, v in values.items()}
    event["multiValueQueryStringParameters"] = values


def binary_event(
    data: bytes, content_type: str | None = "image/jpeg", top_k: str | None = None
) -> dict[str, Any]:
    """A binary upload: API Gateway base64-encodes bodies of binary media types."""
    event = template("post_predict_binary.json")
    set_header(event, "Content-Type", content_type)
    set_query(event, {"top_k": [top_k]} if top_k is not None else None)
    event["body"] = base64.b64encode(data).decode("ascii")
    event["isBase64Encoded"] = True
    return event


def json_event(document: Any, top_k: str | None = None) -> dict[str, Any]:
    event = template("post_predict_json.json")
    event["body"] = document if isinstance(document, str) else json.dumps(document)
    set_query(event, {"top_k": [top_k]} if top_k is not None else None)
    return event


def image_json_event(data: bytes, top_k: str | None = None) -> dict[str, Any]:
    return json_event({"image": base64.b64encode(data).decode("ascii")}, top_k)


@dataclass
class Answer:
    status: int
    body: dict[str, Any]
    headers: dict[str, str]

    @property
    def code(self) -> str | None:
        return self.body.get("error", {}).get("code")


def invoke(handler: ModuleType, event: Any, *, allow_500: bool = False) -> Answer:
    """Call lambda_handler and check the response against the API contract."""
    response = handler.lambda_handler(event, FakeLambdaContext())
    status = response["statusCode"]
    if not allow_500:
        assert status != 500, f"a client input produced a 500: {response['body']}"
    headers = {k.lower(): v for k, v in (response.get("headers") or {}).items()}
    for key, values in (response.get("multiValueHeaders") or {}).items():
        headers[key.lower()] = values[-1]
    assert headers.get("content-type") == "application/json"
    assert response["isBase64Encoded"] is False
    body = json.loads(response["body"])
    if status >= 400:
        assert set(body) == {"error"}, body
        assert set(body["error"]) == {"code", "message"}, body
        assert body["error"]["code"] and body["error"]["message"]
    return Answer(status, body, headers)


def stdout_json(text: str) -> list[dict[str, Any]]:
    """Every stdout line that is a JSON object (logs and EMF blobs)."""
    lines = []
    for raw in text.splitlines():
        line = raw.strip()
        if line.startswith("{"):
            lines.append(json.loads(line))
    return lines


# ----------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def s3_model(mobilenet_bundle: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The fixture bundle uploaded to an in-process moto S3 bucket; yields the cache dir."""
    with pytest.MonkeyPatch.context() as mp, mock_aws():
        for name in ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_PROFILE"):
            mp.delenv(name, raising=False)
        mp.setenv("AWS_ACCESS_KEY_ID", "testing")
        mp.setenv("AWS_SECRET_ACCESS_KEY", "testing")
        mp.setenv("AWS_DEFAULT_REGION", "eu-west-1")
        s3 = boto3.client("s3", region_name="eu-west-1")
        s3.create_bucket(
            Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": "eu-west-1"}
        )
        for path in sorted(mobilenet_bundle.iterdir()):
            s3.upload_file(str(path), BUCKET, PREFIX + path.name)
        yield tmp_path_factory.mktemp("model-cache")


@pytest.fixture(scope="module")
def handler(s3_model: Path) -> Iterator[ModuleType]:
    """The handler as Lambda runs it: MODEL_URI on S3, cached under MODEL_CACHE_DIR."""
    with pytest.MonkeyPatch.context() as mp:
        module = load_handler(
            mp, MODEL_URI=f"s3://{BUCKET}/{PREFIX}", MODEL_CACHE_DIR=str(s3_model)
        )
        yield module


@pytest.fixture
def local_handler(
    mobilenet_bundle: Path, monkeypatch: pytest.MonkeyPatch
) -> Callable[..., ModuleType]:
    """make(**env) -> a fresh handler whose MODEL_URI is the bundle folder (fast init)."""

    def make(**env: str) -> ModuleType:
        return load_handler(monkeypatch, **{"MODEL_URI": str(mobilenet_bundle), **env})

    return make


@pytest.fixture(scope="module")
def parrot(imagenet_fixtures: Path) -> bytes:
    return (imagenet_fixtures / "parrot.jpg").read_bytes()


# ----------------------------------------------------------------------------- init + success


def test_init_loads_the_model_from_s3_and_caches_it(handler: ModuleType, s3_model: Path) -> None:
    classifier = handler.MODEL.classifier
    assert classifier is not None
    assert handler.MODEL.failure is None
    # The bundle was downloaded into MODEL_CACHE_DIR, not read from anywhere else.
    assert classifier.bundle.path.is_relative_to(s3_model)
    assert (classifier.bundle.path / MODEL_FILE).is_file()


def test_binary_jpeg_upload_answers_macaw(handler: ModuleType, parrot: bytes) -> None:
    event = binary_event(parrot, "image/jpeg", top_k="3")
    answer = invoke(handler, event)
    assert answer.status == 200
    body = answer.body
    assert set(body) == {"predictions", "model", "request_id", "timing_ms"}
    assert body["request_id"] == event["requestContext"]["requestId"]
    assert body["model"] == {"name": "mobilenet_v2_1.0_224_quant", "version": "1"}
    predictions = body["predictions"]
    assert len(predictions) == 3
    assert predictions[0]["label"] == "macaw"
    assert predictions[0]["index"] == 88
    assert predictions[0]["probability"] > 0.9
    probabilities = [p["probability"] for p in predictions]
    assert probabilities == sorted(probabilities, reverse=True)
    assert set(body["timing_ms"]) == {"decode", "preprocess", "infer", "total"}
    assert all(v >= 0 for v in body["timing_ms"].values())
    assert body["timing_ms"]["total"] >= body["timing_ms"]["infer"]


def test_json_body_answers_macaw_with_default_top_k(handler: ModuleType, parrot: bytes) -> None:
    answer = invoke(handler, image_json_event(parrot))
    assert answer.status == 200
    assert len(answer.body["predictions"]) == 5
    assert answer.body["predictions"][0]["label"] == "macaw"


@pytest.mark.parametrize(
    ("photo", "content_type", "labels"),
    [
        ("cat.bmp", "image/bmp", {"Egyptian cat", "tabby", "tiger cat"}),
        ("bird.bmp", "image/bmp", {"chickadee"}),
        ("grace_hopper.bmp", "application/octet-stream", {"military uniform"}),
    ],
)
def test_fixture_photos_through_the_handler(
    handler: ModuleType, imagenet_fixtures: Path, photo: str, content_type: str, labels: set[str]
) -> None:
    data = (imagenet_fixtures / photo).read_bytes()
    answer = invoke(handler, binary_event(data, content_type, top_k="1"))
    assert answer.status == 200
    assert answer.body["predictions"][0]["label"] in labels


@pytest.mark.parametrize("top_k", ["1", "20", " 7 "])
def test_top_k_bounds_are_accepted(handler: ModuleType, parrot: bytes, top_k: str) -> None:
    answer = invoke(handler, binary_event(parrot, top_k=top_k))
    assert answer.status == 200
    assert len(answer.body["predictions"]) == int(top_k)


def test_default_top_k_comes_from_the_environment(
    local_handler: Callable[..., ModuleType], parrot: bytes
) -> None:
    handler = local_handler(DEFAULT_TOP_K="2")
    answer = invoke(handler, binary_event(parrot))
    assert answer.status == 200
    assert len(answer.body["predictions"]) == 2


@pytest.mark.parametrize(
    "shape",
    [
        "upper-case header names and parameters",
        "only multiValueHeaders",
        "no content type",
        "headers null",
        "repeated equal top_k",
    ],
)
def test_headers_and_query_in_every_shape_api_gateway_sends(
    handler: ModuleType, parrot: bytes, shape: str
) -> None:
    event = binary_event(parrot, top_k="2")
    if shape == "upper-case header names and parameters":
        set_header(event, "Content-Type", None)
        event["headers"]["CONTENT-TYPE"] = "IMAGE/JPEG; charset=binary"
        event["multiValueHeaders"]["CONTENT-TYPE"] = ["IMAGE/JPEG; charset=binary"]
    elif shape == "only multiValueHeaders":
        event["headers"] = None
    elif shape == "no content type":
        set_header(event, "Content-Type", None)
    elif shape == "headers null":
        event["headers"] = None
        event["multiValueHeaders"] = None
    elif shape == "repeated equal top_k":
        set_query(event, {"top_k": ["2", "2"]})
    answer = invoke(handler, event)
    assert answer.status == 200
    assert len(answer.body["predictions"]) == 2
    assert answer.body["predictions"][0]["label"] == "macaw"


@pytest.mark.parametrize(
    "encoding", ["line-wrapped", "data URL", "url-safe", "no padding", "binary media type */*"]
)
def test_json_image_encodings(handler: ModuleType, encoding: str) -> None:
    # Byte values chosen so the base64 text has '+', '/' and padding to exercise every variant.
    data = jpeg_bytes(120, 90, seed=3)
    text = base64.b64encode(data).decode()
    if encoding == "line-wrapped":
        text = base64.encodebytes(data).decode()
    elif encoding == "data URL":
        text = "data:image/jpeg;base64," + text
    elif encoding == "url-safe":
        text = base64.urlsafe_b64encode(data).decode()
    elif encoding == "no padding":
        text = text.rstrip("=")
    event = json_event({"image": text})
    if encoding == "binary media type */*":
        # An API whose binary media types include */* base64-encodes JSON bodies too.
        event["body"] = base64.b64encode(event["body"].encode()).decode()
        event["isBase64Encoded"] = True
    answer = invoke(handler, event)
    assert answer.status == 200, answer.body
    assert len(answer.body["predictions"]) == 5


# ----------------------------------------------------------------------------- bad input


@pytest.mark.parametrize("case", image_cases(), ids=lambda c: c.name)
def test_image_corpus_as_binary_upload(handler: ModuleType, case: ImageCase) -> None:
    answer = invoke(handler, binary_event(case.data, case.content_type))
    assert answer.status == case.expected_status, answer.body
    if case.expected_status != 200:
        assert answer.code == case.code
    else:
        assert len(answer.body["predictions"]) == 5


@pytest.mark.parametrize("case", [c for c in image_cases() if c.data], ids=lambda c: c.name)
def test_image_corpus_as_json_body(handler: ModuleType, case: ImageCase) -> None:
    answer = invoke(handler, image_json_event(case.data))
    assert answer.status == case.expected_status, answer.body
    if case.expected_status != 200:
        assert answer.code == case.code


def _oversized_base64(event: dict[str, Any]) -> None:
    # Valid base64 of one byte more than the limit: refused by its length, before decoding.
    event["body"] = "A" * req.max_base64_length(DEFAULT_MAX_BYTES + 3)


def _body(value: Any, *, b64: bool = False) -> Callable[[dict[str, Any]], None]:
    def apply(event: dict[str, Any]) -> None:
        event["body"] = value
        event["isBase64Encoded"] = b64

    return apply


def _content_type(value: str) -> Callable[[dict[str, Any]], None]:
    return lambda event: set_header(event, "Content-Type", value)


def _top_k(*values: str) -> Callable[[dict[str, Any]], None]:
    return lambda event: set_query(event, {"top_k": list(values)})


def _json(document: Any) -> Callable[[dict[str, Any]], None]:
    def apply(event: dict[str, Any]) -> None:
        set_header(event, "Content-Type", "application/json")
        event["body"] = document if isinstance(document, str) else json.dumps(document)
        event["isBase64Encoded"] = False

    return apply


def _method(method: str, path: str = "/predict") -> Callable[[dict[str, Any]], None]:
    def apply(event: dict[str, Any]) -> None:
        event["httpMethod"] = event["requestContext"]["httpMethod"] = method
        event["path"] = path
        event["resource"] = event["requestContext"]["resourcePath"] = path

    return apply


# name -> (change to a valid binary JPEG upload, expected status, expected error code)
REQUEST_CASES: dict[str, tuple[Callable[[dict[str, Any]], None], int, str]] = {
    "oversized base64 body": (_oversized_base64, 413, "image_too_large"),
    "text/plain": (_content_type("text/plain"), 415, "unsupported_media_type"),
    "image/tiff": (_content_type("image/tiff"), 415, "unsupported_media_type"),
    "multipart form": (
        _content_type("multipart/form-data; boundary=x"),
        415,
        "unsupported_media_type",
    ),
    "top_k 0": (_top_k("0"), 422, "invalid_parameter"),
    "top_k 21": (_top_k("21"), 422, "invalid_parameter"),
    "top_k abc": (_top_k("abc"), 422, "invalid_parameter"),
    "top_k empty": (_top_k(""), 422, "invalid_parameter"),
    "top_k -1": (_top_k("-1"), 422, "invalid_parameter"),
    "top_k 2.5": (_top_k("2.5"), 422, "invalid_parameter"),
    "top_k huge": (_top_k("9" * 400), 422, "invalid_parameter"),
    "top_k conflicting": (_top_k("3", "4"), 422, "invalid_parameter"),
    "JSON without image": (_json({"picture": "aGk="}), 400, "invalid_request"),
    "JSON image not a string": (_json({"image": 12}), 400, "invalid_request"),
    "JSON image empty": (_json({"image": ""}), 400, "invalid_request"),
    "JSON array": (_json([1, 2]), 400, "invalid_request"),
    "JSON invalid": (_json('{"image": '), 400, "invalid_request"),
    "JSON deeply nested": (_json("[" * 100_000), 400, "invalid_request"),
    "JSON empty body": (_json(""), 400, "invalid_request"),
    "JSON invalid base64": (_json({"image": "not base64!!"}), 400, "invalid_request"),
    "JSON base64 of text": (
        _json({"image": base64.b64encode(b"hello").decode()}),
        400,
        "invalid_image",
    ),
    "invalid base64 body": (_body("%%%% not base64 %%%%", b64=True), 400, "invalid_request"),
    "base64 with bad length": (_body("QUJDR", b64=True), 400, "invalid_request"),
    "empty body": (_body("", b64=True), 400, "invalid_image"),
    "missing body": (_body(None), 400, "invalid_request"),
    "binary body not base64-encoded": (_body("\ufffd\ufffdJFIF garbage"), 400, "invalid_request"),
    "text body sent as an image": (_body("just some text"), 400, "invalid_image"),
    "GET /predict": (_method("GET"), 405, "method_not_allowed"),
    "PUT /predict": (_method("PUT"), 405, "method_not_allowed"),
    "POST /other": (_method("POST", "/other"), 404, "not_found"),
}


@pytest.mark.parametrize("name", list(REQUEST_CASES))
def test_bad_requests_get_their_4xx(handler: ModuleType, name: str) -> None:
    change, status, code = REQUEST_CASES[name]
    event = binary_event(jpeg_bytes(64, 48), "image/jpeg")
    change(event)
    answer = invoke(handler, event)
    assert (answer.status, answer.code) == (status, code), answer.body


def test_method_not_allowed_names_the_allowed_method(handler: ModuleType) -> None:
    event = template("get_predict.json")
    answer = invoke(handler, event)
    assert answer.status == 405
    assert answer.headers["allow"] == "POST"


@pytest.mark.parametrize("event", [{}, {"Records": []}, [], "POST /predict", None])
def test_events_that_are_not_from_api_gateway(handler: ModuleType, event: Any) -> None:
    answer = invoke(handler, event)
    assert (answer.status, answer.code) == (400, "invalid_request")


def test_pixel_and_byte_limits_come_from_the_environment(
    local_handler: Callable[..., ModuleType],
) -> None:
    handler = local_handler(MAX_IMAGE_BYTES="4000", MAX_IMAGE_PIXELS="10000")
    small = jpeg_bytes(64, 48)  # 3072 px, well under 4000 bytes
    assert invoke(handler, binary_event(small)).status == 200
    too_many_pixels = io.BytesIO()
    Image.new("RGB", (200, 60), "white").save(too_many_pixels, "PNG")  # 12000 px, tiny file
    answer = invoke(handler, binary_event(too_many_pixels.getvalue(), "image/png"))
    assert (answer.status, answer.code) == (413, "image_too_large")
    big = jpeg_bytes(400, 300, quality=95)
    assert len(big) > 4000
    for event in (binary_event(big), image_json_event(big)):
        answer = invoke(handler, event)
        assert (answer.status, answer.code) == (413, "image_too_large")


# ----------------------------------------------------------------------------- model unavailable


def test_model_uri_unset_answers_503_and_logs_the_init_error(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    handler = load_handler(monkeypatch)  # the import itself must not raise
    init_logs = [line for line in stdout_json(capsys.readouterr().out) if "level" in line]
    assert any(
        line["level"] == "ERROR" and "model load failed" in line["message"] for line in init_logs
    )
    for _ in range(2):  # every request, not only the first
        answer = invoke(handler, binary_event(jpeg_bytes(64, 48)))
        assert (answer.status, answer.code) == (503, "model_unavailable")
        assert "MODEL_URI is not set" in answer.body["error"]["message"]


def test_unreadable_bucket_answers_503_and_keeps_the_cause_out_of_the_answer(
    s3_model: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    handler = load_handler(
        monkeypatch, MODEL_URI="s3://no-such-bucket-here/models/x/", MODEL_CACHE_DIR=str(s3_model)
    )
    logs = stdout_json(capsys.readouterr().out)
    failure = next(line for line in logs if line.get("message", "").startswith("model load"))
    assert failure["level"] == "ERROR"
    assert "NoSuchBucket" in failure["exception"]  # the traceback is in the log line
    answer = invoke(handler, image_json_event(jpeg_bytes(64, 48)))
    assert (answer.status, answer.code) == (503, "model_unavailable")
    assert "could not be loaded" in answer.body["error"]["message"]
    assert "no-such-bucket-here" not in answer.body["error"]["message"]


def test_a_bundle_other_than_the_deployed_one_answers_503_for_good(
    mobilenet_bundle: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """MODEL_SHA256 (set by Terraform from the bundle it uploaded) pins the model: a bundle
    whose model.json declares another one is refused, and that is not retried."""
    deployed = json.loads((mobilenet_bundle / "model.json").read_text())["sha256"]
    assert (
        invoke(
            load_handler(monkeypatch, MODEL_URI=str(mobilenet_bundle), MODEL_SHA256=deployed),
            binary_event(jpeg_bytes(64, 48)),
        ).status
        == 200
    )
    capsys.readouterr()

    handler = load_handler(monkeypatch, MODEL_URI=str(mobilenet_bundle), MODEL_SHA256="a" * 64)
    failure = next(
        line
        for line in stdout_json(capsys.readouterr().out)
        if line.get("message", "").startswith("model load")
    )
    assert "expects" + " " + "a" * 64 in failure["exception"]
    assert failure["retry"] == "never"
    answer = invoke(handler, binary_event(jpeg_bytes(64, 48)))
    assert (answer.status, answer.code) == (503, "model_unavailable")
    assert "integrity check" in answer.body["error"]["message"]


def test_a_malformed_model_sha256_is_a_configuration_error(
    mobilenet_bundle: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    handler = load_handler(monkeypatch, MODEL_URI=str(mobilenet_bundle), MODEL_SHA256="abc")
    answer = invoke(handler, binary_event(jpeg_bytes(64, 48)))
    assert (answer.status, answer.code) == (503, "model_unavailable")
    assert "MODEL_SHA256" in answer.body["error"]["message"]


def test_a_transient_load_failure_is_retried(
    mobilenet_bundle: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    missing = tmp_path / "bundle"  # not there yet at init
    handler = load_handler(monkeypatch, MODEL_URI=str(missing))
    clock = [1000.0]
    handler.MODEL._clock = lambda: clock[0]
    handler.MODEL.failure.failed_at = clock[0]
    answer = invoke(handler, binary_event(jpeg_bytes(64, 48)))
    assert answer.status == 503

    missing.symlink_to(mobilenet_bundle, target_is_directory=True)
    clock[0] += 1.0  # too soon: no reload yet
    assert invoke(handler, binary_event(jpeg_bytes(64, 48))).status == 503
    clock[0] += handler.MODEL._retry_interval_s
    assert invoke(handler, binary_event(jpeg_bytes(64, 48))).status == 200


def test_a_bundle_failing_its_integrity_check_is_refused(
    mobilenet_bundle: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    tampered = tmp_path / "tampered"
    tampered.mkdir()
    for path in mobilenet_bundle.iterdir():
        (tampered / path.name).write_bytes(path.read_bytes())
    model = tampered / MODEL_FILE
    model.write_bytes(model.read_bytes() + b"\0")
    handler = load_handler(monkeypatch, MODEL_URI=str(tampered))
    assert handler.MODEL.failure is not None and handler.MODEL.failure.permanent
    answer = invoke(handler, binary_event(jpeg_bytes(64, 48)))
    assert (answer.status, answer.code) == (503, "model_unavailable")
    assert "integrity" in answer.body["error"]["message"]


@pytest.mark.parametrize(
    "env", [{"DEFAULT_TOP_K": "50"}, {"DEFAULT_TOP_K": "five"}, {"MAX_IMAGE_BYTES": "0"}]
)
def test_bad_settings_answer_503(
    local_handler: Callable[..., ModuleType], env: dict[str, str]
) -> None:
    handler = local_handler(**env)
    answer = invoke(handler, binary_event(jpeg_bytes(64, 48)))
    assert (answer.status, answer.code) == (503, "model_unavailable")
    assert "misconfigured" in answer.body["error"]["message"]


# ----------------------------------------------------------------------------- telemetry


def test_emf_metrics_are_printed(
    local_handler: Callable[..., ModuleType], parrot: bytes, capsys: pytest.CaptureFixture[str]
) -> None:
    handler = local_handler()
    cold_start.reset_cold_start_flag()
    capsys.readouterr()
    assert invoke(handler, binary_event(parrot)).status == 200
    assert invoke(handler, binary_event(parrot, top_k="0")).status == 422
    blobs = [line for line in stdout_json(capsys.readouterr().out) if "_aws" in line]

    emitted: dict[str, list[list[str]]] = {}
    for blob in blobs:
        for directive in blob["_aws"]["CloudWatchMetrics"]:
            assert directive["Namespace"] == "Inferstack"
            for metric in directive["Metrics"]:
                emitted.setdefault(metric["Name"], []).extend(directive["Dimensions"])
                assert metric["Name"] in blob  # the value sits beside the directive
    # Each metric for the whole service (what the alarms watch) and by model, in one document.
    by_model = ["service", telemetry.DIMENSION_MODEL]
    for name in (
        telemetry.METRIC_PREDICTIONS,
        telemetry.METRIC_DECODE_MS,
        telemetry.METRIC_PREPROCESS_MS,
        telemetry.METRIC_INFER_MS,
        telemetry.METRIC_TOTAL_MS,
        telemetry.METRIC_IMAGE_BYTES,
        telemetry.METRIC_TOP_PROBABILITY,
    ):
        assert emitted[name] == [["service"], by_model], name
    assert emitted[telemetry.METRIC_COLD_START] == [["function_name", "service"]]
    assert sorted(emitted[telemetry.METRIC_ERRORS]) == [
        ["service"],
        ["service", "ErrorCode"],
        by_model,
    ]
    sha = handler.MODEL.classifier.bundle.sha256
    assert {b[telemetry.DIMENSION_MODEL] for b in blobs if telemetry.DIMENSION_MODEL in b} == {
        sha[:12]
    }
    by_code = next(b for b in blobs if telemetry.DIMENSION_ERROR_CODE in b)
    assert by_code[telemetry.DIMENSION_ERROR_CODE] == "invalid_parameter"
    # Cold start is counted once per sandbox, not per request.
    assert sum(telemetry.METRIC_COLD_START in b for b in blobs) == 1


def test_logs_are_json_with_the_api_gateway_request_id(
    local_handler: Callable[..., ModuleType], parrot: bytes, capsys: pytest.CaptureFixture[str]
) -> None:
    handler = local_handler()
    capsys.readouterr()
    ok_event = binary_event(parrot)
    bad_event = binary_event(parrot, content_type="text/plain")
    bad_event["requestContext"]["requestId"] = "11111111-2222-4333-8444-555555555555"
    invoke(handler, ok_event)
    invoke(handler, bad_event)
    out = capsys.readouterr().out
    logs = [line for line in stdout_json(out) if "level" in line]
    assert len([line for line in out.splitlines() if line.strip()]) == len(stdout_json(out))
    served = next(line for line in logs if line["message"] == "prediction served")
    assert served["correlation_id"] == ok_event["requestContext"]["requestId"]
    assert served["function_request_id"] == FakeLambdaContext.aws_request_id
    assert served["top_label"] == "macaw"
    rejected = next(line for line in logs if line["message"] == "request rejected")
    assert rejected["correlation_id"] == "11111111-2222-4333-8444-555555555555"
    assert rejected["error_code"] == "unsupported_media_type"
    assert rejected["status"] == 415


class ExplodingClassifier:
    """Test double: a classifier with a bug (an exception no client input can cause)."""

    def __init__(self, real: Any) -> None:
        self.bundle = real.bundle
        self.draft_size = real.draft_size
        self.input_spec = real.input_spec

    def classify_array(self, pixels: Any, *, top_k: int) -> Any:
        raise RuntimeError("simulated bug")


def test_an_unexpected_exception_is_the_only_500_and_is_logged(
    local_handler: Callable[..., ModuleType], capsys: pytest.CaptureFixture[str]
) -> None:
    handler = local_handler()
    handler.MODEL.classifier = ExplodingClassifier(handler.MODEL.classifier)
    capsys.readouterr()
    answer = invoke(handler, binary_event(jpeg_bytes(64, 48)), allow_500=True)
    assert (answer.status, answer.code) == (500, "internal_error")
    assert "simulated bug" not in answer.body["error"]["message"]
    logs = [line for line in stdout_json(capsys.readouterr().out) if "level" in line]
    logged = next(line for line in logs if line["message"].startswith("unhandled error"))
    assert "RuntimeError: simulated bug" in logged["exception"]


def test_cors_headers_when_an_origin_is_configured(
    local_handler: Callable[..., ModuleType], parrot: bytes
) -> None:
    handler = local_handler(CORS_ALLOW_ORIGIN="https://app.example.com")
    event = binary_event(parrot)
    set_header(event, "Origin", "https://app.example.com")
    answer = invoke(handler, event)
    assert answer.status == 200
    assert answer.headers["access-control-allow-origin"] == "https://app.example.com"


# ----------------------------------------------------------------------------- request parsing


@pytest.mark.parametrize(
    ("values", "expected"), [([], 5), (["1"], 1), (["20"], 20), (["07"], 7), (["3", "3"], 3)]
)
def test_parse_top_k(values: list[str], expected: int) -> None:
    assert req.parse_top_k(values, 5) == expected


def test_header_lookup_is_case_insensitive_and_prefers_headers() -> None:
    event = {
        "headers": {"content-TYPE": "image/png"},
        "multiValueHeaders": {"Content-Type": ["image/jpeg", "image/gif"]},
    }
    assert req.header(event, "Content-Type") == "image/png"
    assert req.header({"multiValueHeaders": event["multiValueHeaders"]}, "content-type") == (
        "image/gif"
    )
    assert req.header({"headers": None, "multiValueHeaders": None}, "content-type") is None


def test_base64_length_is_checked_before_decoding() -> None:
    limit = 300
    exact = base64.b64encode(b"\xff" * limit).decode()
    assert req.decode_base64(exact, max_bytes=limit, what="x") == b"\xff" * limit
    over = base64.b64encode(b"\xff" * (limit + 1)).decode()
    with pytest.raises(ImageTooLarge):
        req.decode_base64(over, max_bytes=limit, what="x")
    # Too long to be under the limit even though it is not base64 at all: refused unread.
    with pytest.raises(ImageTooLarge):
        req.decode_base64("!" * (req.max_base64_length(limit) + 4), max_bytes=limit, what="x")


def test_base64_variants_decode_alike_and_invalid_text_is_refused() -> None:
    """The one-pass path for what API Gateway sends and the tolerant path give the same
    bytes, and text that is not base64 is refused whichever path sees it first."""
    data = bytes(range(256)) * 3 + b"\xfb\xff"  # '+', '/' and padding in the text
    text = base64.b64encode(data).decode()
    variants = [
        text,
        "\n".join(text[i : i + 76] for i in range(0, len(text), 76)),
        base64.urlsafe_b64encode(data).decode(),
        text.rstrip("="),
    ]
    for variant in variants:
        assert req.decode_base64(variant, max_bytes=len(data), what="x") == data
    for invalid in (text[:-4] + "!!==", text + "=", text[:10] + "=" + text[11:]):
        with pytest.raises(InvalidRequest):
            req.decode_base64(invalid, max_bytes=len(data) + 10, what="x")
    with pytest.raises(ImageTooLarge):
        req.decode_base64(text, max_bytes=len(data) - 1, what="x")


def test_event_templates_are_api_gateway_rest_proxy_events() -> None:
    for path in sorted(EVENTS.glob("*.json")):
        event = json.loads(path.read_text())
        expected = {
            "resource",
            "path",
            "httpMethod",
            "headers",
            "multiValueHeaders",
            "queryStringParameters",
            "multiValueQueryStringParameters",
            "pathParameters",
            "stageVariables",
            "requestContext",
            "body",
            "isBase64Encoded",
        }
        assert set(event) == expected, path.name
        assert event["requestContext"]["httpMethod"] == event["httpMethod"], path.name
        assert event["requestContext"]["requestId"], path.name


# ----------------------------------------------------------------------------- tracing (X-Ray)

TRACED_CHILD = r"""
import base64, json, os, sys
from inferstack_predict import handler  # init runs outside any segment, as in Lambda

# Lambda sets the trace header per invocation, after the init.
os.environ["_X_AMZN_TRACE_ID"] = (
    "Root=1-6740e5a1-5c1f0e2b3d4a5b6c7d8e9f01;Parent=53995c3f42cd8ad8;Sampled=1"
)

class Context:
    function_name = "inferstack-predict"
    memory_limit_in_mb = 2048
    invoked_function_arn = "arn:aws:lambda:eu-west-1:123456789012:function:inferstack-predict"
    aws_request_id = "traced-request"

with open(sys.argv[1], encoding="utf-8") as fh:
    event = json.load(fh)
response = handler.lambda_handler(event, Context())
sys.__stdout__.write("STATUS %d\n" % response["statusCode"])
"""


def _segment_names(document: dict[str, Any]) -> Iterator[str]:
    yield document.get("name", "")
    for child in document.get("subsegments", []):
        yield from _segment_names(child)


def test_tracing_enabled_as_in_lambda_sends_decode_and_infer_subsegments(
    mobilenet_bundle: Path, parrot: bytes, tmp_path: Path
) -> None:
    """The real X-Ray SDK (in a child process: it patches botocore globally) with a UDP
    socket standing in for the X-Ray daemon."""
    import os  # noqa: PLC0415
    import socket  # noqa: PLC0415
    import subprocess  # noqa: PLC0415

    daemon = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    daemon.bind(("127.0.0.1", 0))
    daemon.settimeout(5)
    port = daemon.getsockname()[1]
    event_path = tmp_path / "event.json"
    event_path.write_text(json.dumps(binary_event(parrot)))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("POWERTOOLS_", "AWS_"))}
    env.update(
        {
            "LAMBDA_TASK_ROOT": str(tmp_path),
            "AWS_LAMBDA_FUNCTION_NAME": "inferstack-predict",
            "AWS_XRAY_CONTEXT_MISSING": "LOG_ERROR",
            "AWS_XRAY_DAEMON_ADDRESS": f"127.0.0.1:{port}",
            "AWS_DEFAULT_REGION": "eu-west-1",
            "MODEL_URI": str(mobilenet_bundle),
            "MODEL_CACHE_DIR": str(tmp_path / "cache"),
        }
    )
    proc = subprocess.run(
        [sys.executable, "-c", TRACED_CHILD, str(event_path)],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "STATUS 200" in proc.stdout, proc.stdout[-3000:]

    expected = {"## lambda_handler", "decode", "preprocess", "infer"}
    names: set[str] = set()
    with contextlib.suppress(TimeoutError):
        while not expected <= names:
            datagram = daemon.recv(65536).decode()
            header, _, body = datagram.partition("\n")
            assert json.loads(header)["format"] == "json"
            names.update(_segment_names(json.loads(body)))
    daemon.close()
    assert expected <= names, names


# ----------------------------------------------------------------------------- model identity


def test_every_answer_names_the_model_that_served_it(
    local_handler: Callable[..., ModuleType], parrot: bytes
) -> None:
    handler = local_handler()
    bundle = handler.MODEL.classifier.bundle
    expected = f"{bundle.name}/{bundle.version}/{bundle.sha256[:12]}"
    header = telemetry.MODEL_HEADER.lower()
    for event in (binary_event(parrot), binary_event(parrot, top_k="0"), json_event("{")):
        assert invoke(handler, event).headers[header] == expected
    response = handler.lambda_handler({"not": "api gateway"}, FakeLambdaContext())
    assert response["headers"][telemetry.MODEL_HEADER] == expected


def test_an_unloaded_model_is_named_by_the_deployments_pin(
    local_handler: Callable[..., ModuleType], capsys: pytest.CaptureFixture[str]
) -> None:
    pin = "ab" * 32
    handler = local_handler(MODEL_SHA256=pin)  # the bundle declares another sha256: refused
    capsys.readouterr()
    answer = invoke(handler, binary_event(jpeg_bytes(64, 48)))
    assert (answer.status, answer.code) == (503, "model_unavailable")
    assert answer.headers[telemetry.MODEL_HEADER.lower()] == f"-/-/{pin[:12]}"
    blobs = [line for line in stdout_json(capsys.readouterr().out) if "_aws" in line]
    assert any(b.get(telemetry.DIMENSION_MODEL) == pin[:12] for b in blobs)
