"""The local Batch runner reports deaths and applies the retry strategy as Batch does."""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path
from typing import Any

import pytest
from batch_support import MODULE_RETRY_STRATEGY
from inferstack.local.batch import (
    EXITED_REASON,
    OOM_REASON,
    BatchRunner,
    LocalJob,
    retry_decision,
)

STRATEGY = MODULE_RETRY_STRATEGY


class RecordingRunner(BatchRunner):
    def __init__(self, log_dir: Path) -> None:
        cpus = [min(os.sched_getaffinity(0))]
        super().__init__(
            None, (), endpoint_url="http://unused", region="us-east-1", log_dir=log_dir, cpus=cpus
        )
        self.reports: list[tuple[str, int | None, str]] = []

    def report(
        self,
        job_id: str,
        status: str,
        exit_code: int | None = None,
        reason: str = "",
        *,
        attempt: bool = True,
    ) -> None:
        del job_id, attempt
        if status in ("RUNNABLE", "SUCCEEDED", "FAILED"):
            self.reports.append((status, exit_code, reason))


def run_job(tmp_path: Path, code: str, *, memory_mib: int | None = None) -> RecordingRunner:
    runner = RecordingRunner(tmp_path)
    job = LocalJob(
        job_id="job-1:0",
        parent_id=None,
        array_index=0,
        command=[sys.executable, "-c", code],
        environment={},
        vcpus=1,
        attempts_allowed=STRATEGY["attempts"],
        retry_strategy=STRATEGY,
        timeout_s=60,
        queue_name="q",
        memory_mib=memory_mib,
    )
    runner._execute(job)
    return runner


# Dies on the first two attempts (the attempt number is in the environment), then succeeds.
KILLED_TWICE = (
    "import os, signal\n"
    "if int(os.environ['AWS_BATCH_JOB_ATTEMPT']) < 3: os.kill(os.getpid(), signal.SIGKILL)\n"
)


def test_a_worker_killed_by_a_signal_is_retried_and_reported_as_exit_137(tmp_path: Path) -> None:
    runner = run_job(tmp_path, KILLED_TWICE)
    assert runner.reports == [
        ("RUNNABLE", 137, EXITED_REASON),
        ("RUNNABLE", 137, EXITED_REASON),
        ("SUCCEEDED", 0, ""),
    ]


@pytest.mark.parametrize("exit_code", [65, 78, 2])
def test_deliberate_exits_are_not_retried(tmp_path: Path, exit_code: int) -> None:
    runner = run_job(tmp_path, f"raise SystemExit({exit_code})")
    assert runner.reports == [("FAILED", exit_code, EXITED_REASON)]


def test_an_oom_kill_is_reported_as_batch_reports_it_and_retried(tmp_path: Path) -> None:
    hog = "import time\nb = bytearray(256 * 1024 * 1024)\nb[::4096] = b'x' * len(b[::4096])\n"
    runner = run_job(tmp_path, hog + "time.sleep(30)\n", memory_mib=128)
    assert runner.reports == [
        ("RUNNABLE", 137, OOM_REASON),
        ("RUNNABLE", 137, OOM_REASON),
        ("FAILED", 137, OOM_REASON),
    ]


def test_retry_rules_first_match_wins_and_no_match_retries() -> None:
    status: Any = EXITED_REASON
    assert retry_decision(75, "", STRATEGY, status) is True
    assert retry_decision(137, OOM_REASON, STRATEGY, OOM_REASON) is True
    assert retry_decision(139, "", STRATEGY, status) is True
    assert retry_decision(65, "", STRATEGY, status) is False
    # The status reason decides before the exit code: a host interruption is retried.
    assert retry_decision(65, "", STRATEGY, "Host EC2 (instance i-1) terminated.") is True
    assert retry_decision(1, "", {"attempts": 2, "evaluateOnExit": []}) is True


def module_retry_conditions() -> list[dict[str, str]]:
    """The on-demand retry conditions of modules/batch/batch.tf, as the Batch API names them."""
    source = (Path(__file__).resolve().parents[2] / "modules/batch/batch.tf").read_text()
    block = source.split("retry_conditions = [", 1)[1].split("\n  ]\n", 1)[0]
    names = {
        "on_status_reason": "onStatusReason",
        "on_reason": "onReason",
        "on_exit_code": "onExitCode",
    }
    conditions = []
    for obj in re.findall(r"\{ (action = [^}]*)\}", block):
        fields = dict(re.findall(r'(\w+) = "([^"]*)"', obj))
        if "Spot" in fields.get("on_status_reason", ""):
            continue  # the compute.use_spot alternative of the first condition
        conditions.append({names.get(k, k): v for k, v in fields.items()})
    return conditions


def test_the_strategy_here_is_the_module_s() -> None:
    assert module_retry_conditions() == STRATEGY["evaluateOnExit"]
