"""S3 helpers: URI parsing and a client factory with retries.

boto3 itself honours ``AWS_ENDPOINT_URL`` (and ``AWS_ENDPOINT_URL_S3``); the factory passes it
explicitly as well so that code paths creating clients before the environment is final (tests,
the local runner) still reach the emulator.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

S3_SCHEME = "s3://"

# Standard retry mode: exponential backoff with jitter on throttling and 5xx, the same on
# every client so a transient S3 error during a cold start does not fail the init.
DEFAULT_MAX_ATTEMPTS = 5


@dataclass(frozen=True)
class S3Location:
    bucket: str
    key: str

    @property
    def uri(self) -> str:
        return f"{S3_SCHEME}{self.bucket}/{self.key}"

    def child(self, name: str) -> S3Location:
        """Object ``name`` under this location as a prefix (``a/b`` + ``c`` is ``a/b/c``)."""
        prefix = self.key.rstrip("/")
        return S3Location(self.bucket, f"{prefix}/{name}" if prefix else name)


def is_s3_uri(uri: str) -> bool:
    return uri.startswith(S3_SCHEME)


def parse_s3_uri(uri: str) -> S3Location:
    """Split ``s3://bucket/key/or/prefix`` into bucket and key (key may be empty)."""
    if not is_s3_uri(uri):
        raise ValueError(f"not an s3:// URI: {uri!r}")
    rest = uri[len(S3_SCHEME) :]
    bucket, _, key = rest.partition("/")
    if not bucket:
        raise ValueError(f"s3 URI has no bucket: {uri!r}")
    return S3Location(bucket, key)


def endpoint_url(service: str = "s3") -> str | None:
    """The endpoint override from the environment, service-specific first, as boto3 reads it."""
    specific = os.environ.get(f"AWS_ENDPOINT_URL_{service.upper().replace('-', '_')}")
    return specific or os.environ.get("AWS_ENDPOINT_URL") or None


def make_client(service: str = "s3", *, region_name: str | None = None, **kwargs: Any) -> Any:
    """A boto3 client with standard retries that honours AWS_ENDPOINT_URL."""
    import boto3  # noqa: PLC0415  (kept lazy: the CLI's --help must not pay for boto3)
    from botocore.config import Config  # noqa: PLC0415

    config = Config(
        retries={"max_attempts": DEFAULT_MAX_ATTEMPTS, "mode": "standard"},
        # Path-style addressing works with every emulator and with real S3.
        s3={"addressing_style": "path"} if endpoint_url(service) else None,
    )
    kwargs.setdefault("endpoint_url", endpoint_url(service))
    return boto3.client(service, region_name=region_name, config=config, **kwargs)


def s3_client(**kwargs: Any) -> Any:
    return make_client("s3", **kwargs)


__all__ = ["S3Location", "endpoint_url", "is_s3_uri", "make_client", "parse_s3_uri", "s3_client"]
