"""boto3 clients for batch: standard retries with more attempts than the real-time path.

A batch worker can afford to wait: 8 attempts in all (the first + 7 retries) in botocore's
standard mode (exponential backoff with full jitter, each wait capped at 20 s) ride out S3
throttling (503 SlowDown) and brief 5xx spells that would otherwise fail a whole shard.
The endpoint honours AWS_ENDPOINT_URL.
"""

from __future__ import annotations

import io
import os
import re
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import quote, urlsplit

from inferstack.s3 import endpoint_url

BATCH_MAX_ATTEMPTS = 8


def make_client(service: str, *, max_pool_connections: int = 10, **kwargs: Any) -> Any:
    import boto3  # noqa: PLC0415  (lazy: the CLI's --help must not pay for boto3)
    from botocore.config import Config  # noqa: PLC0415

    attempts = int(os.environ.get("INFERSTACK_S3_MAX_ATTEMPTS", BATCH_MAX_ATTEMPTS))
    endpoint = kwargs.pop("endpoint_url", None) or endpoint_url(service)
    config = Config(
        # total_max_attempts counts the first attempt; botocore's max_attempts does not.
        retries={"total_max_attempts": attempts, "mode": "standard"},
        max_pool_connections=max_pool_connections,
        connect_timeout=10,
        read_timeout=60,
        s3={"addressing_style": "path"} if endpoint and service == "s3" else None,
    )
    return boto3.client(service, endpoint_url=endpoint, config=config, **kwargs)


# --------------------------------------------------------------------------- object store
#
# The worker's per-image S3 traffic (one GET per input, one PUT per output) goes through this
# small interface, with two implementations:
#
# - ``BotocoreStore``: boto3's client (the fallback, and what tests with in-process moto use);
# - ``CrtStore``: the AWS Common Runtime's S3 client (awscrt, C): ~0.3 ms of process CPU per
#   GET or PUT against ~1.1 ms for botocore (measured, 2 vCPUs; boto3's own CRT transfer
#   manager builds every request through botocore first and costs ~1.1-1.4 ms).
#
# Both raise botocore's exceptions, so the worker's error handling does not depend on which
# one runs: an HTTP error answer is a ``ClientError`` with the S3 error code (NoSuchKey,
# AccessDenied, SlowDown...), no answer after the retries a ``BotoCoreError``. Both retry
# throttling and 5xx with the same number of attempts (INFERSTACK_S3_MAX_ATTEMPTS).

S3_CLIENT_ENV = "INFERSTACK_S3_CLIENT"  # auto (default) | crt | botocore


@dataclass(frozen=True)
class StoredObject:
    body: bytes | None  # None when the object is larger than the caller's max_bytes (not read)
    etag: str  # as S3 sends it (quoted); "" when absent
    size: int


class BodyReadError(Exception):
    """The answer began but its body broke off (botocore retries requests, not body reads):
    the caller may GET again. ``__cause__`` is botocore's error."""


class ObjectStore(Protocol):
    name: str

    def get(self, bucket: str, key: str, *, max_bytes: int) -> StoredObject: ...

    def put(
        self, bucket: str, key: str, body: bytes, *, content_type: str, metadata: dict[str, str]
    ) -> None: ...


class BotocoreStore:
    """The object store over a boto3 S3 client."""

    name = "botocore"

    def __init__(self, client: Any) -> None:
        self.client = client

    def get(self, bucket: str, key: str, *, max_bytes: int) -> StoredObject:
        response = self.client.get_object(Bucket=bucket, Key=key)
        etag = str(response.get("ETag") or "")
        size = int(response.get("ContentLength") or 0)
        if size > max_bytes:
            response["Body"].close()
            return StoredObject(None, etag, size)
        from botocore.exceptions import (  # noqa: PLC0415
            IncompleteReadError,
            ReadTimeoutError,
            ResponseStreamingError,
        )

        try:
            return StoredObject(response["Body"].read(), etag, size)
        except (IncompleteReadError, ReadTimeoutError, ResponseStreamingError) as exc:
            raise BodyReadError(str(exc)) from exc

    def put(
        self, bucket: str, key: str, body: bytes, *, content_type: str, metadata: dict[str, str]
    ) -> None:
        self.client.put_object(
            Bucket=bucket, Key=key, Body=body, ContentType=content_type, Metadata=metadata
        )


def crt_available() -> bool:
    try:
        import awscrt.s3  # noqa: F401, PLC0415
    except ImportError:
        return False
    return True


class CrtError(Exception):
    """Base of the CRT store's transport failures (mixed into a BotoCoreError below)."""


def _crt_transport_error(message: str) -> Exception:
    from botocore.exceptions import BotoCoreError  # noqa: PLC0415

    class CrtTransportError(BotoCoreError, CrtError):
        fmt = "{message}"

    return CrtTransportError(message=message)


_XML_CODE = re.compile(rb"<Code>([^<]{1,128})</Code>")
_XML_MESSAGE = re.compile(rb"<Message>([^<]{0,1024})</Message>")


def _client_error(status: int, body: bytes | None, operation: str) -> Exception:
    """botocore's ClientError for an S3 error answer, as botocore would have parsed it."""
    from botocore.exceptions import ClientError  # noqa: PLC0415

    code_match = _XML_CODE.search(body or b"")
    message_match = _XML_MESSAGE.search(body or b"")
    # Bodiless answers (HEAD) carry only the status: botocore then uses it as the code.
    code = code_match.group(1).decode("utf-8", "replace") if code_match else str(status)
    message = message_match.group(1).decode("utf-8", "replace") if message_match else ""
    response = {
        "Error": {"Code": code, "Message": message},
        "ResponseMetadata": {"HTTPStatusCode": status},
    }
    return ClientError(response, operation)  # type: ignore[arg-type]


class CrtStore:
    """The object store over awscrt's S3 client (the worker's default when awscrt is there).

    Endpoint, region and credentials are resolved by botocore exactly as for the worker's
    boto3 client (AWS_ENDPOINT_URL, the container's task-role credentials, refreshed when
    they expire); only the HTTP requests, their signing (SigV4) and the retries run in C.
    Path-style addressing with a custom endpoint (emulators), virtual-hosted on AWS.
    """

    name = "crt"

    def __init__(self, client: Any, *, max_attempts: int | None = None) -> None:
        import awscrt.io  # noqa: PLC0415
        import awscrt.s3  # noqa: PLC0415
        from s3transfer.crt import BotocoreCRTCredentialsWrapper  # noqa: PLC0415

        self._s3 = awscrt.s3
        endpoint = urlsplit(client.meta.endpoint_url)
        self._netloc = endpoint.netloc
        self._path_style = (client.meta.config.s3 or {}).get("addressing_style") == "path"
        region = client.meta.region_name
        import boto3  # noqa: PLC0415

        # botocore's credential chain (env, the container's task role...), refreshed by it.
        credentials = boto3.Session().get_credentials()
        if credentials is None:
            raise ValueError("no AWS credentials for the CRT S3 client")
        attempts = max_attempts or int(
            os.environ.get("INFERSTACK_S3_MAX_ATTEMPTS", BATCH_MAX_ATTEMPTS)
        )
        loops = awscrt.io.EventLoopGroup(1)
        bootstrap = awscrt.io.ClientBootstrap(loops, awscrt.io.DefaultHostResolver(loops))
        self._client = awscrt.s3.S3Client(
            bootstrap=bootstrap,
            region=region,
            credential_provider=BotocoreCRTCredentialsWrapper(
                credentials
            ).to_crt_credentials_provider(),
            tls_mode=(
                awscrt.s3.S3RequestTlsMode.ENABLED
                if endpoint.scheme == "https"
                else awscrt.s3.S3RequestTlsMode.DISABLED
            ),
            # Same budget as botocore's standard mode here: exponential backoff with full
            # jitter, each wait capped at 20 s, on throttling, 5xx and connection errors.
            retry_config=awscrt.s3.S3RetryConfig(
                max_retries=max(1, attempts - 1), max_backoff_secs=20
            ),
            connect_timeout_ms=10_000,
        )

    def _target(self, bucket: str, key: str) -> tuple[str, str]:
        quoted = quote(key, safe="/~")
        if self._path_style:
            return self._netloc, f"/{bucket}/{quoted}"
        return f"{bucket}.{self._netloc}", f"/{quoted}"

    def _run(self, operation: str, method: str, bucket: str, key: str, **kwargs: Any) -> Any:
        import awscrt.http  # noqa: PLC0415

        host, path = self._target(bucket, key)
        headers = [("host", host), *kwargs.pop("headers", [])]
        body = kwargs.pop("body", None)
        headers.append(("Content-Length", str(len(body) if body is not None else 0)))
        request = awscrt.http.HttpRequest(
            method, path, awscrt.http.HttpHeaders(headers), io.BytesIO(body) if body else None
        )
        # PutObject as its own type (below the multipart threshold it is one PUT): the CRT
        # adds checksums only to that type's requests.
        if operation == "PutObject":
            return self._client.make_request(
                type=self._s3.S3RequestType.PUT_OBJECT, request=request, **kwargs
            )
        return self._client.make_request(
            type=self._s3.S3RequestType.DEFAULT, operation_name=operation, request=request, **kwargs
        )

    def _wait(self, meta: Any, operation: str) -> None:
        try:
            meta.finished_future.result()
        except self._s3.S3ResponseError as exc:
            raise _client_error(int(exc.status_code), exc.body, operation) from exc
        except Exception as exc:  # awscrt.exceptions.AwsCrtError: no answer after the retries
            raise _crt_transport_error(f"{operation} failed: {exc}") from exc

    def get(self, bucket: str, key: str, *, max_bytes: int) -> StoredObject:
        chunks: list[bytes] = []
        head: dict[str, Any] = {}

        def on_headers(status_code: int, headers: list[tuple[str, str]], **_: Any) -> None:
            if 200 <= status_code < 300:
                head.update((name.lower(), value) for name, value in headers)
                head["oversized"] = int(head.get("content-length") or 0) > max_bytes

        def on_body(chunk: bytes, **_: Any) -> None:
            if not head.get("oversized"):  # an oversized body is drained, never kept
                chunks.append(chunk)

        meta = self._run("GetObject", "GET", bucket, key, on_headers=on_headers, on_body=on_body)
        self._wait(meta, "GetObject")
        etag = str(head.get("etag") or "")
        if head.get("oversized"):
            return StoredObject(None, etag, int(head["content-length"]))
        body = b"".join(chunks) if len(chunks) != 1 else chunks[0]
        return StoredObject(body, etag, len(body))

    def put(
        self, bucket: str, key: str, body: bytes, *, content_type: str, metadata: dict[str, str]
    ) -> None:
        headers = [("Content-Type", content_type)]
        headers += [(f"x-amz-meta-{name}", value) for name, value in metadata.items()]
        # A CRC32 of the body in a header, as botocore sends by default: S3 refuses a body
        # that arrives different from what was sent.
        checksum = self._s3.S3ChecksumConfig(
            algorithm=self._s3.S3ChecksumAlgorithm.CRC32,
            location=self._s3.S3ChecksumLocation.HEADER,
        )
        meta = self._run(
            "PutObject", "PUT", bucket, key, headers=headers, body=body, checksum_config=checksum
        )
        self._wait(meta, "PutObject")


def make_store(client: Any, choice: str | None = None) -> ObjectStore:
    """The worker's object store: INFERSTACK_S3_CLIENT=crt|botocore|auto (default auto: the
    CRT when awscrt is installed, botocore otherwise). ``client``: the worker's boto3 client,
    which the CRT store takes its endpoint, region and credentials from."""
    wanted = (choice or os.environ.get(S3_CLIENT_ENV) or "auto").strip().lower()
    if wanted not in {"auto", "crt", "botocore"}:
        raise ValueError(f"{S3_CLIENT_ENV} must be auto, crt or botocore, got {wanted!r}")
    if wanted == "botocore" or (wanted == "auto" and not crt_available()):
        return BotocoreStore(client)
    return CrtStore(client)
