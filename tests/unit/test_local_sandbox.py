"""The Lambda Runtime API the runner serves, and the sandbox's command and mode (no root needed).

The runtime end to end (awslambdaric in the root file system) is tests/integration/
test_lambda_parity.py; here the API is driven as awslambdaric drives it, over HTTP.
"""

from __future__ import annotations

import http.client
import json
import threading
from pathlib import Path

import pytest
from inferstack.local.rootfs import host_arch
from inferstack.local.runtimeapi import PREFIX, Invocation, RuntimeApi
from inferstack.local.sandbox import (
    Mount,
    SandboxError,
    ensure_lambda_runtime,
    execution_mode,
    sandbox_command,
)


@pytest.fixture
def api() -> RuntimeApi:
    server = RuntimeApi().start()
    yield server
    server.stop()


def _request(
    api: RuntimeApi,
    method: str,
    path: str,
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
) -> tuple[int, dict[str, str], bytes]:
    conn = http.client.HTTPConnection(api.address, timeout=10)
    conn.request(method, path, body=body, headers=headers or {})
    response = conn.getresponse()
    return response.status, dict(response.getheaders()), response.read()


def test_next_hands_the_invocation_with_lambdas_headers(api: RuntimeApi) -> None:
    invocation = Invocation(
        "req-1", b'{"a": 1}', 1_700_000_000_000, "arn:aws:lambda:r:1:function:f"
    )
    threading.Timer(0.2, api.submit, args=(invocation,)).start()
    status, headers, body = _request(api, "GET", f"{PREFIX}/invocation/next")
    assert api.ready.is_set()  # the first /next ends the init phase
    assert (status, json.loads(body)) == (200, {"a": 1})
    assert headers["Lambda-Runtime-Aws-Request-Id"] == "req-1"
    assert headers["Lambda-Runtime-Deadline-Ms"] == "1700000000000"
    assert headers["Lambda-Runtime-Invoked-Function-Arn"] == "arn:aws:lambda:r:1:function:f"
    assert headers["Lambda-Runtime-Trace-Id"].startswith("Root=1-")
    assert invocation.delivered.is_set() and not invocation.done.is_set()
    status, _, _ = _request(api, "POST", f"{PREFIX}/invocation/req-1/response", b'{"ok": true}')
    assert status == 202
    assert invocation.done.is_set() and invocation.response == b'{"ok": true}'
    # an id that is not pending (answered already) is refused
    status, _, body = _request(api, "POST", f"{PREFIX}/invocation/req-1/response", b"{}")
    assert (status, json.loads(body)["errorType"]) == (400, "InvalidRequestID")


def test_function_and_init_errors(api: RuntimeApi) -> None:
    invocation = api.submit(Invocation("req-2", b"{}", 0, "arn"))
    error = {"errorMessage": "boom", "errorType": "ValueError", "stackTrace": ["x"]}
    status, _, _ = _request(api, "POST", f"{PREFIX}/invocation/req-2/error",
                            json.dumps(error).encode(),
                            {"Lambda-Runtime-Function-Error-Type": "ValueError"})  # fmt: skip
    assert status == 202 and invocation.error == error
    init = {"errorMessage": "Unable to import module 'm': No module named 'x'",
            "errorType": "Runtime.ImportModuleError"}  # fmt: skip
    status, _, _ = _request(api, "POST", f"{PREFIX}/init/error", json.dumps(init).encode(),
                            {"Lambda-Runtime-Function-Error-Type": init["errorType"]})  # fmt: skip
    assert status == 202
    assert api.init_failed.is_set()
    assert api.init_error == {**init, "stackTrace": []}
    assert _request(api, "GET", f"{PREFIX}/nothing")[0] == 404


def test_execution_mode() -> None:
    assert execution_mode({}) == "parity"
    assert execution_mode({"INFERSTACK_LOCAL_EXECUTION": "venv"}) == "venv"
    assert execution_mode({"INFERSTACK_LOCAL_EXECUTION": "Parity"}) == "parity"
    with pytest.raises(SandboxError):
        execution_mode({"INFERSTACK_LOCAL_EXECUTION": "docker"})


def test_sandbox_command_mounts_then_makes_the_root_read_only(tmp_path: Path) -> None:
    root = tmp_path / f"trixie-{host_arch()}"
    command = sandbox_command(
        root,
        ["/usr/bin/python3.13", "-m", "awslambdaric", "h.handler"],
        mounts=[
            Mount(tmp_path / "task", "/var/task", read_only=True),
            Mount(tmp_path / "t", "/tmp"),
        ],
        workdir="/var/task",
        user="993:990",
    )
    assert command[0].endswith("/unshare") and command[0].startswith("/")
    assert command[1:4] == ["--mount", "--propagation", "private"]
    script = command[command.index("-c") + 1]
    lines = script.splitlines()
    # binds first, the task read-only, then the root read-only last, then chroot as the user
    bind = next(n for n, line in enumerate(lines) if line.endswith('"$1" "$R/var/task"'))
    assert lines[bind + 1].endswith('-o remount,bind,ro "$R/var/task"')
    assert bind < len(lines) - 2
    assert lines[-2].endswith('-o remount,bind,ro "$R"')
    assert "--userspec=993:990" in lines[-1] and "/usr/bin/env -C /var/task" in lines[-1]
    assert command[-4:] == ["/usr/bin/python3.13", "-m", "awslambdaric", "h.handler"]
    args = command[command.index("sandbox") + 1 :]
    assert args[:3] == [str(root), str(tmp_path / "task"), str(tmp_path / "t")]


def test_a_function_for_another_architecture_is_refused() -> None:
    other = "arm64" if host_arch() == "amd64" else "x86_64"
    with pytest.raises(SandboxError, match="cannot run as an execution environment"):
        ensure_lambda_runtime(other)


def test_the_runtime_api_answers_without_nagle_delays(api: RuntimeApi) -> None:
    # Headers and body are two writes: with Nagle's algorithm on, each answer waited for the
    # runtime's delayed ACK (40 ms on Linux), about 90 ms per invocation in all.
    assert api._server.RequestHandlerClass.disable_nagle_algorithm is True
