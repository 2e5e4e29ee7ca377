"""Lambda-parity execution: the deployed artifacts, run as the managed runtime runs them.

For each function the runner starts, on its first invocation (and again after a crash, a
timeout or an init failure):

- the function's deployed zip (the file whose sha256 is the CodeSha256 the emulator holds
  for the function: what Terraform uploaded, never the working tree) extracted and mounted
  read-only as /var/task; each layer's deployed zip (by its CodeSha256 too) extracted, in
  the function's layer order, and mounted read-only as /opt;
- a private, empty /tmp per environment;
- the root file system of inferstack.local.rootfs (Debian trixie, python3.13) with AWS's
  runtime interface client in /var/runtime, read-only, entered through
  inferstack.local.sandbox (a mount namespace of its own, chroot, uid 993 like Lambda's
  sandbox user);
- `python3.13 -m awslambdaric <handler>` from /var/task, with Lambda's environment
  (execenv.lambda_environment) and AWS_LAMBDA_RUNTIME_API pointing at a Runtime API served
  for this environment (inferstack.local.runtimeapi).

The init phase ends when the runtime first asks for an invocation. An init error posted by
the runtime (Runtime.ImportModuleError, Runtime.HandlerNotFound, ...) fails the invocation
with that error and the environment is discarded, so the next invocation initialises again.
The function's timeout is enforced (the environment is killed and replaced, "Task timed
out after N.00 seconds"), and a runtime that exits is replaced (Runtime.ExitError). The
function's output and the platform's START/END/REPORT lines go to its log file.
"""

from __future__ import annotations

import base64
import hashlib
import json
import shutil
import subprocess
import tempfile
import threading
import time
import uuid
import zipfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from inferstack.local.discovery import FunctionConfig
from inferstack.local.execenv import (
    BaseEnvironment,
    InvocationError,
    InvokeResult,
    lambda_environment,
)
from inferstack.local.runtimeapi import Invocation, RuntimeApi
from inferstack.local.sandbox import (
    PYTHON,
    SANDBOX_TMP,
    Mount,
    SandboxError,
    ensure_lambda_runtime,
    ensure_mount_points,
    sandbox_command,
)

# Lambda's sandbox user (sbx_user1051) and group.
LAMBDA_USER = "993:990"
INIT_LIMIT_S = 10.0  # Lambda's init phase limit for on-demand functions
_WAIT_S = 0.05
_extract_lock = threading.Lock()


class ArtifactError(RuntimeError):
    """The deployed code of a function is not among the local artifacts."""


_digests: dict[tuple[str, int, int], str] = {}


def code_sha256(path: Path) -> str:
    """Lambda's CodeSha256: base64 of the zip's sha256 digest (memoised per file version)."""
    info = path.stat()
    key = (str(path.resolve()), info.st_size, info.st_mtime_ns)
    if key not in _digests:
        _digests[key] = _code_sha256(path)
    return _digests[key]


def _code_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return base64.b64encode(digest.digest()).decode()


@dataclass(frozen=True)
class Artifacts:
    """The deployed zips of one function: its code and its layers, in order."""

    code: Path
    layers: tuple[Path, ...]


def find_artifact(sha: str, search: list[Path], what: str) -> Path:
    for folder in search:
        for path in sorted(folder.glob("*.zip")) if folder.is_dir() else ():
            if code_sha256(path) == sha:
                return path
    where = ", ".join(str(s) for s in search)
    raise ArtifactError(
        f"{what}: no zip in {where} has the deployed CodeSha256 {sha}: the deployed code is "
        "not the current build (rebuild and apply again: `make down up`)"
    )


def resolve_artifacts(function: FunctionConfig, lam: Any, search: list[Path]) -> Artifacts:
    """The zips the emulator holds for `function`, found by CodeSha256 among `search`."""
    code = find_artifact(function.code_sha256, search, f"function {function.name}")
    layers = []
    for arn in function.layers:
        # arn:aws:lambda:<region>:<account>:layer:<name>:<version> (GetLayerVersion: moto
        # has no GetLayerVersionByArn)
        name, version = arn.split(":")[6], int(arn.split(":")[7])
        layer = lam.get_layer_version(LayerName=name, VersionNumber=version)
        sha = layer["Content"]["CodeSha256"]
        layers.append(find_artifact(sha, search, f"layer {arn}"))
    return Artifacts(code, tuple(layers))


def extract_once(zips: tuple[Path, ...], cache: Path) -> Path:
    """The zips extracted in order into one folder (cached by their digests), read-only use."""
    key = hashlib.sha256("\0".join(code_sha256(z) for z in zips).encode()).hexdigest()[:20]
    final = cache / key
    with _extract_lock:
        if not final.is_dir():
            cache.mkdir(parents=True, exist_ok=True)
            work = Path(tempfile.mkdtemp(prefix=f".{key}.tmp-", dir=cache))
            for path in zips:
                with zipfile.ZipFile(path) as archive:
                    archive.extractall(work)
            work.chmod(0o755)
            work.rename(final)
    return final


def _utc_now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


class SandboxEnvironment(BaseEnvironment):
    """A Lambda execution environment in the root file system, started lazily, replaced
    after a timeout, a crash or an init error. Same interface as execenv.ExecutionEnvironment."""

    def __init__(
        self,
        function: FunctionConfig,
        *,
        artifacts: Artifacts,
        rootfs: Path | None = None,
        **place: Any,
    ) -> None:
        """place: where it runs (BaseEnvironment's endpoint_url, region, work_dir, log_path)."""
        super().__init__(function, **place)
        self.artifacts = artifacts
        self.rootfs = rootfs
        self.api: RuntimeApi | None = None

    def _log(self, line: str) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("a") as log:
            log.write(line.rstrip("\n") + "\n")

    def _mounts(self) -> list[Mount]:
        cache = self.work_dir.parent / ".artifacts"
        task = extract_once((self.artifacts.code,), cache)
        opt = extract_once(self.artifacts.layers, cache) if self.artifacts.layers else None
        tmp = self.work_dir / "tmp"
        shutil.rmtree(tmp, ignore_errors=True)  # a new environment starts with an empty /tmp
        tmp.mkdir(parents=True)
        tmp.chmod(0o1777)
        mounts = [Mount(task, "/var/task", read_only=True), Mount(tmp, SANDBOX_TMP)]
        if opt is not None:
            mounts.append(Mount(opt, "/opt", read_only=True))
        return mounts

    def _start(self) -> float:
        arch = (self.function.architectures or ("x86_64",))[0]
        root = self.rootfs or ensure_lambda_runtime(arch)
        mounts = self._mounts()
        ensure_mount_points(root, [m.target for m in mounts])
        self.api = RuntimeApi().start()
        env = lambda_environment(
            self.function,
            endpoint_url=self.endpoint_url,
            region=self.region,
            tmp_dir=self.work_dir / "tmp",
            runtime_api=self.api.address,
        )
        argv = [PYTHON, "-m", "awslambdaric", self.function.handler]
        command = sandbox_command(root, argv, mounts=mounts, workdir="/var/task", user=LAMBDA_USER)
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        started = time.monotonic()
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                start_new_session=True,
            )
        self.cold_starts += 1
        limit = INIT_LIMIT_S + self.function.timeout_s
        while not (self.api.ready.is_set() or self.api.init_failed.is_set()):
            if self.process.poll() is not None or time.monotonic() - started > limit:
                break
            self.api.ready.wait(_WAIT_S)
        init_ms = (time.monotonic() - started) * 1000
        if self.api.ready.is_set():
            return init_ms
        error = self.api.init_error
        code = self.process.poll()
        self.stop()
        if error is not None:
            self._log(
                f"INIT_REPORT Init Duration: {init_ms:.2f} ms Phase: init Status: error "
                f"Error Type: {error['errorType']}"
            )
            raise InvocationError(error["errorType"], error["errorMessage"], error["stackTrace"])
        if code is None:
            self._log(f"INIT_REPORT Init Duration: {init_ms:.2f} ms Phase: init Status: timeout")
            raise InvocationError("Sandbox.Timedout", f"Task timed out after {limit:.2f} seconds")
        raise InvocationError(
            "Runtime.ExitError", f"Error: Runtime exited with error: {_exit(code)}"
        )

    def invoke(self, event: Any, *, request_id: str | None = None) -> InvokeResult:
        """Run one invocation; raises InvocationError like an Unhandled function error."""
        with self._lock:
            init_ms = None
            if not self.running:
                self.stop()
                try:
                    init_ms = self._start()
                except (SandboxError, OSError) as exc:  # the local platform failed
                    self.stop()
                    raise InvocationError("ServiceException", str(exc)) from exc
            assert self.api is not None and self.process is not None
            request_id = request_id or str(uuid.uuid4())
            timeout = float(self.function.timeout_s)
            invocation = Invocation(
                request_id=request_id,
                event=json.dumps(event).encode(),
                deadline_ms=int(time.time() * 1000 + timeout * 1000),
                function_arn=self.function.arn,
            )
            self._log(f"START RequestId: {request_id} Version: {self.function.version}")
            started = time.monotonic()
            self.api.submit(invocation)
            while not invocation.done.wait(_WAIT_S):
                if self.process.poll() is not None:
                    code = self.process.poll()
                    self.stop()
                    message = (
                        f"RequestId: {request_id} Error: Runtime exited with error: {_exit(code)}"
                    )
                    self._log(message)
                    raise InvocationError("Runtime.ExitError", message)
                if time.monotonic() - started > timeout:
                    self.stop()
                    message = (
                        f"{_utc_now()} {request_id} Task timed out after {timeout:.2f} seconds"
                    )
                    self._log(message)
                    raise InvocationError("Sandbox.Timedout", message)
            duration = (time.monotonic() - started) * 1000
            self.invocations += 1
            self._log(f"END RequestId: {request_id}")
            self._log(
                f"REPORT RequestId: {request_id}\tDuration: {duration:.2f} ms\t"
                f"Memory Size: {self.function.memory_mb} MB"
                + (f"\tInit Duration: {init_ms:.2f} ms" if init_ms is not None else "")
            )
            if invocation.error is not None:
                error = invocation.error
                if str(error.get("errorType", "")).startswith("Runtime."):
                    self.stop()  # the runtime itself failed: a new environment next time
                raise InvocationError(
                    error["errorType"], error["errorMessage"], error.get("stackTrace")
                )
            payload = json.loads(invocation.response) if invocation.response else None
            return InvokeResult(payload, duration, init_ms)

    def stop(self) -> None:
        self._stop_process()
        if self.api is not None:
            self.api.stop()
            self.api = None


def _exit(code: int | None) -> str:
    if code is None:
        return "unknown"
    return f"signal: {-code}" if code < 0 else f"exit status {code}"
