"""Settings of the real-time function, read once from the Lambda environment."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from inferstack.bundle import normalize_sha256
from inferstack.images import DEFAULT_MAX_BYTES, DEFAULT_MAX_PIXELS, ImageLimits

from inferstack_predict.request import (
    DEFAULT_IMAGE_CONTENT_TYPES,
    JSON_CONTENT_TYPE,
    MAX_TOP_K,
    MIN_TOP_K,
    media_type,
)

DEFAULT_TOP_K = 5


class ConfigError(ValueError):
    """An environment variable with a value the function cannot run with."""


@dataclass(frozen=True)
class Settings:
    model_uri: str  # "" when MODEL_URI is unset: every request then answers 503
    model_sha256: str | None  # MODEL_SHA256: the model the deployment pins (None: no pin)
    cache_dir: Path | None
    limits: ImageLimits
    default_top_k: int
    # Content types of raw image bodies: BINARY_MEDIA_TYPES, the API's binary media types.
    image_types: tuple[str, ...] = DEFAULT_IMAGE_CONTENT_TYPES

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        cache = env.get("MODEL_CACHE_DIR", "").strip()
        default_top_k = _int(env, "DEFAULT_TOP_K", DEFAULT_TOP_K, minimum=MIN_TOP_K)
        if default_top_k > MAX_TOP_K:
            raise ConfigError(f"DEFAULT_TOP_K must be from {MIN_TOP_K} to {MAX_TOP_K}")
        try:
            model_sha256 = normalize_sha256(env.get("MODEL_SHA256"))
        except ValueError as exc:
            raise ConfigError(f"MODEL_SHA256: {exc}") from exc
        return cls(
            model_uri=env.get("MODEL_URI", "").strip(),
            model_sha256=model_sha256,
            cache_dir=Path(cache) if cache else None,
            limits=ImageLimits(
                max_bytes=_int(env, "MAX_IMAGE_BYTES", DEFAULT_MAX_BYTES, minimum=1),
                max_pixels=_int(env, "MAX_IMAGE_PIXELS", DEFAULT_MAX_PIXELS, minimum=1),
            ),
            default_top_k=default_top_k,
            image_types=_image_types(env),
        )


def _image_types(env: Mapping[str, str]) -> tuple[str, ...]:
    """BINARY_MEDIA_TYPES (comma-separated, as Terraform sets it from the API); "" = JSON only.

    Unset (the function run outside a deployment): the default list, which is also the
    realtime_api module's default. Wildcards are refused: API Gateway would base64-encode a
    different set of types than the handler could name.
    """
    text = env.get("BINARY_MEDIA_TYPES")
    if text is None:
        return DEFAULT_IMAGE_CONTENT_TYPES
    types = tuple(dict.fromkeys(media_type(t) for t in text.split(",") if t.strip()))
    for value in types:
        kind, _, subtype = value.partition("/")
        if not kind or not subtype or "*" in value:
            raise ConfigError(f"BINARY_MEDIA_TYPES: {value!r} is not an exact media type")
        if value == JSON_CONTENT_TYPE or value.endswith("+json"):
            raise ConfigError(f"BINARY_MEDIA_TYPES: {value!r} must reach the function as text")
    return types


def _int(env: Mapping[str, str], name: str, default: int, *, minimum: int) -> int:
    text = env.get(name, "").strip()
    if not text:
        return default
    try:
        value = int(text)
    except ValueError as exc:
        raise ConfigError(f"{name} must be an integer, got {text!r}") from exc
    if value < minimum:
        raise ConfigError(f"{name} must be >= {minimum}, got {value}")
    return value
