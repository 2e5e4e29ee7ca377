"""LocalStack (free edition, no Docker) as a second emulator, in its own virtualenv.

localstack-core pins versions that conflict with the project's, so it lives in
build/tools/localstack (Python 3.11). Without Docker it runs as
`python -m localstack.runtime.main`; it has no Lambda, API Gateway v2, WAFv2, Batch, ECR or
X-Ray there, so only the model store, network and observability modules apply on it.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path
from types import TracebackType

from inferstack.local.emulator import free_port
from inferstack.local.process import stop_child

LOCALSTACK_VERSION = "4.9.2"
# Versions that localstack-core 4.9.2 needs but does not pin tightly enough.
PINS = ("cbor2<6", "pyopenssl==25.3.0", "cryptography<47", "psutil<7.2")
PYTHON = "python3.11"


def venv_python(venv: Path) -> Path:
    return venv / "bin" / "python"


def ensure_venv(venv: Path) -> Path:
    """Create the virtualenv and install localstack-core once; return its python."""
    python = venv_python(venv)
    marker = venv / ".inferstack-installed"
    wanted = f"localstack-core[runtime]=={LOCALSTACK_VERSION} " + " ".join(PINS)
    if python.exists() and marker.is_file() and marker.read_text() == wanted:
        return python
    interpreter = shutil.which(PYTHON) or shutil.which("python3")
    if interpreter is None:
        raise RuntimeError(f"{PYTHON} is needed for LocalStack")
    subprocess.run([interpreter, "-m", "venv", str(venv)], check=True)
    subprocess.run(
        [str(python), "-m", "pip", "install", "--quiet",
         f"localstack-core[runtime]=={LOCALSTACK_VERSION}", *PINS],
        check=True,
    )  # fmt: skip
    marker.write_text(wanted)
    return python


class LocalStack:
    """Start LocalStack on 127.0.0.1:<free port>; stop with SIGTERM, SIGKILL if it hangs."""

    def __init__(self, python: Path, *, work_dir: Path, port: int | None = None) -> None:
        self.python = python
        self.work_dir = work_dir
        self.port = port or free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 180.0) -> LocalStack:
        self.work_dir.mkdir(parents=True, exist_ok=True)
        env = {
            **os.environ,
            "GATEWAY_LISTEN": f"127.0.0.1:{self.port}",
            "GATEWAY_SERVER": "hypercorn",
            "OVERRIDE_IN_DOCKER": "0",
            "DNS_ADDRESS": "0",
            "LOCALSTACK_VOLUME_DIR": str(self.work_dir / "volume"),
            "FILESYSTEM_ROOT": str(self.work_dir / "fs"),
            "SKIP_INFRA_DOWNLOADS": "1",
            "DISABLE_EVENTS": "1",
        }
        with (self.work_dir / "localstack.log").open("ab") as log:
            self.process = subprocess.Popen(
                [str(self.python), "-m", "localstack.runtime.main"],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                cwd=str(self.work_dir),
                start_new_session=True,
            )
        try:
            self._wait_ready(timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process and self.process.poll() is not None:
                raise RuntimeError(f"LocalStack exited; see {self.work_dir / 'localstack.log'}")
            with contextlib.suppress(OSError, ValueError):
                url = f"{self.url}/_localstack/health"
                with urllib.request.urlopen(url, timeout=2) as resp:  # noqa: S310 - local
                    if resp.status == 200 and json.loads(resp.read()).get("services"):
                        return
            time.sleep(1)
        raise RuntimeError(f"LocalStack not ready after {timeout:.0f}s")

    def stop(self) -> None:
        # It sometimes hangs on SIGTERM: SIGKILL after a few seconds.
        stop_child(self.process, grace=5.0)
        self.process = None

    def __enter__(self) -> LocalStack:
        return self.start() if self.process is None else self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
