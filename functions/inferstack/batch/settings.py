"""Batch settings read from the environment (the dispatcher's and the submit command's)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from inferstack.batch.naming import normalize_prefix
from inferstack.batch.sharding import validate

DEFAULT_IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif")
DEFAULT_IMAGES_PER_CHILD = 500
DEFAULT_MAX_ARRAY_SIZE = 10_000
# A claim older than this is taken over: longer than the longest Lambda run (900 s).
DEFAULT_LEASE_SECONDS = 900


class SettingsError(ValueError):
    """A missing or invalid setting (a deployment error, not a transient fault)."""


def _int(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        return int(raw)
    except ValueError as exc:
        raise SettingsError(f"{name} must be an integer, got {raw!r}") from exc


def parse_suffixes(raw: str | None) -> tuple[str, ...]:
    if raw is None or not raw.strip():
        return DEFAULT_IMAGE_SUFFIXES
    suffixes = []
    for raw_part in raw.split(","):
        part = raw_part.strip().lower()
        if part:
            suffixes.append(part if part.startswith(".") else f".{part}")
    return tuple(suffixes)


@dataclass(frozen=True)
class BatchSettings:
    bucket: str
    job_queue: str
    job_definition: str
    input_prefix: str = "input/"
    output_prefix: str = "output/"
    manifest_prefix: str = "manifests/"
    image_suffixes: tuple[str, ...] = DEFAULT_IMAGE_SUFFIXES
    images_per_child: int = DEFAULT_IMAGES_PER_CHILD
    max_array_size: int = DEFAULT_MAX_ARRAY_SIZE
    lease_seconds: int = DEFAULT_LEASE_SECONDS

    def __post_init__(self) -> None:
        try:
            validate(self.images_per_child, self.max_array_size)
        except ValueError as exc:
            raise SettingsError(str(exc)) from exc

    def has_image_suffix(self, key: str) -> bool:
        """An image suffix (case-insensitive), not a folder placeholder."""
        return not key.endswith("/") and key.lower().endswith(self.image_suffixes)

    def is_image_key(self, key: str) -> bool:
        """Under the input prefix and an image suffix: what the dispatcher accepts."""
        return key.startswith(self.input_prefix) and self.has_image_suffix(key)

    @classmethod
    def from_env(
        cls, env: Mapping[str, str] | None = None, *, require_jobs: bool = True, **overrides: object
    ) -> BatchSettings:
        """Settings from the environment; keyword overrides (CLI options) win when not None."""
        env = os.environ if env is None else env
        values: dict[str, object] = {
            "bucket": env.get("DATA_BUCKET", ""),
            "job_queue": env.get("JOB_QUEUE", ""),
            "job_definition": env.get("JOB_DEFINITION", ""),
            "input_prefix": normalize_prefix(env.get("INPUT_PREFIX", "input/")),
            "output_prefix": normalize_prefix(env.get("OUTPUT_PREFIX", "output/")),
            "manifest_prefix": normalize_prefix(env.get("MANIFEST_PREFIX", "manifests/")),
            "image_suffixes": parse_suffixes(env.get("IMAGE_SUFFIXES")),
            "images_per_child": _int(env, "IMAGES_PER_CHILD", DEFAULT_IMAGES_PER_CHILD),
            "max_array_size": _int(env, "MAX_ARRAY_SIZE", DEFAULT_MAX_ARRAY_SIZE),
            "lease_seconds": _int(env, "SUBMIT_LEASE_SECONDS", DEFAULT_LEASE_SECONDS),
        }
        values.update({k: v for k, v in overrides.items() if v is not None})
        required = ["bucket", "job_queue", "job_definition"] if require_jobs else ["bucket"]
        missing = [name for name in required if not values[name]]
        if missing:
            names = {"bucket": "DATA_BUCKET", "job_queue": "JOB_QUEUE"}
            env_names = [names.get(m, "JOB_DEFINITION") for m in missing]
            raise SettingsError(f"missing settings: {', '.join(env_names)}")
        return cls(**values)  # type: ignore[arg-type]
