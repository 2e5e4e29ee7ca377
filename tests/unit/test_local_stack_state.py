"""inferstack.local.stack bookkeeping: endpoints.json and `down` without a real stack."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from inferstack.local import stack
from inferstack.local.process import pid_alive


def _sleeper() -> subprocess.Popen[bytes]:
    """Stand-in for a recorded emulator/runner process (its own session, like theirs)."""
    return subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(60)"], start_new_session=True
    )


def test_down_stops_recorded_processes_and_removes_the_state(tmp_path: Path) -> None:
    state = tmp_path / "local"
    paths = stack.Paths(tmp_path, state)
    emulator, runner, function = _sleeper(), _sleeper(), _sleeper()
    stack.write_processes(paths, {"emulator": emulator.pid, "runner": runner.pid})
    # a function environment the runner could not stop itself
    paths.runner_state.write_text(json.dumps({"functions": {"f": {"pid": function.pid}}}))
    assert stack.is_up(paths)
    stack.down(root=tmp_path, state_dir=state, quiet=True)
    for process in (emulator, runner, function):
        process.wait(timeout=10)
        assert not pid_alive(process.pid)
    assert not state.exists()
    assert not stack.is_up(paths)


def test_endpoints_point_at_the_runner_and_the_emulator(tmp_path: Path) -> None:
    paths = stack.Paths(tmp_path, tmp_path / "local")
    paths.state.mkdir()
    paths.runner_state.write_text(
        json.dumps({"api_urls": {"inferstack-api/v1": "http://127.0.0.1:4321/v1"}})
    )
    outputs = {
        "stage_name": "v1",
        "api_key_value": "k3y",
        "region": "us-east-1",
        "data_bucket": "data",
        "model_bucket": "models",
        "api_url": "https://abc.execute-api.us-east-1.amazonaws.com/v1/predict",
    }
    endpoints = stack.write_endpoints(paths, "http://127.0.0.1:5000", outputs, tmp_path)
    assert endpoints["api_url"] == "http://127.0.0.1:4321/v1/predict"
    assert endpoints["api_key"] == "k3y"
    assert endpoints["emulator_url"] == "http://127.0.0.1:5000"
    assert endpoints["aws_api_url"] == outputs["api_url"]
    assert json.loads(paths.endpoints.read_text()) == endpoints
    assert {"region", "data_bucket", "model_bucket"} <= set(endpoints)


def test_a_failed_session_keeps_the_logs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    paths = stack.Paths(tmp_path)

    def failing_up(**kwargs: object) -> dict:
        paths.logs.mkdir(parents=True)
        (paths.logs / "emulator.log").write_text("what went wrong\n")
        raise stack.LocalStackError("terraform apply failed")

    monkeypatch.setattr(stack, "up", failing_up)
    with pytest.raises(stack.LocalStackError), stack.stack_session(root=tmp_path):
        raise AssertionError("not reached")
    assert (paths.logs / "emulator.log").read_text() == "what went wrong\n"
    assert sorted(p.name for p in paths.state.iterdir()) == ["logs"]
