"""One list of image content types for API Gateway and the real-time function.

API Gateway base64-encodes only the bodies whose Content-Type is one of the API's binary media
types and passes every other body as text, which mangles image bytes. So the handler accepts
exactly the API's binary media types (``BINARY_MEDIA_TYPES``, set by modules/realtime_api from
``api.binary_media_types``) plus JSON, and its fallback list (no variable: tests, benchmarks) is
the module's default, read here from the module with the project's HCL reader.
"""

from __future__ import annotations

import base64
import json
import re
from pathlib import Path
from typing import Any

import pytest
from inferstack.errors import InvalidRequest, UnsupportedMediaType
from inferstack_predict import request as req
from inferstack_predict.config import ConfigError, Settings
from tfsource import docs

REPO = Path(__file__).resolve().parents[2]
MODULE = REPO / "modules" / "realtime_api"
EVENTS = Path(__file__).resolve().parent / "events"
PNG_1PX = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="
)


def _variable(module: Path, name: str) -> Any:
    return next(
        b for b in docs.module_blocks(module) if b.kind == "variable" and b.labels[0] == name
    )


def module_default_binary_media_types() -> tuple[str, ...]:
    """The default of api.binary_media_types in modules/realtime_api/variables.tf."""
    type_source = _variable(MODULE, "api").attributes["type"]
    match = re.search(
        r"binary_media_types\s*=\s*optional\(\s*list\(string\)\s*,\s*(\[[^\]]*\])\s*\)",
        type_source,
    )
    assert match, "api.binary_media_types has no default list in modules/realtime_api"
    return tuple(json.loads(match.group(1)))


def binary_event(data: bytes, content_type: str) -> dict[str, Any]:
    event = json.loads((EVENTS / "post_predict_binary.json").read_text())
    event["headers"] = {"Content-Type": content_type}
    event["multiValueHeaders"] = {"Content-Type": [content_type]}
    event["queryStringParameters"] = event["multiValueQueryStringParameters"] = None
    event["body"] = base64.b64encode(data).decode("ascii")
    event["isBase64Encoded"] = True
    return event


# ----------------------------------------------------------------------------- one list


def test_the_function_default_is_the_module_default() -> None:
    assert module_default_binary_media_types() == req.DEFAULT_IMAGE_CONTENT_TYPES


# ----------------------------------------------------------------------------- settings


def test_binary_media_types_from_the_environment() -> None:
    settings = Settings.from_env({"BINARY_MEDIA_TYPES": "image/png, Image/JPEG;x=1,image/png"})
    assert settings.image_types == ("image/png", "image/jpeg")
    assert Settings.from_env({"BINARY_MEDIA_TYPES": ""}).image_types == ()
    assert Settings.from_env({}).image_types == req.DEFAULT_IMAGE_CONTENT_TYPES


@pytest.mark.parametrize(
    "value", ["image/*", "*/*", "application/json", "application/x+json", "jpeg"]
)
def test_binary_media_types_must_be_exact_non_json_types(value: str) -> None:
    with pytest.raises(ConfigError, match="BINARY_MEDIA_TYPES"):
        Settings.from_env({"BINARY_MEDIA_TYPES": value})


# ----------------------------------------------------------------------------- requests


@pytest.mark.parametrize(
    "content_type", ["image/jpg", "image/pjpeg", "image/x-ms-bmp", "image/png"]
)
def test_every_default_type_is_accepted(content_type: str) -> None:
    parsed = req.parse_request(binary_event(PNG_1PX, content_type), max_bytes=1024, default_top_k=5)
    assert (parsed.image, parsed.content_type) == (PNG_1PX, content_type)


def test_a_type_the_api_does_not_list_is_refused() -> None:
    """image/jpg is in no list here: API Gateway would have passed it as text."""
    event = binary_event(PNG_1PX, "image/jpg")
    with pytest.raises(UnsupportedMediaType) as refused:
        req.parse_request(event, max_bytes=1024, default_top_k=5, image_types=("image/png",))
    assert "image/png or application/json" in refused.value.message
    parsed = req.parse_request(event, max_bytes=1024, default_top_k=5, image_types=("image/jpg",))
    assert parsed.image == PNG_1PX


def test_a_json_only_api_accepts_json_only() -> None:
    with pytest.raises(UnsupportedMediaType) as refused:
        req.parse_request(
            binary_event(PNG_1PX, "image/png"), max_bytes=1024, default_top_k=5, image_types=()
        )
    assert refused.value.message.endswith('send application/json with {"image": "<base64>"}')
    event = json.loads((EVENTS / "post_predict_json.json").read_text())
    event["body"] = json.dumps({"image": base64.b64encode(PNG_1PX).decode()})
    event["isBase64Encoded"] = False
    parsed = req.parse_request(event, max_bytes=1024, default_top_k=5, image_types=())
    assert (parsed.image, parsed.body_format) == (PNG_1PX, "json")


def test_no_body_names_the_accepted_types() -> None:
    event = binary_event(PNG_1PX, "image/png")
    event["body"] = None
    with pytest.raises(InvalidRequest, match=r"send image/png or application/json"):
        req.parse_request(event, max_bytes=1024, default_top_k=5, image_types=("image/png",))
