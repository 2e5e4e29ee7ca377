"""AWS Signature Version 4 checks of requests to a method with AWS_IAM authorization.

What API Gateway does before an IAM-authorized method runs, as far as it can be done without
AWS: the request must carry a SigV4 ``Authorization`` header for the service ``execute-api`` in
the stack's region, dated within 5 minutes, by an access key the local cloud knows (the
emulator's credentials), and the signature must match the one recomputed here (botocore's
signer over the same method, path, query, signed headers and body). Not done: IAM policy
evaluation (whether the identity may ``execute-api:Invoke`` the method) and query-string
(presigned) signatures, which are refused. Every refusal is the 403 API Gateway sends, with its
message.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

SERVICE = "execute-api"
ALGORITHM = "AWS4-HMAC-SHA256"
MAX_SKEW = timedelta(minutes=5)

MISSING_AUTHENTICATION = "Missing Authentication Token"
UNKNOWN_ACCESS_KEY = "The security token included in the request is invalid."
SIGNATURE_MISMATCH = (
    "The request signature we calculated does not match the signature you provided. "
    "Check your AWS Secret Access Key and signing method. "
    "Consult the service documentation for details."
)

_AUTHORIZATION = re.compile(
    r"AWS4-HMAC-SHA256\s+Credential=(?P<credential>[^,\s]+)\s*,\s*"
    r"SignedHeaders=(?P<signed>[^,\s]+)\s*,\s*Signature=(?P<signature>[0-9a-fA-F]+)\s*"
)


@dataclass(frozen=True)
class Caller:
    """The identity a valid signature proves (what API Gateway puts in requestContext)."""

    access_key: str


class SignatureError(Exception):
    """A request API Gateway would refuse with 403 and this message."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@dataclass(frozen=True)
class Secret:
    secret_key: str
    session_token: str | None = None


def _header(headers: list[tuple[str, str]], name: str) -> str | None:
    wanted = name.lower()
    return next((v for k, v in headers if k.lower() == wanted), None)


def verify(
    *,
    method: str,
    host: str,
    path: str,
    query: str,
    headers: list[tuple[str, str]],
    body: bytes,
    region: str | None,
    known_keys: Mapping[str, Secret],
    now: datetime | None = None,
) -> Caller:
    """The caller of a SigV4-signed request, or SignatureError with API Gateway's message.

    ``region`` None accepts the region the client signed for (any).
    """
    authorization = _header(headers, "authorization")
    if not authorization:
        if "X-Amz-Signature=" in query:
            raise SignatureError("query-string (presigned) signatures are not verified locally")
        raise SignatureError(MISSING_AUTHENTICATION)
    match = _AUTHORIZATION.fullmatch(authorization.strip())
    if match is None:
        raise SignatureError(
            f"Authorization header requires 'Credential', 'SignedHeaders' and 'Signature' "
            f"parameters of the {ALGORITHM} algorithm"
        )
    key_id, scope_date, scope_region = _scope(match["credential"], region)
    signed = match["signed"].lower().split(";")
    if "host" not in signed:
        raise SignatureError("'Host' must be a signed header")
    amz_date = _check_date(_header(headers, "x-amz-date"), scope_date, now or datetime.now(UTC))
    secret = known_keys.get(key_id)
    token = _header(headers, "x-amz-security-token")
    if secret is None or (
        secret.session_token is not None and token not in (None, secret.session_token)
    ):
        raise SignatureError(UNKNOWN_ACCESS_KEY)
    expected = _signature(
        method=method,
        url=f"http://{host}{path}" + (f"?{query}" if query else ""),
        signed_headers=[(k, v) for k, v in headers if k.lower() in signed],
        body=body,
        credentials=Credentials(key_id, secret.secret_key, token),
        region=scope_region,
        amz_date=amz_date,
    )
    if match["signature"].lower() != expected:
        raise SignatureError(SIGNATURE_MISMATCH)
    return Caller(access_key=key_id)


def _scope(credential: str, region: str | None) -> tuple[str, str, str]:
    """<key id>/<date>/<region>/execute-api/aws4_request -> (key id, date, region)."""
    key_id, _, scope = credential.partition("/")
    parts = scope.split("/")
    if len(parts) != 4 or parts[3] != "aws4_request":
        raise SignatureError("Credential should be scoped to a valid date/region/service")
    if parts[2] != SERVICE:
        raise SignatureError(f"Credential should be scoped to correct service: '{SERVICE}'.")
    if region is not None and parts[1] != region:
        raise SignatureError(f"Credential should be scoped to a valid region, not '{parts[1]}'.")
    return key_id, parts[0], parts[1]


def _check_date(amz_date: str | None, scope_date: str, now: datetime) -> str:
    """X-Amz-Date: present, the scope's day, within 5 minutes of now."""
    try:
        stamp = datetime.strptime(amz_date or "", "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
    except ValueError:
        raise SignatureError("the request has no valid X-Amz-Date header") from None
    if stamp.strftime("%Y%m%d") != scope_date:
        raise SignatureError("Date in Credential scope does not match the X-Amz-Date header")
    if abs(now - stamp) > MAX_SKEW:
        raise SignatureError(
            f"Signature expired: {amz_date} is now earlier or later than the allowed 5 minutes"
        )
    return str(amz_date)


def _signature(
    *,
    method: str,
    url: str,
    signed_headers: list[tuple[str, str]],
    body: bytes,
    credentials: Credentials,
    region: str,
    amz_date: str,
) -> str:
    """botocore's SigV4 signature of the request, over exactly the headers the client signed."""
    request = AWSRequest(method=method, url=url, data=body)
    for name, value in signed_headers:
        request.headers[name] = value
    request.context["timestamp"] = amz_date
    signer = SigV4Auth(credentials, SERVICE, region)
    canonical = signer.canonical_request(request)
    return signer.signature(signer.string_to_sign(request, canonical), request)
