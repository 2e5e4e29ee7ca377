"""The local emulator's HTTP serving: same S3 answers as moto's own server, with keep-alive."""

from __future__ import annotations

import http.client
import time
from collections.abc import Iterator

import boto3
import pytest
from inferstack.local.emulator import FAKE_CREDENTIALS, Emulator

BUCKET = "emulator-serving-test"
# Keys that exercise the undecoded path moto matches on: space, plus, non-ASCII, an encoded
# slash, characters that are special in URLs, a double slash.
KEYS = [
    "input/a b.jpg",
    "input/a+b.jpg",
    "input/ünï cödé.jpg",
    "input/a%2Fb.jpg",
    "input/x?y&z=1#h.jpg",
    "input//double.jpg",
    "input/~tilde'quote\".jpg",
]
# S3 returns user metadata names in lower case; "_" must survive (moto's own server keeps it).
METADATA = {"input-etag": "e1", "a_b": "u"}


@pytest.fixture(params=["cheroot", "werkzeug"])
def emulator_url(request: pytest.FixtureRequest) -> Iterator[str]:
    emulator = Emulator(http_server=request.param).start()
    process = emulator.process
    assert process is not None
    try:
        yield emulator.url
    finally:
        emulator.stop()
        assert process.returncode == 0  # SIGTERM shuts the server down cleanly


def test_s3_keys_and_metadata_round_trip(emulator_url: str) -> None:
    s3 = boto3.client(
        "s3",
        endpoint_url=emulator_url,
        region_name="us-east-1",
        aws_access_key_id=FAKE_CREDENTIALS["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=FAKE_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
    )
    s3.create_bucket(Bucket=BUCKET)
    for key in KEYS:
        s3.put_object(Bucket=BUCKET, Key=key, Body=key.encode(), Metadata=METADATA)
    listed = [o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET)["Contents"]]
    assert sorted(listed) == sorted(KEYS)
    for key in KEYS:
        got = s3.get_object(Bucket=BUCKET, Key=key)
        assert got["Body"].read() == key.encode()
        assert got["Metadata"] == METADATA
    s3.delete_objects(Bucket=BUCKET, Delete={"Objects": [{"Key": k} for k in KEYS]})
    assert "Contents" not in s3.list_objects_v2(Bucket=BUCKET)


def test_connections_are_kept_alive(emulator_url: str, request: pytest.FixtureRequest) -> None:
    """cheroot answers on the same connection; werkzeug's server closes it after each."""
    connection = http.client.HTTPConnection(emulator_url.removeprefix("http://"), timeout=10)
    sockets, statuses = [], []
    for _ in range(3):
        connection.request("GET", "/moto-api/data.json")
        response = connection.getresponse()
        response.read()
        statuses.append(response.status)
        sockets.append(connection.sock)  # None once the server closed the connection
    connection.close()
    assert statuses == [200, 200, 200]
    if request.node.callspec.params["emulator_url"] == "cheroot":
        assert sockets[0] is not None and all(s is sockets[0] for s in sockets)
    else:
        assert sockets == [None, None, None]


def test_sqs_retention_check_keeps_moto_semantics() -> None:
    # The launcher replaces moto's retention check with one that reads the period directly.
    from inferstack.local.motoserver import _message_within_retention  # noqa: PLC0415
    from moto.core import DEFAULT_ACCOUNT_ID  # noqa: PLC0415 - moto internals, this test only
    from moto.sqs.models import Message, SQSBackend, sqs_backends  # noqa: PLC0415

    motos_own = SQSBackend.is_message_valid_based_on_retention_period
    assert motos_own is not _message_within_retention  # not installed in this process
    backend = sqs_backends[DEFAULT_ACCOUNT_ID]["us-east-1"]
    backend.create_queue("retention-check", MessageRetentionPeriod="60")
    now_ms = time.time() * 1000
    for age_s, kept in ((0, True), (58, True), (62, False), (3600, False)):
        message = Message("id", "body")
        message.sent_timestamp = int(now_ms - age_s * 1000)
        assert motos_own(backend, "retention-check", message) is kept
        assert _message_within_retention(backend, "retention-check", message) is kept
