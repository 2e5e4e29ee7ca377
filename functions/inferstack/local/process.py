"""Stopping the processes the local cloud starts: by pid (and its own process group) only."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie child still answers kill(0); reap it if it is ours.
    with contextlib.suppress(ChildProcessError):
        done, _ = os.waitpid(pid, os.WNOHANG)
        if done == pid:
            return False
    return True


def stop_process(pid: int, *, group: bool = False, grace: float = 5.0) -> None:
    """SIGTERM, wait up to `grace` seconds, then SIGKILL.

    group=True signals the process group the pid leads (processes started with
    start_new_session=True), so the children it started stop with it.
    """

    def send(sig: int) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            if group:
                os.killpg(pid, sig)
            else:
                os.kill(pid, sig)

    if not pid_alive(pid):
        if group:
            send(signal.SIGKILL)  # leftovers of a group whose leader is gone
        return
    send(signal.SIGTERM)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        if not pid_alive(pid):
            break
        time.sleep(0.1)
    send(signal.SIGKILL)
    deadline = time.monotonic() + 2
    while pid_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)


def stop_child(process: subprocess.Popen[bytes] | None, *, grace: float) -> None:
    """Stop a child started with start_new_session=True and its group (stop_process), then
    reap it so that it leaves no zombie."""
    if process is None:
        return
    stop_process(process.pid, group=True, grace=grace)
    with contextlib.suppress(Exception):
        process.wait(timeout=grace)
