"""AWS Batch jobs run locally: each job (or array child) becomes a local worker process.

The emulator (inferstack.local.motoserver) keeps submitted jobs SUBMITTED; this runner
finds them with ListJobs, runs them with the job definition's command (Ref:: parameters
substituted), environment and retry strategy, and reports every transition back
(RUNNABLE -> STARTING -> RUNNING -> SUCCEEDED/FAILED, one attempt per try, exit codes), so
DescribeJobs tells what really happened.

Like a Fargate task with N vCPUs, each worker is pinned to N CPUs of this machine
(sched_setaffinity), and no more workers run at once than the CPUs allow. Worker output
goes to build/local/logs/batch/<job id>.<attempt>.log.

Deaths are reported as Batch reports them: a worker killed by a signal exits 128 + the
signal's number (137 for SIGKILL), and one whose resident memory goes over the job
definition's MEMORY is killed and reported as ``OutOfMemoryError: Container killed due to
memory usage`` with exit 137. Whether a failed attempt is retried follows the job
definition's ``evaluateOnExit`` rules the way Batch applies them: the first rule whose every
condition matches decides; when none matches, the attempt is retried.

With a sandbox (inferstack.local.sandbox.WorkerSandbox, what the runner uses by default), a
worker runs as the image would on Fargate: in the python3.13 root file system, read-only,
with exactly the image's pinned packages, its user, working directory and environment, and
an empty scratch folder for each of the job definition's mount points. Without one it runs
from this interpreter's environment (the console scripts of its venv).
"""

from __future__ import annotations

import contextlib
import fnmatch
import os
import queue
import shutil
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from inferstack.local.emulator import http_json
from inferstack.local.iam import role_environment
from inferstack.local.process import stop_process
from inferstack.local.sandbox import WorkerSandbox

STATUS_PATH = "/moto-api/inferstack/batch-job-status"
OOM_REASON = "OutOfMemoryError: Container killed due to memory usage"
EXITED_REASON = "Essential container in task exited"
_MEMORY_POLL_S = 0.25


def substitute_parameters(command: list[str], parameters: dict[str, str]) -> list[str]:
    """Batch replaces a whole `Ref::name` argument with the parameter's value."""
    out = []
    for part in command:
        if part.startswith("Ref::") and part[5:] in parameters:
            out.append(parameters[part[5:]])
        else:
            out.append(part)
    return out


def retry_decision(
    exit_code: int | None,
    reason: str,
    strategy: dict[str, Any],
    status_reason: str | None = None,
) -> bool:
    """True = retry this failed attempt (if attempts remain), per evaluateOnExit.

    ``reason``: the container's reason (onReason), ``status_reason``: the attempt's status
    reason (onStatusReason; None: the same as ``reason``).
    """
    status_reason = reason if status_reason is None else status_reason
    for rule in strategy.get("evaluateOnExit", []) or []:
        matches = True
        if "onExitCode" in rule:
            matches &= exit_code is not None and fnmatch.fnmatch(str(exit_code), rule["onExitCode"])
        if "onReason" in rule:
            matches &= fnmatch.fnmatch(reason, rule["onReason"])
        if "onStatusReason" in rule:
            matches &= fnmatch.fnmatch(status_reason, rule["onStatusReason"])
        if matches:
            return str(rule.get("action", "")).upper() == "RETRY"
    return True  # no rule matched: Batch retries any failure while attempts remain


def _vcpus(container: dict[str, Any]) -> int:
    for req in container.get("resourceRequirements", []) or []:
        if req.get("type") == "VCPU":
            return max(1, int(float(req["value"])))
    return max(1, int(container.get("vcpus") or 1))


def _memory_mib(container: dict[str, Any]) -> int | None:
    for req in container.get("resourceRequirements", []) or []:
        if req.get("type") == "MEMORY":
            return int(float(req["value"]))
    return int(container["memory"]) if container.get("memory") else None


def rss_mib(pid: int) -> float:
    """Resident memory of a process (0 when it is gone)."""
    try:
        with Path(f"/proc/{pid}/statm").open() as statm:
            pages = int(statm.read().split()[1])
    except (OSError, ValueError, IndexError):
        return 0.0
    return pages * os.sysconf("SC_PAGE_SIZE") / (1024 * 1024)


def exit_code_of(returncode: int) -> int:
    """A container killed by signal N exits 128 + N, as the container runtime reports it."""
    return 128 - returncode if returncode < 0 else returncode


def _resolve_executable(name: str) -> str:
    """Console scripts of the local interpreter's environment first (the worker image's)."""
    candidate = Path(sys.executable).parent / name
    if candidate.exists():
        return str(candidate)
    return shutil.which(name) or name


@dataclass
class LocalJob:
    job_id: str  # parent:index for array children
    parent_id: str | None
    array_index: int | None
    command: list[str]
    environment: dict[str, str]
    vcpus: int
    attempts_allowed: int
    retry_strategy: dict[str, Any]
    timeout_s: int | None
    queue_name: str
    status: str = "SUBMITTED"
    memory_mib: int | None = None
    job_role_arn: str | None = None  # the job definition's jobRoleArn
    attempts: list[dict[str, Any]] = field(default_factory=list)
    mount_points: tuple[str, ...] = ()  # the job definition's containerPaths


class BatchRunner:
    def __init__(
        self,
        batch: Any,
        job_queues: tuple[str, ...],
        *,
        endpoint_url: str,
        region: str,
        log_dir: Path,
        cpus: list[int] | None = None,
        poll_s: float = 1.0,
        sandbox: WorkerSandbox | None = None,
    ) -> None:
        self.batch = batch
        self.sandbox = sandbox
        self.job_queues = job_queues
        self.endpoint_url = endpoint_url
        self.region = region
        self.log_dir = log_dir
        self.cpus = cpus or sorted(os.sched_getaffinity(0))
        self.poll_s = poll_s
        self.stop_event = threading.Event()
        self.pending: queue.Queue[LocalJob] = queue.Queue()
        self.jobs: dict[str, LocalJob] = {}
        self.children: dict[str, list[str]] = {}
        self._free_cpus = list(self.cpus)
        self._cpu_lock = threading.Condition()
        self._running: dict[str, subprocess.Popen[bytes]] = {}
        self._threads: list[threading.Thread] = []
        self._seen: set[str] = set()

    # reporting ---------------------------------------------------------------------------

    def report(
        self,
        job_id: str,
        status: str,
        exit_code: int | None = None,
        reason: str = "",
        *,
        attempt: bool = True,
    ) -> None:
        payload: dict[str, Any] = {"jobId": job_id, "status": status, "attempt": attempt}
        if exit_code is not None:
            payload["exitCode"] = exit_code
        if reason:
            payload["reason"] = reason
        http_json(self.endpoint_url + STATUS_PATH, payload)

    # discovery ---------------------------------------------------------------------------

    def scan(self) -> int:
        """Queue newly submitted jobs; returns how many local jobs were queued."""
        queued = 0
        for job_queue in self.job_queues:
            summaries = self.batch.list_jobs(jobQueue=job_queue, jobStatus="SUBMITTED")
            for summary in summaries.get("jobSummaryList", []):
                job_id = summary["jobId"]
                # moto lists array children in the queue too; they are run via their parent
                if ":" in job_id or job_id in self._seen:
                    continue
                queued += self._accept(job_id, job_queue)
                self._seen.add(job_id)
        return queued

    def _accept(self, job_id: str, job_queue: str) -> int:
        job = self.batch.describe_jobs(jobs=[job_id])["jobs"][0]
        definition = self.batch.describe_job_definitions(jobDefinitions=[job["jobDefinition"]])[
            "jobDefinitions"
        ][0]
        container = definition.get("containerProperties", {})
        parameters = {**definition.get("parameters", {}), **job.get("parameters", {})}
        command = substitute_parameters(
            job.get("container", {}).get("command") or container.get("command", []), parameters
        )
        env = {e["name"]: e["value"] for e in container.get("environment", [])}
        env.update({e["name"]: e["value"] for e in job.get("container", {}).get("environment", [])})
        strategy = definition.get("retryStrategy", {}) or {}
        timeout = (job.get("timeout") or definition.get("timeout") or {}).get(
            "attemptDurationSeconds"
        )
        size = job.get("arrayProperties", {}).get("size")
        indexes: list[int | None] = list(range(size)) if size else [None]
        queue_name = job_queue.rsplit("/", 1)[-1]
        self.report(job_id, "RUNNABLE")
        child_ids = []
        for index in indexes:
            local_id = job_id if index is None else f"{job_id}:{index}"
            local = LocalJob(
                job_id=local_id,
                parent_id=job_id if index is not None else None,
                array_index=index,
                command=command,
                environment=env,
                vcpus=min(_vcpus(container), len(self.cpus)),
                attempts_allowed=max(1, int(strategy.get("attempts", 1))),
                retry_strategy=strategy,
                timeout_s=int(timeout) if timeout else None,
                queue_name=queue_name,
                memory_mib=_memory_mib(container),
                mount_points=tuple(m["containerPath"] for m in container.get("mountPoints") or []),
                job_role_arn=container.get("jobRoleArn"),
            )
            self.jobs[local_id] = local
            child_ids.append(local_id)
            if index is not None:
                self.report(local_id, "RUNNABLE")
            self.pending.put(local)
        if size:
            self.children[job_id] = child_ids
            self.jobs[job_id] = LocalJob(
                job_id, None, None, command, env, 0, 1, strategy, None, queue_name, "RUNNABLE"
            )
        print(
            f"batch: job {job['jobName']} ({job_id}) accepted, {len(indexes)} task(s)", flush=True
        )
        return len(indexes)

    # execution ---------------------------------------------------------------------------

    def _take_cpus(self, n: int) -> list[int]:
        with self._cpu_lock:
            while len(self._free_cpus) < n and not self.stop_event.is_set():
                self._cpu_lock.wait(0.5)
            taken, self._free_cpus = self._free_cpus[:n], self._free_cpus[n:]
            return taken

    def _give_cpus(self, cpus: list[int]) -> None:
        with self._cpu_lock:
            self._free_cpus = sorted(self._free_cpus + cpus)
            self._cpu_lock.notify_all()

    def _environment(self, job: LocalJob, attempt: int) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG", "VIRTUAL_ENV")}
        env.update(job.environment)
        env.update(
            {
                # the job role's credentials, from sts:AssumeRole as ECS gives a task them
                **role_environment(
                    self.endpoint_url,
                    self.region,
                    job.job_role_arn,
                    service="ecs-tasks",
                    session=job.job_id,
                ),
                "AWS_ENDPOINT_URL": self.endpoint_url,
                "AWS_REGION": self.region,
                "AWS_DEFAULT_REGION": self.region,
                "AWS_BATCH_JOB_ID": job.job_id,
                "AWS_BATCH_JOB_ATTEMPT": str(attempt),
                "AWS_BATCH_JQ_NAME": job.queue_name,
                "AWS_BATCH_CE_NAME": "local",
                "PYTHONUNBUFFERED": "1",
            }
        )
        if job.array_index is not None:
            env["AWS_BATCH_JOB_ARRAY_INDEX"] = str(job.array_index)
        return env

    def _run_attempt(self, job: LocalJob, attempt: int, cpus: list[int]) -> tuple[int | None, str]:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        log_path = self.log_dir / f"{job.job_id.replace(':', '.')}.{attempt}.log"
        if not job.command:
            return None, "CannotStartContainerError: the job definition has no command"
        env = self._environment(job, attempt)
        self.report(job.job_id, "STARTING")
        scratch = self.sandbox.scratch(job.job_id, attempt) if self.sandbox else None
        try:
            if self.sandbox is not None and scratch is not None:
                command, env = self.sandbox.wrap(
                    job.command,
                    env,
                    job_environment=job.environment,
                    mount_points=job.mount_points,
                    scratch=scratch,
                )
            else:
                command = [_resolve_executable(job.command[0]), *job.command[1:]]
            with log_path.open("ab") as log:
                process = subprocess.Popen(
                    command,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    env=env,
                    start_new_session=True,
                    preexec_fn=lambda: os.sched_setaffinity(0, cpus),  # noqa: PLW1509
                )
        except (OSError, RuntimeError) as exc:
            if scratch is not None:
                shutil.rmtree(scratch, ignore_errors=True)
            return None, f"CannotStartContainerError: {exc}"
        self._running[job.job_id] = process
        self.report(job.job_id, "RUNNING")
        if job.parent_id:
            self._update_parent(job.parent_id)
        oom = threading.Event()
        watchdog = threading.Thread(
            target=self._watch_memory, args=(process, job.memory_mib, oom), daemon=True
        )
        watchdog.start()
        try:
            code = exit_code_of(process.wait(timeout=job.timeout_s))
            reason = "" if code == 0 else EXITED_REASON
        except subprocess.TimeoutExpired:
            stop_process(process.pid, group=True, grace=5.0)
            code, reason = exit_code_of(process.wait()), "Job attempt duration exceeded timeout"
        finally:
            self._running.pop(job.job_id, None)
            watchdog.join(timeout=2 * _MEMORY_POLL_S)
            if scratch is not None:  # the task's storage goes with the task
                shutil.rmtree(scratch, ignore_errors=True)
        if oom.is_set():
            code, reason = 137, OOM_REASON
        if self.stop_event.is_set() and code != 0:
            reason = "Terminated: the local runner stopped"
        return code, reason

    @staticmethod
    def _watch_memory(
        process: subprocess.Popen[bytes], limit_mib: int | None, oom: threading.Event
    ) -> None:
        """Kill the worker like the OOM killer when its RSS goes over the job's MEMORY."""
        if not limit_mib:
            return
        while process.poll() is None:
            if rss_mib(process.pid) > limit_mib:
                oom.set()
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(process.pid, signal.SIGKILL)
                return
            time.sleep(_MEMORY_POLL_S)

    def _execute(self, job: LocalJob) -> None:
        cpus = self._take_cpus(job.vcpus)
        try:
            for attempt in range(1, job.attempts_allowed + 1):
                if self.stop_event.is_set():
                    break
                code, reason = self._run_attempt(job, attempt, cpus)
                job.attempts.append({"exitCode": code, "reason": reason})
                print(f"batch: {job.job_id} attempt {attempt} exit {code} {reason}", flush=True)
                if code == 0:
                    job.status = "SUCCEEDED"
                    self.report(job.job_id, "SUCCEEDED", 0)
                    return
                # The container's reason is set for an OOM kill (Batch's onReason); the
                # attempt's status reason always (onStatusReason).
                container_reason = reason if reason == OOM_REASON else ""
                retry = retry_decision(code, container_reason, job.retry_strategy, reason)
                if attempt < job.attempts_allowed and retry and not self.stop_event.is_set():
                    self.report(job.job_id, "RUNNABLE", code, reason)
                    continue
                break
            job.status = "FAILED"
            last = job.attempts[-1] if job.attempts else {"exitCode": None, "reason": "stopped"}
            self.report(job.job_id, "FAILED", last["exitCode"], last["reason"])
        finally:
            self._give_cpus(cpus)
            if job.parent_id:
                self._update_parent(job.parent_id)

    def _update_parent(self, parent_id: str) -> None:
        """Array parent: RUNNING while children run; SUCCEEDED/FAILED when all are done."""
        parent = self.jobs[parent_id]
        statuses = [self.jobs[c].status for c in self.children[parent_id]]
        if all(s in ("SUCCEEDED", "FAILED") for s in statuses):
            failed = statuses.count("FAILED")
            parent.status = "FAILED" if failed else "SUCCEEDED"
            reason = f"{failed} of {len(statuses)} child jobs failed" if failed else ""
            self.report(parent_id, parent.status, None, reason)
        elif parent.status == "RUNNABLE":
            parent.status = "RUNNING"
            self.report(parent_id, "STARTING")
            self.report(parent_id, "RUNNING", attempt=False)

    def _worker_loop(self) -> None:
        while not self.stop_event.is_set():
            try:
                job = self.pending.get(timeout=0.5)
            except queue.Empty:
                continue
            try:
                self._execute(job)
            except Exception as exc:
                print(f"batch: {job.job_id}: runner error {exc!r}", flush=True)

    def _scan_loop(self) -> None:
        while not self.stop_event.is_set():
            try:
                self.scan()
            except Exception as exc:
                print(f"batch: scan failed: {exc!r}", flush=True)
            self.stop_event.wait(self.poll_s)

    def start(self) -> None:
        # one executor thread per CPU: a 1-vCPU job per CPU at most, bigger jobs take more
        for i in range(len(self.cpus)):
            self._threads.append(threading.Thread(target=self._worker_loop, daemon=True,
                                                  name=f"batch-{i}"))  # fmt: skip
        self._threads.append(threading.Thread(target=self._scan_loop, daemon=True))
        for thread in self._threads:
            thread.start()

    def stop(self) -> None:
        self.stop_event.set()
        for process in list(self._running.values()):
            stop_process(process.pid, group=True, grace=5.0)
        for thread in self._threads:
            thread.join(timeout=10)
        with contextlib.suppress(Exception):
            self._running.clear()

    def summary(self) -> dict[str, Any]:
        counts: dict[str, int] = {}
        for job in self.jobs.values():
            counts[job.status] = counts.get(job.status, 0) + 1
        return {"jobs": counts, "running": sorted(self._running), "waiting": self.pending.qsize()}

    def idle(self) -> bool:
        return self.pending.empty() and not self._running

    @staticmethod
    def wait_until_idle(runner: BatchRunner, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if runner.idle():
                return True
            time.sleep(0.2)
        return False
