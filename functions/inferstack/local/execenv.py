"""A local Lambda execution environment: one long-lived process per function.

Like on AWS, the handler module is imported once (init: model loading and the like happen
here, once) and the process then answers invocations one at a time. Requests and answers
travel over a private pipe (4-byte length + JSON), so the function's own stdout/stderr
(its logs) stay free and go to a log file.

The environment is the function's configuration read from the emulator, plus what the
Lambda service sets (AWS_LAMBDA_FUNCTION_NAME, _HANDLER, AWS_REGION, ...), fake credentials
and AWS_ENDPOINT_URL so every AWS call goes to the emulator. POWERTOOLS_TRACE_DISABLED=true:
there is no X-Ray daemon locally. Paths under /tmp in the function's variables are mapped to
a private per-function folder, as each Lambda environment has its own /tmp.

The code run is the project's installed package (the layer is built for python3.13 on
Linux and cannot be loaded by every local interpreter).
"""

from __future__ import annotations

import contextlib
import importlib
import json
import os
import struct
import subprocess
import sys
import threading
import time
import traceback
import uuid
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from inferstack.local.discovery import FunctionConfig
from inferstack.local.iam import role_environment
from inferstack.local.process import stop_child

_HEADER = struct.Struct(">I")


def _write_message(fd: int, message: dict) -> None:
    data = json.dumps(message, default=str).encode()
    payload = _HEADER.pack(len(data)) + data
    view = memoryview(payload)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def _read_exact(fd: int, size: int) -> bytes:
    chunks = []
    while size:
        chunk = os.read(fd, size)
        if not chunk:
            raise EOFError("execution environment closed the pipe")
        chunks.append(chunk)
        size -= len(chunk)
    return b"".join(chunks)


def _read_message(fd: int) -> dict:
    (size,) = _HEADER.unpack(_read_exact(fd, _HEADER.size))
    return json.loads(_read_exact(fd, size))


class InvocationError(RuntimeError):
    """The function failed (exception, timeout or crash): Lambda's "Unhandled" error."""

    def __init__(self, error_type: str, message: str, trace: list[str] | None = None) -> None:
        super().__init__(f"{error_type}: {message}")
        self.error_type = error_type
        self.message = message
        self.trace = trace or []

    def payload(self) -> dict[str, Any]:
        return {"errorMessage": self.message, "errorType": self.error_type,
                "stackTrace": self.trace}  # fmt: skip


@dataclass
class InvokeResult:
    payload: Any
    duration_ms: float
    init_ms: float | None  # set on the invocation that paid the init (cold start)


def lambda_environment(
    function: FunctionConfig,
    *,
    endpoint_url: str,
    region: str,
    tmp_dir: Path,
    runtime_api: str | None = None,
) -> dict[str, str]:
    """The function's environment: its variables plus what the Lambda service sets.

    runtime_api (host:port): parity execution, the function runs in the root file system
    through awslambdaric against that Runtime API, with /tmp its own (values are kept as
    they are) and the managed runtime's variables (managed_runtime_variables). Without it:
    the venv mode, /tmp paths mapped into tmp_dir, the local interpreter's own setup kept.
    """
    parity = runtime_api is not None
    env = {
        key: value if parity else _map_tmp(value, tmp_dir)
        for key, value in function.environment.items()
    }
    env.update(
        {
            # the execution role's credentials, from sts:AssumeRole as Lambda gives them
            **role_environment(
                endpoint_url, region, function.role, service="lambda", session=function.name
            ),
            "AWS_ENDPOINT_URL": endpoint_url,
            "AWS_REGION": region,
            "AWS_DEFAULT_REGION": region,
            "AWS_LAMBDA_FUNCTION_NAME": function.name,
            "AWS_LAMBDA_FUNCTION_VERSION": function.version,
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(function.memory_mb),
            "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{function.name}",
            "AWS_LAMBDA_LOG_STREAM_NAME": f"local/{uuid.uuid4().hex}",
            "AWS_EXECUTION_ENV": f"AWS_Lambda_{function.runtime or 'python3.13'}",
            "_HANDLER": function.handler,
            "POWERTOOLS_TRACE_DISABLED": "true",
            "TMPDIR": str(tmp_dir),
            "PYTHONUNBUFFERED": "1",
        }
    )
    if parity:
        for key in ("TMPDIR", "PYTHONUNBUFFERED"):  # not set by Lambda
            env.pop(key, None)
        env.update(managed_runtime_variables(function, runtime_api))  # type: ignore[arg-type]
        return env
    # Keep the local interpreter's own setup (venv, PATH), nothing else from the caller.
    for key in ("PATH", "VIRTUAL_ENV", "HOME", "LANG", "PYTHONPATH"):
        if key in os.environ and key not in env:
            env[key] = os.environ[key]
    return env


LAMBDA_TMP = "/tmp"  # noqa: S108 - Lambda's own /tmp, remapped below, never used here
LAMBDA_TASK_ROOT = "/var/task"
LAMBDA_RUNTIME_DIR = "/var/runtime"
LAMBDA_PYTHON = "3.13"


def managed_runtime_variables(function: FunctionConfig, runtime_api: str) -> dict[str, str]:
    """What the managed python3.13 runtime sets beside the function's own variables.

    https://docs.aws.amazon.com/lambda/latest/dg/configuration-envvars.html (defined runtime
    variables) and the module search path of
    https://docs.aws.amazon.com/lambda/latest/dg/python-package.html: the function's code,
    then the layers' /opt/python/lib/python3.13/site-packages and /opt/python, then the
    runtime's own libraries.
    """
    return {
        "AWS_LAMBDA_RUNTIME_API": runtime_api,
        "LAMBDA_TASK_ROOT": LAMBDA_TASK_ROOT,
        "LAMBDA_RUNTIME_DIR": LAMBDA_RUNTIME_DIR,
        "AWS_LAMBDA_INITIALIZATION_TYPE": "on-demand",
        "AWS_LAMBDA_LOG_FORMAT": "Text",
        "PYTHONPATH": ":".join(
            (
                LAMBDA_TASK_ROOT,
                f"/opt/python/lib/python{LAMBDA_PYTHON}/site-packages",
                "/opt/python",
                LAMBDA_RUNTIME_DIR,
            )
        ),
        "PATH": "/var/lang/bin:/usr/local/bin:/usr/bin/:/bin:/opt/bin",
        "LD_LIBRARY_PATH": "/var/lang/lib:/lib64:/usr/lib64:/var/runtime:/var/runtime/lib:"
        "/var/task:/var/task/lib:/opt/lib",
        "LANG": "en_US.UTF-8",
        "TZ": ":UTC",
        "AWS_XRAY_CONTEXT_MISSING": "LOG_ERROR",
        "_HANDLER": function.handler,
    }


def _map_tmp(value: str, tmp_dir: Path) -> str:
    if value == LAMBDA_TMP or value.startswith(LAMBDA_TMP + "/"):
        return str(tmp_dir / value.removeprefix(LAMBDA_TMP).lstrip("/"))
    return value


class BaseEnvironment(ABC):
    """What every local execution environment of a function has: the function and where it
    runs, one process started lazily (and again after a crash, a timeout or an init error),
    invocations run one at a time, and counters. Subclasses start the process and invoke."""

    def __init__(
        self,
        function: FunctionConfig,
        *,
        endpoint_url: str,
        region: str,
        work_dir: Path,
        log_path: Path,
    ) -> None:
        self.function = function
        self.endpoint_url = endpoint_url
        self.region = region
        self.work_dir = work_dir
        self.log_path = log_path
        self.process: subprocess.Popen[bytes] | None = None
        self._lock = threading.Lock()
        self.invocations = 0
        self.cold_starts = 0

    @property
    def pid(self) -> int | None:
        """The process id while the environment's process runs."""
        return self.process.pid if self.process and self.process.poll() is None else None

    @property
    def running(self) -> bool:
        return self.pid is not None

    def _stop_process(self) -> None:
        """Stop the process and its group (SIGTERM, then SIGKILL after 2 s)."""
        stop_child(self.process, grace=2.0)
        self.process = None

    @abstractmethod
    def invoke(self, event: Any, *, request_id: str | None = None) -> InvokeResult:
        """Run one invocation; raises InvocationError like an Unhandled function error."""

    @abstractmethod
    def stop(self) -> None:
        """Stop the process and release what the environment holds."""


class ExecutionEnvironment(BaseEnvironment):
    """Parent side: starts the child lazily, invokes it, replaces it after a crash/timeout."""

    # the pipes to and from the child while it runs
    _to_child: int | None = None
    _from_child: int | None = None

    def _start(self) -> float:
        tmp_dir = self.work_dir / "tmp"
        tmp_dir.mkdir(parents=True, exist_ok=True)
        env = lambda_environment(
            self.function, endpoint_url=self.endpoint_url, region=self.region, tmp_dir=tmp_dir
        )
        request_r, request_w = os.pipe()
        answer_r, answer_w = os.pipe()
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "inferstack.local.execenv", str(request_r), str(answer_w)],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                cwd=str(self.work_dir),
                pass_fds=(request_r, answer_w),
                start_new_session=True,
            )
        os.close(request_r)
        os.close(answer_w)
        self._to_child, self._from_child = request_w, answer_r
        self.cold_starts += 1
        ready = self._receive(timeout=max(10.0, 10.0 + self.function.timeout_s))
        if "init_error" in ready:
            error = ready["init_error"]
            self.stop()
            raise InvocationError(error["errorType"], error["errorMessage"], error["stackTrace"])
        return float(ready["init_ms"])

    def _receive(self, timeout: float) -> dict:
        assert self._from_child is not None
        result: dict[str, Any] = {}

        def read() -> None:
            try:
                result["message"] = _read_message(self._from_child)  # type: ignore[arg-type]
            except (EOFError, OSError, ValueError) as exc:
                result["error"] = exc

        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        reader.join(timeout)
        if reader.is_alive():
            self.stop()
            raise InvocationError("Sandbox.Timedout", f"Task timed out after {timeout:.2f} seconds")
        if "error" in result:
            code = self.process.poll() if self.process else None
            self.stop()
            raise InvocationError(
                "Runtime.ExitError", f"RequestId: Error: Runtime exited with error: {code}"
            )
        return result["message"]

    def invoke(self, event: Any, *, request_id: str | None = None) -> InvokeResult:
        """Run one invocation; raises InvocationError like an Unhandled function error."""
        with self._lock:
            init_ms = None
            if not self.running:
                init_ms = self._start()
            request_id = request_id or str(uuid.uuid4())
            started = time.monotonic()
            assert self._to_child is not None
            _write_message(
                self._to_child,
                {
                    "event": event,
                    "request_id": request_id,
                    "deadline_ms": int(time.time() * 1000) + self.function.timeout_s * 1000,
                    "function_name": self.function.name,
                    "function_arn": self.function.arn,
                    "memory_mb": self.function.memory_mb,
                },
            )
            answer = self._receive(timeout=float(self.function.timeout_s))
            self.invocations += 1
            duration = (time.monotonic() - started) * 1000
            if "error" in answer:
                error = answer["error"]
                raise InvocationError(
                    error["errorType"], error["errorMessage"], error.get("stackTrace")
                )
            return InvokeResult(answer.get("result"), duration, init_ms)

    def stop(self) -> None:
        for attr in ("_to_child", "_from_child"):
            fd = getattr(self, attr)
            if fd is not None:
                with contextlib.suppress(OSError):
                    os.close(fd)
                setattr(self, attr, None)
        self._stop_process()


# ---------------------------------------------------------------------------------------
# child side: `python -m inferstack.local.execenv <request fd> <answer fd>`


class LocalLambdaContext:
    """The attributes of the Lambda context object that handlers use."""

    def __init__(self, message: dict) -> None:
        self.function_name: str = message["function_name"]
        self.function_version = "$LATEST"
        self.invoked_function_arn: str = message["function_arn"]
        self.memory_limit_in_mb: int = int(message["memory_mb"])
        self.aws_request_id: str = message["request_id"]
        self.log_group_name = os.environ.get("AWS_LAMBDA_LOG_GROUP_NAME", "")
        self.log_stream_name = os.environ.get("AWS_LAMBDA_LOG_STREAM_NAME", "")
        self.identity = None
        self.client_context = None
        self._deadline_ms: int = int(message["deadline_ms"])

    def get_remaining_time_in_millis(self) -> int:
        return max(0, self._deadline_ms - int(time.time() * 1000))


def _error_payload(exc: BaseException) -> dict[str, Any]:
    return {
        "errorMessage": str(exc),
        "errorType": type(exc).__name__,
        "stackTrace": traceback.format_tb(exc.__traceback__),
    }


def _child_main(request_fd: int, answer_fd: int) -> None:
    handler_spec = os.environ["_HANDLER"]
    module_name, _, function_name = handler_spec.rpartition(".")
    started = time.monotonic()
    try:
        handler = getattr(importlib.import_module(module_name), function_name)
    except Exception as exc:  # reported like Runtime.ImportModuleError
        traceback.print_exc()
        _write_message(answer_fd, {"init_error": _error_payload(exc)})
        return
    _write_message(answer_fd, {"init_ms": (time.monotonic() - started) * 1000})
    while True:
        try:
            message = _read_message(request_fd)
        except EOFError:
            return
        context = LocalLambdaContext(message)
        print(f"START RequestId: {context.aws_request_id}", flush=True)
        try:
            result = handler(message["event"], context)
            json.dumps(result)  # Lambda serialises the answer; unserialisable is an error
            answer: dict[str, Any] = {"result": result}
        except Exception as exc:
            traceback.print_exc()
            answer = {"error": _error_payload(exc)}
        print(f"END RequestId: {context.aws_request_id}", flush=True)
        _write_message(answer_fd, answer)


if __name__ == "__main__":
    _child_main(int(sys.argv[1]), int(sys.argv[2]))
