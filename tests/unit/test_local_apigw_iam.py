"""IAM (SigV4) authorization in the local API Gateway: it enforces what the deployed API says.

Requests are signed with botocore's SigV4 signer (what the AWS SDKs and `awscurl` use) and sent
to a LocalApiGateway serving a method with AWS_IAM authorization; the integration is a stub that
echoes the proxy event. discovery is checked against moto (in process) for the method's
authorization type.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from inferstack.local import sigv4
from inferstack.local.apigw import EMULATOR_KEYS, LocalApiGateway
from inferstack.local.discovery import RestApi, Route, read_apis
from inferstack.local.emulator import FAKE_CREDENTIALS
from moto import mock_aws

REGION = "eu-west-1"
KEY = FAKE_CREDENTIALS["AWS_ACCESS_KEY_ID"]
SECRET = FAKE_CREDENTIALS["AWS_SECRET_ACCESS_KEY"]
TOKEN = FAKE_CREDENTIALS["AWS_SESSION_TOKEN"]
API_KEY = "local-api-key-0123456789"


def _route(path: str, *, authorization: str, api_key_required: bool) -> Route:
    return Route(
        resource_id=path.strip("/"),
        resource_path=path,
        method="POST",
        api_key_required=api_key_required,
        integration_type="AWS_PROXY",
        function_name="echo",
        qualifier="live",
        authorization_type=authorization,
    )


def _echo(function: str, qualifier: str | None, event: dict, request_id: str) -> dict[str, Any]:
    identity = event["requestContext"]["identity"]
    body = {"accessKey": identity["accessKey"], "body": event["body"]}
    return {
        "statusCode": 200,
        "headers": {"Content-Type": "application/json"},
        "body": json.dumps(body),
    }


@pytest.fixture(scope="module")
def gateway() -> Iterator[LocalApiGateway]:
    from inferstack.local.discovery import ApiKey  # noqa: PLC0415

    api = RestApi(
        id="abc123",
        name="iam-api",
        stages=("v1",),
        binary_media_types=(),
        routes=(
            _route("/iam", authorization="AWS_IAM", api_key_required=False),
            _route("/both", authorization="AWS_IAM", api_key_required=True),
            _route("/open", authorization="NONE", api_key_required=False),
        ),
        stage_keys={"v1": (ApiKey(id="k1", value=API_KEY, enabled=True),)},
    )
    gw = LocalApiGateway((api,), _echo, region=REGION)
    gw.start()
    yield gw
    gw.stop()


def _signed(
    url: str,
    body: bytes,
    *,
    key: str = KEY,
    secret: str = SECRET,
    token: str | None = TOKEN,
    region: str = REGION,
    service: str = "execute-api",
    headers: dict[str, str] | None = None,
) -> dict[str, str]:
    """Headers of a request signed like an AWS SDK signs it."""
    request = AWSRequest(method="POST", url=url, data=body, headers=dict(headers or {}))
    SigV4Auth(Credentials(key, secret, token), service, region).add_auth(request)
    return dict(request.headers.items())


def _post(url: str, body: bytes, headers: dict[str, str]) -> tuple[int, dict[str, Any]]:
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


def test_unsigned_request_gets_missing_authentication_token(gateway: LocalApiGateway) -> None:
    url = f"http://127.0.0.1:{gateway.port}/v1/iam"
    assert _post(url, b"{}", {"Content-Type": "application/json"}) == (
        403,
        {"message": "Missing Authentication Token"},
    )


def test_signed_request_reaches_the_function_with_its_access_key(
    gateway: LocalApiGateway,
) -> None:
    url = f"http://127.0.0.1:{gateway.port}/v1/iam?top_k=3"
    body = b'{"image": "x"}'
    status, answer = _post(
        url, body, _signed(url, body, headers={"Content-Type": "application/json"})
    )
    assert (status, answer) == (200, {"accessKey": KEY, "body": '{"image": "x"}'})


def test_a_tampered_body_fails_the_signature(gateway: LocalApiGateway) -> None:
    url = f"http://127.0.0.1:{gateway.port}/v1/iam"
    headers = _signed(url, b"original")
    status, answer = _post(url, b"tampered", headers)
    assert (status, answer) == (403, {"message": sigv4.SIGNATURE_MISMATCH})


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"key": "AKIAUNKNOWN", "secret": "x"}, sigv4.UNKNOWN_ACCESS_KEY),
        ({"secret": "not-the-secret"}, sigv4.SIGNATURE_MISMATCH),
        ({"service": "lambda"}, "Credential should be scoped to correct service: 'execute-api'."),
        (
            {"region": "us-east-1"},
            "Credential should be scoped to a valid region, not 'us-east-1'.",
        ),
    ],
)
def test_bad_signatures_are_refused(
    gateway: LocalApiGateway, kwargs: dict[str, str], message: str
) -> None:
    url = f"http://127.0.0.1:{gateway.port}/v1/iam"
    assert _post(url, b"{}", _signed(url, b"{}", **kwargs)) == (403, {"message": message})


def test_iam_and_api_key_are_both_enforced(gateway: LocalApiGateway) -> None:
    url = f"http://127.0.0.1:{gateway.port}/v1/both"
    assert _post(url, b"{}", {"x-api-key": API_KEY})[1] == {
        "message": "Missing Authentication Token"
    }
    assert _post(url, b"{}", _signed(url, b"{}")) == (403, {"message": "Forbidden"})
    signed_with_key = _signed(url, b"{}", headers={"x-api-key": API_KEY})
    assert _post(url, b"{}", signed_with_key)[0] == 200


def test_a_method_without_authorization_needs_no_signature(gateway: LocalApiGateway) -> None:
    url = f"http://127.0.0.1:{gateway.port}/v1/open"
    assert _post(url, b"{}", {}) == (200, {"accessKey": None, "body": "{}"})


def test_expired_signatures_are_refused() -> None:
    url = "http://127.0.0.1:9/v1/iam"
    headers = _signed(url, b"")
    later = datetime.now(UTC) + timedelta(minutes=6)
    with pytest.raises(sigv4.SignatureError, match="Signature expired"):
        sigv4.verify(
            method="POST",
            host="127.0.0.1:9",
            path="/v1/iam",
            query="",
            headers=list(headers.items()),
            body=b"",
            region=REGION,
            known_keys=EMULATOR_KEYS,
            now=later,
        )


def test_discovery_reads_the_authorization_type() -> None:
    with mock_aws():
        apigw = boto3.client("apigateway", region_name=REGION)
        api = apigw.create_rest_api(name="iam-api")
        root = apigw.get_resources(restApiId=api["id"])["items"][0]["id"]
        for part, authorization in (("iam", "AWS_IAM"), ("open", "NONE")):
            res = apigw.create_resource(restApiId=api["id"], parentId=root, pathPart=part)
            apigw.put_method(
                restApiId=api["id"],
                resourceId=res["id"],
                httpMethod="POST",
                authorizationType=authorization,
            )
            apigw.put_integration(
                restApiId=api["id"], resourceId=res["id"], httpMethod="POST", type="MOCK"
            )
        apigw.create_deployment(restApiId=api["id"], stageName="v1")
        (found,) = read_apis(apigw)
    assert {r.resource_path: r.authorization_type for r in found.routes if r.method == "POST"} == {
        "/iam": "AWS_IAM",
        "/open": "NONE",
    }


def test_the_gateway_answers_without_nagle_delays(gateway: LocalApiGateway) -> None:
    # Headers and body are two writes: with Nagle's algorithm on, each answer waited for the
    # client's delayed ACK (40 ms on Linux).
    assert gateway.server.RequestHandlerClass.disable_nagle_algorithm is True
