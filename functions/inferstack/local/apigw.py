"""API Gateway REST (Lambda proxy integration), served locally from the deployed API.

Routes, the API-key requirement, the authorization type, usage plan keys and binary media
types come from the emulator. Requests become the proxy events API Gateway sends (version 1.0
payload) and the handler's proxy response becomes the HTTP answer. URLs:
http://127.0.0.1:<port>/<stage>/<path>. Request validators are honoured for required
parameters (headers, query strings). A method with AWS_IAM authorization needs a SigV4
signature (service execute-api) by the emulator's credentials, checked as ``sigv4`` says; IAM
policies are not evaluated. Methods with a Lambda or Cognito authorizer are refused (not served).
Not emulated: WAF rules, usage-plan throttling and quotas, authorizers, body models.
"""

from __future__ import annotations

import base64
import fnmatch
import json
import re
import threading
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from inferstack.local import sigv4
from inferstack.local.discovery import RestApi, Route
from inferstack.local.emulator import FAKE_CREDENTIALS
from inferstack.local.execenv import InvocationError

MAX_PAYLOAD = 10 * 2**20  # API Gateway's request payload limit
# API Gateway answers these itself, before any integration runs.
FORBIDDEN = (403, {"message": "Forbidden"})
MISSING_TOKEN = (403, {"message": "Missing Authentication Token"})
TOO_LARGE = (413, {"message": "Request Too Long"})
BAD_GATEWAY = (502, {"message": "Internal server error"})

Invoker = Callable[[str, str | None, dict, str], Any]  # (function, qualifier, event, request id)

# Access keys whose signatures the local API Gateway can verify: the emulator's credentials.
EMULATOR_KEYS = {
    FAKE_CREDENTIALS["AWS_ACCESS_KEY_ID"]: sigv4.Secret(
        FAKE_CREDENTIALS["AWS_SECRET_ACCESS_KEY"], FAKE_CREDENTIALS["AWS_SESSION_TOKEN"]
    )
}


def _path_regex(resource_path: str) -> re.Pattern[str]:
    pattern = ""
    for part in resource_path.strip("/").split("/"):
        if not part:
            continue
        if part.endswith("+}"):
            pattern += rf"/(?P<{part[1:-2]}>.+)"
        elif part.startswith("{") and part.endswith("}"):
            pattern += rf"/(?P<{part[1:-1]}>[^/]+)"
        else:
            pattern += "/" + re.escape(part)
    return re.compile("^" + (pattern or "/") + "$")


def match_route(
    routes: tuple[Route, ...], path: str, method: str
) -> tuple[Route, dict[str, str]] | None:
    """Most specific resource first (literal paths before {param} before {proxy+})."""

    def specificity(route: Route) -> tuple[int, int]:
        return (route.resource_path.count("+}"), route.resource_path.count("{"))

    for route in sorted(routes, key=specificity):
        if route.method not in (method, "ANY"):
            continue
        match = _path_regex(route.resource_path).match(path or "/")
        if match:
            return route, match.groupdict()
    return None


def missing_parameters(route: Route, headers: Any, query: str) -> list[str]:
    """Required request parameters absent from the request, in API Gateway's order."""
    present_query = parse_qs(query, keep_blank_values=True)
    missing = []
    for where, name in route.required_parameters:
        if (where == "header" and headers.get(name) is None) or (
            where == "querystring" and name not in present_query
        ):
            missing.append(name)
    return missing


def is_binary(content_type: str, binary_media_types: tuple[str, ...]) -> bool:
    media = content_type.split(";", maxsplit=1)[0].strip().lower()
    # "~1" is how "/" is written in binaryMediaTypes patches; Terraform sends plain "/".
    return bool(media) and any(
        fnmatch.fnmatch(media, t.replace("~1", "/").lower()) for t in binary_media_types
    )


def build_event(
    *,
    api: RestApi,
    stage: str,
    route: Route,
    path: str,
    path_params: dict[str, str],
    method: str,
    headers: list[tuple[str, str]],
    query: str,
    body: bytes,
    source_ip: str,
    api_key: str | None,
    api_key_id: str | None,
    request_id: str,
    caller: sigv4.Caller | None = None,
) -> dict[str, Any]:
    single: dict[str, str] = {}
    multi: dict[str, list[str]] = {}
    for name, value in headers:
        single[name] = value
        multi.setdefault(name, []).append(value)
    query_multi = parse_qs(query, keep_blank_values=True)
    content_type = next((v for k, v in headers if k.lower() == "content-type"), "")
    binary = is_binary(content_type, api.binary_media_types)
    if body:
        event_body: str | None = (
            base64.b64encode(body).decode() if binary else body.decode("utf-8", "replace")
        )
    else:
        event_body = None
    now = datetime.now(UTC)
    return {
        "resource": route.resource_path,
        "path": path,
        "httpMethod": method,
        "headers": single or None,
        "multiValueHeaders": multi or None,
        "queryStringParameters": {k: v[-1] for k, v in query_multi.items()} or None,
        "multiValueQueryStringParameters": query_multi or None,
        "pathParameters": path_params or None,
        "stageVariables": None,
        "requestContext": {
            "resourceId": route.resource_id,
            "resourcePath": route.resource_path,
            "httpMethod": method,
            "extendedRequestId": request_id,
            "requestTime": now.strftime("%d/%b/%Y:%H:%M:%S +0000"),
            "path": f"/{stage}{path}",
            "accountId": "123456789012",
            "protocol": "HTTP/1.1",
            "stage": stage,
            "domainPrefix": api.id,
            "requestTimeEpoch": int(now.timestamp() * 1000),
            "requestId": request_id,
            "identity": {
                "sourceIp": source_ip,
                "userAgent": single.get("User-Agent") or single.get("user-agent"),
                "apiKey": api_key,
                "apiKeyId": api_key_id,
                "caller": None,
                "user": None,
                "accessKey": caller.access_key if caller else None,
            },
            "domainName": f"{api.id}.execute-api.localhost",
            "apiId": api.id,
        },
        "body": event_body,
        "isBase64Encoded": binary and bool(body),
    }


def proxy_response(result: Any) -> tuple[int, list[tuple[str, str]], bytes]:
    """The handler's proxy answer -> (status, headers, body); ValueError when malformed."""
    if not isinstance(result, dict) or not isinstance(result.get("statusCode"), int):
        raise ValueError("malformed Lambda proxy response")
    headers = [(k, str(v)) for k, v in (result.get("headers") or {}).items()]
    for name, values in (result.get("multiValueHeaders") or {}).items():
        headers += [(name, str(v)) for v in values]
    body = result.get("body") or ""
    data = base64.b64decode(body) if result.get("isBase64Encoded") else str(body).encode()
    return result["statusCode"], headers, data


class LocalApiGateway:
    """Serves every deployed REST API stage on one local port."""

    def __init__(
        self,
        apis: tuple[RestApi, ...],
        invoke: Invoker,
        *,
        port: int = 0,
        region: str | None = None,
        known_keys: dict[str, sigv4.Secret] | None = None,
    ) -> None:
        self.apis = apis
        self.invoke = invoke
        self.region = region  # the region SigV4 signatures must be scoped to (None: any)
        self.known_keys = EMULATOR_KEYS if known_keys is None else known_keys
        self.requests = 0
        gateway = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # Headers and body go out in two writes; with Nagle's algorithm on, the body waits
            # for the client's delayed ACK of the headers (40 ms on Linux) on every request.
            disable_nagle_algorithm = True

            def _serve(self) -> None:
                gateway.handle(self)

            do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = do_OPTIONS = _serve  # noqa: N815

            def log_message(self, fmt: str, *args: Any) -> None:
                pass  # the runner logs one line per request itself

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def port(self) -> int:
        return int(self.server.server_address[1])

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def url(self, api: RestApi, stage: str) -> str:
        return f"http://127.0.0.1:{self.port}/{stage}"

    def _find(self, path: str) -> tuple[RestApi, str, str] | None:
        parts = path.lstrip("/").split("/", 1)
        stage, rest = parts[0], "/" + (parts[1] if len(parts) > 1 else "")
        for api in self.apis:
            if stage in api.stages:
                return api, stage, rest
        return None

    def _key_ok(self, api: RestApi, stage: str, given: str | None) -> tuple[bool, str | None]:
        for key in api.stage_keys.get(stage, ()):
            if given and key.enabled and key.value == given:
                return True, key.id
        return False, None

    def handle(self, req: BaseHTTPRequestHandler) -> None:
        started = time.monotonic()
        request_id = str(uuid.uuid4())
        split = urlsplit(req.path)
        length = int(req.headers.get("Content-Length") or 0)
        if length > MAX_PAYLOAD:
            self._send(req, *_json(*TOO_LARGE), request_id)
            return
        body = req.rfile.read(length) if length else b""
        status, headers, data = self._dispatch(req, split.path, split.query, body, request_id)
        self._send(req, status, headers, data, request_id)
        self.requests += 1
        print(
            f"api {req.command} {split.path} -> {status} "
            f"({(time.monotonic() - started) * 1000:.0f} ms, {request_id})",
            flush=True,
        )

    def _authorize(
        self, route: Route, req: BaseHTTPRequestHandler, path: str, query: str, body: bytes
    ) -> tuple[sigv4.Caller | None, tuple[int, list[tuple[str, str]], bytes] | None]:
        """The method's authorization: NONE passes, AWS_IAM needs a valid SigV4 signature."""
        if route.authorization_type == "NONE":
            return None, None
        if route.authorization_type != "AWS_IAM":
            message = f"{route.authorization_type} authorization is not served locally"
            return None, _json(500, {"message": message})
        try:
            caller = sigv4.verify(
                method=req.command,
                host=req.headers.get("Host") or "",
                path=path,
                query=query,
                headers=list(req.headers.items()),
                body=body,
                region=self.region,
                known_keys=self.known_keys,
            )
        except sigv4.SignatureError as refused:
            return None, _json(403, {"message": refused.message})
        return caller, None

    def _gate(
        self, api: RestApi, stage: str, route: Route, req: BaseHTTPRequestHandler, query: str
    ) -> tuple[str | None, tuple[int, list[tuple[str, str]], bytes] | None]:
        """What API Gateway checks after authorization, before the integration: API key,
        required parameters."""
        key_id = None
        if route.api_key_required:
            ok, key_id = self._key_ok(api, stage, req.headers.get("x-api-key"))
            if not ok:
                return None, _json(*FORBIDDEN)
        missing = missing_parameters(route, req.headers, query)
        if missing:
            message = f"Missing required request parameters: [{', '.join(missing)}]"
            return key_id, _json(400, {"message": message})
        if route.integration_type != "AWS_PROXY" or not route.function_name:
            return key_id, _json(500, {"message": f"{route.integration_type} not served"})
        return key_id, None

    def _dispatch(
        self, req: BaseHTTPRequestHandler, path: str, query: str, body: bytes, request_id: str
    ) -> tuple[int, list[tuple[str, str]], bytes]:
        # API Gateway's order: route, IAM authorization (403 "Missing Authentication Token"
        # when unsigned), API key (403 "Forbidden"), request validation, integration.
        found = self._find(path)
        if found is None:
            return _json(*MISSING_TOKEN)
        api, stage, rest = found
        matched = match_route(api.routes, rest, req.command)
        if matched is None:
            return _json(*MISSING_TOKEN)
        route, params = matched
        caller, refusal = self._authorize(route, req, path, query, body)
        if refusal is not None:
            return refusal
        given_key = req.headers.get("x-api-key")
        key_id, refusal = self._gate(api, stage, route, req, query)
        if refusal is not None:
            return refusal
        event = build_event(
            api=api,
            stage=stage,
            route=route,
            path=rest,
            path_params=params,
            method=req.command,
            headers=list(req.headers.items()),
            query=query,
            body=body,
            source_ip=req.client_address[0],
            api_key=given_key if route.api_key_required else None,
            api_key_id=key_id,
            request_id=request_id,
            caller=caller,
        )
        try:
            result = self.invoke(route.function_name, route.qualifier, event, request_id)
            return proxy_response(result)
        except (InvocationError, ValueError) as exc:
            print(f"api {route.function_name}: {exc}", flush=True)
            return _json(*BAD_GATEWAY)

    @staticmethod
    def _send(
        req: BaseHTTPRequestHandler,
        status: int,
        headers: list[tuple[str, str]],
        data: bytes,
        request_id: str,
    ) -> None:
        req.send_response(status)
        names = {k.lower() for k, _ in headers}
        for name, value in headers:
            if name.lower() not in ("content-length", "connection", "transfer-encoding"):
                req.send_header(name, value)
        if "content-type" not in names:
            req.send_header("Content-Type", "application/json")
        req.send_header("x-amzn-RequestId", request_id)
        req.send_header("Content-Length", str(len(data)))
        req.end_headers()
        if req.command != "HEAD":
            req.wfile.write(data)


def _json(status: int, payload: dict) -> tuple[int, list[tuple[str, str]], bytes]:
    return status, [("Content-Type", "application/json")], json.dumps(payload).encode()
