"""The batch worker's object stores (inferstack.batch.clients): the AWS Common Runtime's S3
client against a moto server (in-process moto does not intercept the CRT) and a stub server
(retries, credentials), and botocore's client beside it: same answers, same exceptions."""

from __future__ import annotations

import http.server
import threading
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
from botocore.exceptions import BotoCoreError, ClientError
from inferstack.batch import clients

pytest.importorskip("awscrt.s3")

REGION = "eu-west-1"
BUCKET = "store-test"


@pytest.fixture
def aws_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("AWS_PROFILE", "AWS_ENDPOINT_URL_S3", clients.S3_CLIENT_ENV):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDSTORETEST")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "secret")
    monkeypatch.setenv("AWS_SESSION_TOKEN", "session-token-of-the-task-role")
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    monkeypatch.setenv("INFERSTACK_S3_MAX_ATTEMPTS", "3")


@pytest.fixture
def moto_url(aws_env: None, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    from moto.server import ThreadedMotoServer  # noqa: PLC0415

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    url = f"http://{host}:{port}"
    monkeypatch.setenv("AWS_ENDPOINT_URL", url)
    # The server shares moto's in-process state: start from an empty account.
    urllib.request.urlopen(urllib.request.Request(f"{url}/moto-api/reset", method="POST"))
    client = clients.make_client("s3")
    client.create_bucket(Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": REGION})
    try:
        yield url
    finally:
        server.stop()


def stores() -> dict[str, Any]:
    client = clients.make_client("s3")
    return {"crt": clients.make_store(client, "crt"), "botocore": clients.BotocoreStore(client)}


KEY = "input/a photo+1 ü.jpg"


def test_crt_and_botocore_stores_read_and_write_the_same_objects(moto_url: str) -> None:
    client = clients.make_client("s3")
    body = bytes(range(256)) * 400
    etag = client.put_object(Bucket=BUCKET, Key=KEY, Body=body)["ETag"]
    for name, store in stores().items():
        assert store.name == name
        assert store.get(BUCKET, KEY, max_bytes=len(body)) == clients.StoredObject(
            body, etag, len(body)
        )
        # Over the limit: not kept, the size still told.
        assert store.get(BUCKET, KEY, max_bytes=len(body) - 1) == clients.StoredObject(
            None, etag, len(body)
        )
        out = f"output/{name} ü.json"
        metadata = {"input-etag": "0" * 32, "model-sha256": "f" * 64}
        store.put(BUCKET, out, b'{"ok": 1}', content_type="application/json", metadata=metadata)
        answer = client.get_object(Bucket=BUCKET, Key=out)
        assert answer["Body"].read() == b'{"ok": 1}'
        assert answer["ContentType"] == "application/json"
        assert answer["Metadata"] == metadata


def test_crt_store_raises_the_client_errors_botocore_raises(moto_url: str) -> None:
    for bucket, key in ((BUCKET, "input/missing.jpg"), ("no-such-bucket", "x.jpg")):
        errors = {}
        for name, store in stores().items():
            with pytest.raises(ClientError) as caught:
                store.get(bucket, key, max_bytes=100)
            error = caught.value.response
            errors[name] = (error["Error"]["Code"], error["ResponseMetadata"]["HTTPStatusCode"])
        assert errors["crt"] == errors["botocore"]
        assert errors["crt"][0] in {"NoSuchKey", "NoSuchBucket"}


def test_crt_store_without_an_answer_raises_a_botocore_error(
    aws_env: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    from inferstack.local.emulator import free_port  # noqa: PLC0415

    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{free_port()}")
    monkeypatch.setenv("INFERSTACK_S3_MAX_ATTEMPTS", "1")
    store = clients.make_store(clients.make_client("s3"), "crt")
    with pytest.raises(BotoCoreError):
        store.get(BUCKET, KEY, max_bytes=100)


class _Flaky(http.server.BaseHTTPRequestHandler):
    """Answers the first GET with 503 SlowDown, the next with the object; records headers."""

    seen: list[dict[str, str]] = []  # noqa: RUF012

    def do_GET(self) -> None:
        self.seen.append({"path": self.path, **{k.lower(): v for k, v in self.headers.items()}})
        if len(self.seen) == 1:
            body = b"<Error><Code>SlowDown</Code><Message>Reduce your rate</Message></Error>"
            self.send_response(503)
        else:
            body = b"image bytes"
            self.send_response(200)
            self.send_header("ETag", '"abc"')
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_PUT(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length)
        self.seen.append(
            {"path": self.path, "body": body, **{k.lower(): v for k, v in self.headers.items()}}
        )
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        return None


def test_crt_store_retries_throttling_and_signs_with_the_environments_credentials(
    aws_env: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    _Flaky.seen = []
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Flaky)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{server.server_port}")
        store = clients.make_store(clients.make_client("s3"), "crt")
        got = store.get(BUCKET, KEY, max_bytes=100)
        store.put(BUCKET, "out/a.json", b'{"ok": 1}', content_type="application/json", metadata={})
    finally:
        server.shutdown()
        server.server_close()
    assert got == clients.StoredObject(b"image bytes", '"abc"', 11)
    assert len(_Flaky.seen) == 3  # the 503 was retried
    put = _Flaky.seen[2]
    assert put["body"] == b'{"ok": 1}'
    # The body's CRC32 in a signed header, as botocore sends it by default.
    assert put["x-amz-checksum-crc32"] == "xFLHag=="
    assert "x-amz-checksum-crc32" in put["authorization"]
    for request in _Flaky.seen[:2]:
        # Path-style against the endpoint of AWS_ENDPOINT_URL, port included.
        assert request["path"] == f"/{BUCKET}/input/a%20photo%2B1%20%C3%BC.jpg"
        assert request["host"] == f"127.0.0.1:{server.server_port}"
        assert request["x-amz-security-token"] == "session-token-of-the-task-role"
        assert request["authorization"].startswith("AWS4-HMAC-SHA256 Credential=AKIDSTORETEST/")
        assert f"/{REGION}/s3/aws4_request" in request["authorization"]


def test_store_choice(aws_env: None, monkeypatch: pytest.MonkeyPatch) -> None:
    client = clients.make_client("s3")
    assert clients.make_store(client).name == "crt"  # auto, awscrt installed
    monkeypatch.setenv(clients.S3_CLIENT_ENV, "botocore")
    assert clients.make_store(client).name == "botocore"
    monkeypatch.setenv(clients.S3_CLIENT_ENV, "auto")
    monkeypatch.setattr(clients, "crt_available", lambda: False)
    assert clients.make_store(client).name == "botocore"
    with pytest.raises(ValueError, match="INFERSTACK_S3_CLIENT"):
        clients.make_store(client, "fast")


def test_crt_signatures_pass_an_emulator_that_checks_them(
    moto_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With moto's IAM enforcement on (as in the local cloud), the CRT's SigV4 requests of an
    IAM user's keys are accepted and a wrong secret is refused."""
    import boto3  # noqa: PLC0415
    from moto import settings  # noqa: PLC0415
    from moto.core.responses import ActionAuthenticatorMixin  # noqa: PLC0415

    iam = boto3.client("iam", endpoint_url=moto_url, region_name=REGION)
    # The next three calls (user, policy, key) are the last ones moto does not authorise.
    count = ActionAuthenticatorMixin.request_count + 3
    monkeypatch.setattr(settings, "INITIAL_NO_AUTH_ACTION_COUNT", count)
    iam.create_user(UserName="worker")
    policy = '{"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:*", '
    policy += '"Resource": "*"}]}'
    iam.put_user_policy(UserName="worker", PolicyName="s3", PolicyDocument=policy)
    key = iam.create_access_key(UserName="worker")["AccessKey"]
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", key["AccessKeyId"])
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", key["SecretAccessKey"])
    monkeypatch.delenv("AWS_SESSION_TOKEN")
    monkeypatch.setattr(boto3, "DEFAULT_SESSION", None)
    store = clients.make_store(clients.make_client("s3"), "crt")
    store.put(BUCKET, "in/a.jpg", b"abc", content_type="image/jpeg", metadata={})
    assert store.get(BUCKET, "in/a.jpg", max_bytes=10).body == b"abc"
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "not-the-secret")
    with pytest.raises(ClientError) as caught:
        clients.make_store(clients.make_client("s3"), "crt").get(BUCKET, "in/a.jpg", max_bytes=10)
    assert caught.value.response["Error"]["Code"] == "SignatureDoesNotMatch"
