"""The Lambda Runtime API (2018-06-01), served to one execution environment's runtime.

Lambda's managed runtimes are started with AWS_LAMBDA_RUNTIME_API=<host:port> and then
drive themselves: the runtime initialises (imports the handler), asks for an invocation with
``GET /2018-06-01/runtime/invocation/next`` and answers it with ``POST .../<id>/response``
or ``POST .../<id>/error``; an init failure is ``POST /2018-06-01/runtime/init/error``.
This module serves that API on 127.0.0.1 for one runtime process: the local execution
environment (inferstack.local.sandbox) queues an invocation and waits for its answer.
Reference: https://docs.aws.amazon.com/lambda/latest/dg/runtimes-api.html
"""

from __future__ import annotations

import contextlib
import json
import queue
import threading
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

PREFIX = "/2018-06-01/runtime"
ERROR_TYPE_HEADER = "Lambda-Runtime-Function-Error-Type"
_POLL_S = 0.5


@dataclass
class Invocation:
    """One invocation handed to the runtime and its answer (response or error)."""

    request_id: str
    event: bytes
    deadline_ms: int
    function_arn: str
    trace_id: str = field(
        default_factory=lambda: f"Root=1-{uuid.uuid4().hex[:8]}-{uuid.uuid4().hex[:24]};Sampled=0"
    )
    done: threading.Event = field(default_factory=threading.Event)
    delivered: threading.Event = field(default_factory=threading.Event)
    response: bytes | None = None
    error: dict[str, Any] | None = None

    def headers(self) -> dict[str, str]:
        return {
            "Lambda-Runtime-Aws-Request-Id": self.request_id,
            "Lambda-Runtime-Deadline-Ms": str(self.deadline_ms),
            "Lambda-Runtime-Invoked-Function-Arn": self.function_arn,
            "Lambda-Runtime-Trace-Id": self.trace_id,
            "Content-Type": "application/json",
        }


def _error_document(body: bytes, header_type: str | None) -> dict[str, Any]:
    """What the runtime posted as an error: Lambda's {errorMessage, errorType, stackTrace}."""
    try:
        document = json.loads(body) if body else {}
    except ValueError:
        document = {"errorMessage": body.decode(errors="replace")}
    if not isinstance(document, dict):
        document = {"errorMessage": str(document)}
    document.setdefault("errorType", header_type or "Runtime.Unknown")
    document.setdefault("errorMessage", "")
    document.setdefault("stackTrace", [])
    return document


class RuntimeApi:
    """The API for one runtime process: one invocation at a time, as Lambda sends them."""

    def __init__(self, host: str = "127.0.0.1") -> None:
        self._pending: queue.Queue[Invocation] = queue.Queue()
        self._invocations: dict[str, Invocation] = {}
        self._lock = threading.Lock()
        self._closed = threading.Event()
        # The runtime asked for its first invocation: its init phase is over.
        self.ready = threading.Event()
        # The runtime reported an init error (POST /runtime/init/error).
        self.init_error: dict[str, Any] | None = None
        self.init_failed = threading.Event()
        self._server = ThreadingHTTPServer((host, 0), self._handler_class())
        self._server.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def address(self) -> str:
        """host:port, the value of AWS_LAMBDA_RUNTIME_API."""
        host, port = self._server.server_address[:2]
        return f"{host}:{port}"

    def start(self) -> RuntimeApi:
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.2}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self._closed.set()
        self._server.shutdown()
        self._server.server_close()
        for invocation in list(self._invocations.values()):
            invocation.done.set()

    def submit(self, invocation: Invocation) -> Invocation:
        with self._lock:
            self._invocations[invocation.request_id] = invocation
        self._pending.put(invocation)
        return invocation

    # server side ---------------------------------------------------------------------------

    def _next(self) -> Invocation | None:
        self.ready.set()
        while not self._closed.is_set():
            try:
                invocation = self._pending.get(timeout=_POLL_S)
            except queue.Empty:
                continue
            invocation.delivered.set()
            return invocation
        return None

    def _answer(self, request_id: str, kind: str, body: bytes, error_type: str | None) -> bool:
        with self._lock:
            invocation = self._invocations.pop(request_id, None)
        if invocation is None:
            return False
        if kind == "response":
            invocation.response = body
        else:
            invocation.error = _error_document(body, error_type)
        invocation.done.set()
        return True

    def _init_error(self, body: bytes, error_type: str | None) -> None:
        self.init_error = _error_document(body, error_type)
        self.init_failed.set()

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        api = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # Headers and body go out in two writes; with Nagle's algorithm on, the body waits
            # for the client's delayed ACK of the headers (40 ms on Linux) on every call.
            disable_nagle_algorithm = True

            def log_message(self, format: str, *args: Any) -> None:
                del format, args  # the runtime's requests are not worth a log line each

            def _send(
                self,
                status: int,
                payload: dict[str, Any] | bytes,
                headers: dict[str, str] | None = None,
            ) -> None:
                body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
                self.send_response(status)
                for name, value in (headers or {"Content-Type": "application/json"}).items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                    self.wfile.write(body)

            def _body(self) -> bytes:
                if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                    chunks = []
                    while True:
                        size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                        if size == 0:
                            while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                                pass
                            return b"".join(chunks)
                        chunks.append(self.rfile.read(size))
                        self.rfile.readline()
                return self.rfile.read(int(self.headers.get("Content-Length") or 0))

            def do_GET(self) -> None:
                if self.path != f"{PREFIX}/invocation/next":
                    self._send(404, {"errorMessage": "not found", "errorType": "NotFound"})
                    return
                invocation = api._next()
                if invocation is None:  # the environment is going away
                    self._send(500, {"errorMessage": "shutting down", "errorType": "Shutdown"})
                    return
                self._send(200, invocation.event, invocation.headers())

            def do_POST(self) -> None:
                body = self._body()
                error_type = self.headers.get(ERROR_TYPE_HEADER)
                if self.path == f"{PREFIX}/init/error":
                    api._init_error(body, error_type)
                    self._send(202, {"status": "OK"})
                    return
                parts = self.path.removeprefix(f"{PREFIX}/invocation/").split("/")
                if (
                    not self.path.startswith(f"{PREFIX}/invocation/")
                    or len(parts) != 2
                    or parts[1] not in ("response", "error")
                ):
                    self._send(404, {"errorMessage": "not found", "errorType": "NotFound"})
                    return
                if api._answer(parts[0], parts[1], body, error_type):
                    self._send(202, {"status": "OK"})
                else:
                    self._send(
                        400,
                        {
                            "errorMessage": f"unknown request id {parts[0]}",
                            "errorType": "InvalidRequestID",
                        },
                    )

        return Handler
