"""The AWS emulator: a moto server on 127.0.0.1, started and always stopped by the project.

moto runs as a child process (not a thread), so its state, its threads and its crashes stay
out of the caller, and stopping it is one signal. It is launched through
`inferstack.local.motoserver`, moto's own server plus truthful Batch job states (see there).
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from types import FrameType, TracebackType

from inferstack.local.iam import BOOTSTRAP_CALLS, FAKE_CREDENTIALS, Identities, bootstrap
from inferstack.local.process import stop_child

# moto's service config, posted before anything is created (contract: before the apply).
# Lambda and Batch code never runs inside moto; the local runner runs it.
MOTO_CONFIG = {"lambda": {"use_docker": False}, "batch": {"use_docker": False}}
MOTO_COMMAND = (sys.executable, "-m", "inferstack.local.motoserver")
__all__ = ["FAKE_CREDENTIALS", "Emulator", "EmulatorError", "free_port", "http_json", "port_open"]


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def port_open(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) == 0


def http_json(url: str, payload: dict | None = None, timeout: float = 10.0) -> dict:
    data = json.dumps(payload).encode() if payload is not None else None
    request = urllib.request.Request(  # noqa: S310 - local http only
        url, data=data, method="POST" if data is not None else "GET"
    )
    request.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
        body = response.read()
    return json.loads(body) if body else {}


class EmulatorError(RuntimeError):
    pass


class Emulator:
    """moto server lifecycle: start -> healthy -> configured; stop on exit, signal or error.

    As a context manager it stops moto on leaving the block. `detach=True` starts it in its
    own session for `inferstack local up` (the caller records the pid; `down` stops it).
    `enforce_iam=True`: moto authorises every request after the first `BOOTSTRAP_CALLS`, which
    create the admin identity (`identities`, see inferstack.local.iam).
    """

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int | None = None,
        log_path: Path | None = None,
        detach: bool = False,
        http_server: str = "cheroot",
        enforce_iam: bool = False,
    ) -> None:
        self.host = host
        self.port = port or free_port(host)
        self.log_path = log_path
        self.detach = detach
        self.http_server = http_server  # motoserver --http-server: cheroot or werkzeug
        self.enforce_iam = enforce_iam
        self.identities: Identities | None = None
        self.process: subprocess.Popen[bytes] | None = None
        self._previous_handlers: dict[int, object] = {}

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process else None

    def start(self, timeout: float = 60.0) -> Emulator:
        env = {**os.environ, "MOTO_IAM_LOAD_MANAGED_POLICIES": "true", "MOTO_PORT": str(self.port)}
        env.pop("INITIAL_NO_AUTH_ACTION_COUNT", None)
        if self.enforce_iam:
            env["INITIAL_NO_AUTH_ACTION_COUNT"] = str(BOOTSTRAP_CALLS)
        command = [*MOTO_COMMAND, "-H", self.host, "-p", str(self.port)]
        log = self.log_path.open("ab") if self.log_path else subprocess.DEVNULL
        try:
            self.process = subprocess.Popen(
                [*command, "--http-server", self.http_server],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=env,
                start_new_session=True,
            )
        finally:
            if self.log_path:
                log.close()  # type: ignore[union-attr]
        if not self.detach:
            self._install_cleanup()
        try:
            self.wait_healthy(timeout)
            http_json(f"{self.url}/moto-api/config", MOTO_CONFIG)
            if self.enforce_iam:
                self.identities = bootstrap(self.url, "us-east-1")
        except BaseException:
            self.stop()
            raise
        return self

    def wait_healthy(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process and self.process.poll() is not None:
                raise EmulatorError(
                    f"moto server exited with {self.process.returncode}"
                    + (f"; see {self.log_path}" if self.log_path else "")
                )
            try:
                with urllib.request.urlopen(f"{self.url}/moto-api/", timeout=2) as resp:  # noqa: S310
                    if resp.status == 200:
                        return
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            time.sleep(0.2)
        raise EmulatorError(f"moto server not healthy on {self.url} after {timeout:.0f}s")

    def stop(self) -> None:
        stop_child(self.process, grace=5.0)
        self.process = None
        self._restore_signals()

    # cleanup on interpreter exit and on SIGINT/SIGTERM ---------------------------------

    def _install_cleanup(self) -> None:
        atexit.register(self.stop)
        for signum in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(ValueError):  # not the main thread: atexit still holds
                self._previous_handlers[signum] = signal.signal(signum, self._on_signal)

    def _restore_signals(self) -> None:
        for signum, handler in self._previous_handlers.items():
            with contextlib.suppress(ValueError, TypeError):
                signal.signal(signum, handler)  # type: ignore[arg-type]
        self._previous_handlers.clear()

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        previous = self._previous_handlers.get(signum)
        self.stop()
        if callable(previous):
            previous(signum, frame)
        elif signum == signal.SIGINT:
            raise KeyboardInterrupt
        else:
            raise SystemExit(128 + signum)

    def __enter__(self) -> Emulator:
        return self.start() if self.process is None else self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def client_env(self, region: str) -> dict[str, str]:
        """Environment that points boto3 (and Terraform's provider) at this emulator."""
        keys = self.identities.admin.environment() if self.identities else FAKE_CREDENTIALS
        return {
            **keys,
            "AWS_ENDPOINT_URL": self.url,
            "AWS_REGION": region,
            "AWS_DEFAULT_REGION": region,
        }
