"""`inferstack local up|down|status|demo`: the whole stack on this machine, no Docker.

up:     build what is missing (zips, model bundle), start the emulator, apply terraform/ with
        environments/local.tfvars, start the local runner; write build/local/endpoints.json.
down:   stop every process `up` started (by recorded pid) and remove build/local (the
        emulator's state is in memory: throwing it away is the teardown).
status: what runs, where.
demo:   up, classify photos through /predict, run them through the batch path, print
        results and where to look; down unless --keep.

Terraform's data dir and state for the local run live under build/local/, never in
terraform/, so the source folder stays clean and a local run never touches a real state.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from inferstack.local.emulator import Emulator, EmulatorError, free_port, port_open
from inferstack.local.iam import IDENTITIES_ENV, identities
from inferstack.local.process import pid_alive, stop_process
from inferstack.local.sandbox import (
    PARITY,
    ensure_lambda_runtime,
    ensure_worker_site,
    execution_mode,
)

REPO_ROOT = Path(__file__).resolve().parents[3]
DEFAULT_MODEL_DIR = REPO_ROOT / "build" / "model" / "resnet50-int8"
KERAS_RESNET50 = "resnet50_weights_tf_dim_ordering_tf_kernels.h5"
KERAS_WEIGHTS_URL = "https://storage.googleapis.com/tensorflow/keras-applications/resnet/"


class LocalStackError(RuntimeError):
    pass


@dataclass(frozen=True)
class Paths:
    root: Path
    state_dir: Path | None = None  # default build/local; tests use their own

    @property
    def state(self) -> Path:
        return self.state_dir or self.root / "build" / "local"

    @property
    def logs(self) -> Path:
        return self.state / "logs"

    @property
    def tf_state(self) -> Path:
        return self.state / "terraform.tfstate"

    @property
    def tf_data(self) -> Path:
        return self.state / "tf-data"

    @property
    def endpoints(self) -> Path:
        return self.state / "endpoints.json"

    @property
    def processes(self) -> Path:
        return self.state / "processes.json"

    @property
    def identities(self) -> Path:
        """The emulator's admin and service keys (enforced IAM), for later CLI commands."""
        return self.state / "identities.json"

    @property
    def runner_state(self) -> Path:
        return self.state / "runner.json"

    @property
    def dist(self) -> Path:
        return self.root / "build" / "dist"

    @property
    def terraform_dir(self) -> Path:
        return self.root / "terraform"


def say(message: str) -> None:
    print(f"[local] {message}", file=sys.stderr, flush=True)


def loud(message: str) -> None:
    bar = "!" * 78
    print(f"\n{bar}\n{message}\n{bar}\n", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------------- build


def build_artifacts(paths: Paths) -> None:
    """Function zips and layers (layers/build.py: cached, rebuilt only when inputs change)."""
    say("building Lambda zips and layers (layers/build.py)")
    subprocess.run(
        [sys.executable, str(paths.root / "layers" / "build.py"), "--dist", str(paths.dist)],
        check=True,
        stdout=sys.stderr,
    )


def imagenet_weights_available() -> bool:
    cached = Path.home() / ".keras" / "models" / KERAS_RESNET50
    if cached.is_file():
        return True
    try:
        with urllib.request.urlopen(KERAS_WEIGHTS_URL, timeout=5):
            return True
    except OSError as exc:
        # Any HTTP answer means the host is reachable (a 403/404 on the folder is fine).
        return hasattr(exc, "code")


def ensure_model(model_dir: Path | None) -> Path:
    """The bundle to deploy: MODEL=DIR as given, else build/model/resnet50-int8 (built once)."""
    if model_dir is not None:
        if not (model_dir / "model.json").is_file():
            raise LocalStackError(f"{model_dir} is not a model bundle (no model.json)")
        return model_dir.resolve()
    if (DEFAULT_MODEL_DIR / "model.json").is_file():
        meta = json.loads((DEFAULT_MODEL_DIR / "model.json").read_text())
        if not meta.get("predictions_meaningful", True):
            loud(
                f"WARNING: {DEFAULT_MODEL_DIR} has RANDOM weights: predictions are meaningless "
                "(cost and latency are real). Give MODEL=<bundle dir> for a trained model."
            )
        return DEFAULT_MODEL_DIR
    weights = "imagenet" if imagenet_weights_available() else "random"
    if weights == "random":
        loud(
            "WARNING: the ImageNet ResNet-50 weights cannot be downloaded from this machine.\n"
            "Building the bundle with RANDOM weights: every prediction will be MEANINGLESS\n"
            "(the model costs the same to run, so latency and throughput are real).\n"
            "Give MODEL=<bundle dir> to deploy a trained model instead."
        )
    say(f"building the model bundle ({weights} weights) into {DEFAULT_MODEL_DIR}")
    subprocess.run(
        [sys.executable, "-m", "inferstack.cli", "model", "build", "--weights", weights,
         "--out", str(DEFAULT_MODEL_DIR)],
        check=True,
        stdout=sys.stderr,
    )  # fmt: skip
    return DEFAULT_MODEL_DIR


# ----------------------------------------------------------------------------- terraform


def terraform_env(paths: Paths, emulator_url: str) -> dict[str, str]:
    env = dict(os.environ)
    env["TF_DATA_DIR"] = str(paths.tf_data)
    env["TF_IN_AUTOMATION"] = "1"
    rc = paths.root / "build" / "terraform" / "terraformrc"
    if "TF_CLI_CONFIG_FILE" not in env and rc.is_file():
        env["TF_CLI_CONFIG_FILE"] = str(rc)
    # Belt and braces: nothing may reach a real account from a local run.
    env.update(
        {
            "AWS_ACCESS_KEY_ID": "test",
            "AWS_SECRET_ACCESS_KEY": "test",
            "AWS_ENDPOINT_URL": emulator_url,
        }
    )
    found = identities(emulator_url)
    if found is not None:  # enforced IAM: the admin user the emulator's first calls created
        env.update(found.admin.environment())
    env.pop("AWS_PROFILE", None)
    env.pop("AWS_SESSION_TOKEN", None)
    return env


def terraform_vars(emulator_url: str, model_dir: Path) -> list[str]:
    found = identities(emulator_url)
    # Under enforced IAM the provider signs as the emulator's admin user, not local.tfvars' "test".
    keys = (
        [f"-var=access_key={found.admin.access_key_id}",
         f"-var=secret_key={found.admin.secret_access_key}"]
        if found is not None
        else []
    )  # fmt: skip
    return [
        "-var-file=environments/local.tfvars",
        f"-var=emulator_url={emulator_url}",
        f"-var=model_bundle_dir={model_dir}",
        *keys,
    ]


def terraform(paths: Paths, emulator_url: str, *args: str, capture: bool = False) -> str:
    cmd = ["terraform", f"-chdir={paths.terraform_dir}", *args]
    result = subprocess.run(
        cmd,
        check=False,
        env=terraform_env(paths, emulator_url),
        stdout=subprocess.PIPE if capture else sys.stderr,
        stderr=subprocess.PIPE if capture else sys.stderr,
        text=True,
    )
    if result.returncode != 0:
        detail = (result.stderr or "")[-4000:] if capture else ""
        raise LocalStackError(f"terraform {args[0]} failed ({result.returncode}) {detail}")
    return result.stdout or ""


def terraform_apply(
    paths: Paths, emulator_url: str, model_dir: Path, extra_vars: tuple[str, ...] = ()
) -> dict[str, Any]:
    """Apply terraform/ with local.tfvars; extra_vars: more -var=... (e.g. a canary)."""
    terraform(paths, emulator_url, "init", "-input=false", "-no-color")
    started = time.monotonic()
    say("terraform apply against the emulator (mostly the provider's own waits: ~2 min)")
    terraform(
        paths,
        emulator_url,
        "apply",
        "-auto-approve",
        "-input=false",
        "-no-color",
        f"-state={paths.tf_state}",
        *terraform_vars(emulator_url, model_dir),
        *extra_vars,
    )
    say(f"applied in {time.monotonic() - started:.0f} s")
    return terraform_outputs(paths, emulator_url)


def terraform_outputs(paths: Paths, emulator_url: str) -> dict[str, Any]:
    raw = terraform(
        paths, emulator_url, "output", "-json", f"-state={paths.tf_state}", capture=True
    )
    return {name: item["value"] for name, item in json.loads(raw).items()}


def terraform_plan_changes(paths: Paths, emulator_url: str, model_dir: Path) -> int:
    """`plan -detailed-exitcode`: 0 no changes, 2 changes (1 is raised as an error)."""
    cmd = [
        "terraform",
        f"-chdir={paths.terraform_dir}",
        "plan",
        "-detailed-exitcode",
        "-input=false",
        "-no-color",
        "-lock=false",
        f"-state={paths.tf_state}",
        *terraform_vars(emulator_url, model_dir),
    ]
    result = subprocess.run(
        cmd, check=False, env=terraform_env(paths, emulator_url), capture_output=True, text=True
    )
    if result.returncode == 1:
        raise LocalStackError(f"terraform plan failed: {result.stderr[-4000:]}")
    if result.returncode == 2:
        print(result.stdout[-8000:], file=sys.stderr)
    return result.returncode


# --------------------------------------------------------------------------- processes


def read_processes(paths: Paths) -> dict[str, Any]:
    try:
        return json.loads(paths.processes.read_text())
    except (FileNotFoundError, ValueError):
        return {}


def write_processes(paths: Paths, processes: dict[str, Any]) -> None:
    paths.state.mkdir(parents=True, exist_ok=True)
    paths.processes.write_text(json.dumps(processes, indent=2))


def start_runner(paths: Paths, emulator_url: str, region: str, timeout: float = 60) -> int:
    port = free_port()
    paths.logs.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ)
    found = identities(emulator_url)
    if found is not None:  # the runner plays Lambda and ECS: it assumes the stack's roles
        env[IDENTITIES_ENV] = json.dumps(found.to_json())
    with (paths.logs / "runner.log").open("ab") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "inferstack.local.runner", "--emulator-url", emulator_url,
             "--region", region, "--state-dir", str(paths.state), "--port", str(port),
             "--dist", str(paths.dist)],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env=env,
        )  # fmt: skip
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise LocalStackError(f"the runner exited; see {paths.logs / 'runner.log'}")
        if paths.runner_state.is_file() and port_open("127.0.0.1", port):
            return process.pid
        time.sleep(0.2)
    raise LocalStackError(f"the runner did not start; see {paths.logs / 'runner.log'}")


def runner_info(paths: Paths) -> dict[str, Any]:
    try:
        return json.loads(paths.runner_state.read_text())
    except (FileNotFoundError, ValueError):
        return {}


# ------------------------------------------------------------------------------- up/down


def is_up(paths: Paths) -> bool:
    procs = read_processes(paths)
    return any(pid_alive(int(p)) for p in procs.values() if isinstance(p, int))


def up(
    *,
    root: Path = REPO_ROOT,
    model_dir: Path | None = None,
    build: bool = True,
    state_dir: Path | None = None,
) -> dict:
    paths = Paths(root, state_dir)
    if is_up(paths):
        raise LocalStackError("the local stack is already up: `inferstack local down` first")
    down(root=root, quiet=True, state_dir=state_dir)  # leftovers of a crashed run
    paths.logs.mkdir(parents=True, exist_ok=True)
    if build:
        build_artifacts(paths)
    if execution_mode() == PARITY:
        # Built once and cached; here, rather than inside the runner's start-up wait.
        say("sandbox: root file system, Lambda runtime, worker packages")
        ensure_lambda_runtime()
        ensure_worker_site()
    model = ensure_model(model_dir)
    emulator = Emulator(log_path=paths.logs / "emulator.log", detach=True, enforce_iam=True)
    try:
        emulator.start()
        write_processes(paths, {"emulator": emulator.pid, "emulator_url": emulator.url})
        if emulator.identities is not None:
            paths.identities.touch(mode=0o600)
            paths.identities.write_text(json.dumps(emulator.identities.to_json(), indent=2))
        say(f"emulator (moto server) on {emulator.url}, pid {emulator.pid}")
        outputs = terraform_apply(paths, emulator.url, model)
        runner_pid = start_runner(paths, emulator.url, outputs["region"])
        write_processes(
            paths, {"emulator": emulator.pid, "runner": runner_pid, "emulator_url": emulator.url}
        )
        endpoints = write_endpoints(paths, emulator.url, outputs, model)
    except BaseException:
        say("start-up failed: stopping what was started")
        down(root=root, quiet=True, keep_logs=True, state_dir=state_dir)
        raise
    say(f"up: {paths.endpoints}")
    return endpoints


def write_endpoints(
    paths: Paths, emulator_url: str, outputs: dict[str, Any], model: Path
) -> dict[str, Any]:
    info = runner_info(paths)
    stage = outputs.get("stage_name", "")
    api_base = next(
        (url for name, url in info.get("api_urls", {}).items() if name.endswith(f"/{stage}")),
        next(iter(info.get("api_urls", {}).values()), ""),
    )
    endpoints = {
        "api_url": f"{api_base}/predict",
        "api_base_url": api_base,
        "api_key": outputs.get("api_key_value"),
        "emulator_url": emulator_url,
        "region": outputs.get("region"),
        "data_bucket": outputs.get("data_bucket"),
        "model_bucket": outputs.get("model_bucket"),
        "model_uri": outputs.get("model_uri"),
        "queue_url": outputs.get("queue_url"),
        "dlq_url": outputs.get("dlq_url"),
        "job_queue": outputs.get("job_queue"),
        "job_definition": outputs.get("job_definition"),
        "predict_function_name": outputs.get("predict_function_name"),
        "dispatcher_function_name": outputs.get("dispatcher_function_name"),
        "aws_api_url": outputs.get("api_url"),
        "model_bundle_dir": str(model),
        "logs": str(paths.logs),
    }
    paths.endpoints.write_text(json.dumps(endpoints, indent=2))
    return endpoints


def down(
    *,
    root: Path = REPO_ROOT,
    quiet: bool = False,
    keep_logs: bool = False,
    state_dir: Path | None = None,
) -> None:
    """Stop the runner (it stops its functions and workers), then the emulator; clean up."""
    paths = Paths(root, state_dir)
    procs = read_processes(paths)
    leftovers = [
        int(f["pid"]) for f in runner_info(paths).get("functions", {}).values() if f.get("pid")
    ]
    for name in ("runner", "emulator"):
        pid = procs.get(name)
        if isinstance(pid, int) and pid_alive(pid):
            if not quiet:
                say(f"stopping {name} (pid {pid})")
            stop_process(pid, group=True, grace=15.0 if name == "runner" else 5.0)
    for pid in leftovers:  # only if the runner could not stop them itself
        if pid_alive(pid):
            stop_process(pid, group=True, grace=2.0)
    if paths.state.is_dir():
        if keep_logs:
            for item in paths.state.iterdir():
                if item.name != "logs":
                    shutil.rmtree(item) if item.is_dir() else item.unlink()
        else:
            shutil.rmtree(paths.state, ignore_errors=True)
    if not quiet:
        say("down: every local process stopped, build/local removed")


def status(*, root: Path = REPO_ROOT, state_dir: Path | None = None) -> dict[str, Any]:
    paths = Paths(root, state_dir)
    procs = read_processes(paths)
    result: dict[str, Any] = {"up": is_up(paths), "processes": {}}
    for name in ("emulator", "runner"):
        pid = procs.get(name)
        result["processes"][name] = {"pid": pid, "alive": bool(pid) and pid_alive(int(pid))}
    with contextlib.suppress(FileNotFoundError, ValueError):
        result["endpoints"] = json.loads(paths.endpoints.read_text())
    info = runner_info(paths)
    if info:
        result["runner"] = {k: info[k] for k in ("functions", "queues", "batch") if k in info}
    return result


@contextlib.contextmanager
def stack_session(*, root: Path = REPO_ROOT, model_dir: Path | None = None, keep: bool = False):
    """`up` for the length of a block; `down` afterwards (also on Ctrl-C/SIGTERM) unless keep.

    A stack that is already up (`make up`) is used as it is and left running.
    """
    paths = Paths(root)
    if is_up(paths) and paths.endpoints.is_file():
        say("using the stack that is already up (left running afterwards)")
        yield json.loads(paths.endpoints.read_text())
        return

    def on_term(signum: int, frame: object) -> None:
        raise SystemExit(128 + signum)

    previous = signal.signal(signal.SIGTERM, on_term)
    failed = True
    try:
        yield up(root=root, model_dir=model_dir)
        failed = False
    finally:
        if keep:
            say("KEEP: the stack stays up; `make down` (or `inferstack local down`) stops it")
        else:
            # After a failure the logs stay, for whoever reads why.
            down(root=root, keep_logs=failed)
            if failed:
                say(f"the logs stay in {paths.logs}")
        signal.signal(signal.SIGTERM, previous)


__all__ = ["EmulatorError", "LocalStackError", "down", "stack_session", "status", "up"]
