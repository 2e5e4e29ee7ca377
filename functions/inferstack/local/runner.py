"""The local runner: runs the deployed stack's code the way AWS would.

Reads what is deployed from the emulator (functions, REST APIs, usage plan keys, SQS event
source mappings, Batch job queues) and then
  - serves each REST API stage on 127.0.0.1:<port>/<stage>/... (inferstack.local.apigw),
  - runs each Lambda function in its own execution environment, one per published version
    too (its own configuration: environment, role, code): an alias (an API Gateway integration
    ending in :live) is served by the version it names or, with a routing configuration, by one
    of its versions drawn at random by their weights for each invocation, as Lambda does; the
    aliases are re-read every second, so a weight changed by an apply is followed without a
    restart (the unqualified function, $LATEST, is read once at start); by default as the managed
    runtime does, from the deployed zips in the python3.13 root file system through
    awslambdaric (inferstack.local.lambdaenv); with INFERSTACK_LOCAL_EXECUTION=venv, the
    installed package in this interpreter (inferstack.local.execenv, the fast option),
  - polls the mapped SQS queues and invokes their functions (inferstack.local.sqs),
  - runs submitted Batch jobs as local worker processes (inferstack.local.batch), in the
    root file system with the worker image's packages by default.

`python -m inferstack.local.runner --emulator-url URL --region R --state-dir DIR` runs it in
the foreground until SIGTERM/SIGINT, writing DIR/runner.json once it serves.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import hashlib
import json
import os
import random
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any

from inferstack.local.apigw import LocalApiGateway
from inferstack.local.batch import BatchRunner
from inferstack.local.discovery import (
    Alias,
    FunctionConfig,
    QueueMapping,
    Stack,
    client,
    discover,
    read_alias_versions,
)
from inferstack.local.execenv import BaseEnvironment, ExecutionEnvironment, InvocationError
from inferstack.local.iam import role_client
from inferstack.local.lambdaenv import Artifacts, SandboxEnvironment, resolve_artifacts
from inferstack.local.sandbox import (
    PARITY,
    WorkerSandbox,
    ensure_lambda_runtime,
    execution_mode,
)
from inferstack.local.sqs import QueuePoller

REPO_ROOT = Path(__file__).resolve().parents[3]
LATEST = "$LATEST"
ALIAS_REFRESH_S = 1.0


def pick_version(alias: Alias, draw: float) -> str:
    """The version a weighted alias sends one invocation to, for a draw in [0, 1): each
    additional version gets its weight's share of draws, the alias' own version the rest
    (https://docs.aws.amazon.com/lambda/latest/dg/lambda-traffic-shifting-using-aliases.html)."""
    threshold = 0.0
    for version, weight in alias.weights:
        threshold += weight
        if draw < threshold:
            return version
    return alias.function_version


def environment_key(function_name: str, version: str = LATEST) -> str:
    """Environments and artifacts are kept per (function, version); $LATEST by the name."""
    return function_name if version == LATEST else f"{function_name}:{version}"


def code_sha256(path: Path) -> str:
    """Lambda's CodeSha256: base64 of the zip's sha256 digest."""
    return base64.b64encode(hashlib.sha256(path.read_bytes()).digest()).decode()


def stale_functions(stack: Stack, dist: Path) -> list[str]:
    """Functions whose deployed zip is none of build/dist/*.zip (deployed from an old build)."""
    if not dist.is_dir():
        return []
    built = {code_sha256(p) for p in dist.glob("*.zip") if not p.name.startswith("layer-")}
    return [f.name for f in stack.functions.values() if built and f.code_sha256 not in built]


class Runner:
    def __init__(
        self,
        endpoint_url: str,
        region: str,
        state_dir: Path,
        *,
        api_port: int = 0,
        dist: Path | None = None,
        sqs_wait_s: int = 2,
        execution: str | None = None,
    ) -> None:
        self.endpoint_url = endpoint_url
        self.region = region
        self.state_dir = state_dir
        self.execution = execution or execution_mode()
        self.stack = discover(endpoint_url, region)
        self.environments: dict[str, BaseEnvironment] = {}
        self.artifacts: dict[str, Artifacts] = {}
        self._search = [dist or REPO_ROOT / "build" / "dist"]
        self._lam = client("lambda", endpoint_url, region)
        # Replaced as a whole by refresh_aliases (versions are immutable: never re-read).
        self.aliases: dict[str, dict[str, Alias]] = self.stack.aliases
        self.versions: dict[str, dict[str, FunctionConfig]] = self.stack.versions
        self._random = random.SystemRandom()
        self._refresh_stop = threading.Event()
        self._refresher = threading.Thread(target=self._refresh_loop, daemon=True)
        if self.execution == PARITY:
            # Refuse to start when a deployed zip is not among the artifacts (stale build).
            for name, function in self.stack.functions.items():
                self.artifacts[name] = resolve_artifacts(function, self._lam, self._search)
                ensure_lambda_runtime((function.architectures or ("x86_64",))[0])
            self._resolve_version_artifacts(self.versions)
        self._env_lock = threading.Lock()
        self.gateway = LocalApiGateway(self.stack.apis, self.invoke, port=api_port, region=region)
        # Lambda's event source mapping polls with the function's execution role.
        self.pollers = [
            QueuePoller(m, self._mapping_sqs_client(m), self.invoke, region, wait_s=sqs_wait_s)
            for m in self.stack.queue_mappings
            if m.enabled
        ]
        self.batch = BatchRunner(
            client("batch", endpoint_url, region),
            self.stack.job_queues,
            endpoint_url=endpoint_url,
            region=region,
            log_dir=state_dir / "logs" / "batch",
            sandbox=WorkerSandbox(state_dir / "batch") if self.execution == PARITY else None,
        )
        for name in stale_functions(self.stack, dist or Path()):
            print(
                f"WARNING: {name}: the deployed code is not any zip in {dist}; "
                "the runner runs the installed package, which may differ from what was applied",
                flush=True,
            )

    def _mapping_sqs_client(self, mapping: QueueMapping) -> Any:
        function = self.stack.functions.get(mapping.function_name)
        return role_client(
            "sqs",
            self.endpoint_url,
            self.region,
            function.role if function else None,
            service="lambda",
            session=f"{mapping.function_name}-sqs-mapping",
        )

    def _resolve_version_artifacts(self, versions: dict[str, dict[str, FunctionConfig]]) -> None:
        if self.execution != PARITY:
            return
        for name, by_version in versions.items():
            for version, function in by_version.items():
                key = environment_key(name, version)
                if key not in self.artifacts:
                    self.artifacts[key] = resolve_artifacts(function, self._lam, self._search)

    def refresh_aliases(self) -> None:
        """Re-read every alias (an apply may have moved it or changed its weights) and the
        configuration of versions not seen before."""
        aliases, versions = read_alias_versions(self._lam, self.stack.functions, self.versions)
        self._resolve_version_artifacts(versions)
        self.versions = versions
        self.aliases = aliases

    def _refresh_loop(self) -> None:
        while not self._refresh_stop.wait(ALIAS_REFRESH_S):
            try:
                self.refresh_aliases()
            except Exception as exc:  # keep serving with the last view
                print(f"runner: reading the aliases failed, keeping the last view: {exc}",
                      flush=True)  # fmt: skip

    def resolve(self, function_name: str, qualifier: str | None) -> str:
        """The version an invocation runs: $LATEST unqualified, a version as given, an
        alias' version drawn by its weights."""
        if qualifier is None or qualifier == LATEST:
            return LATEST
        alias = self.aliases.get(function_name, {}).get(qualifier)
        if alias is not None:
            return pick_version(alias, self._random.random())
        if qualifier in self.versions.get(function_name, {}):
            return qualifier
        raise InvocationError(
            "ResourceNotFoundException", f"Function not found: {function_name}:{qualifier}"
        )

    def _function(self, function_name: str, version: str) -> FunctionConfig:
        function = (
            self.stack.functions.get(function_name)
            if version == LATEST
            else self.versions.get(function_name, {}).get(version)
        )
        if function is None:
            where = function_name if version == LATEST else f"{function_name}:{version}"
            raise InvocationError("ResourceNotFoundException", f"Function not found: {where}")
        return function

    def environment(self, function_name: str, version: str = LATEST) -> BaseEnvironment:
        """The execution environment of (function, version), created on first use."""
        key = environment_key(function_name, version)
        with self._env_lock:
            if key not in self.environments:
                function = self._function(function_name, version)
                folder = function_name if version == LATEST else f"{function_name}-{version}"
                place = {
                    "endpoint_url": self.endpoint_url,
                    "region": self.region,
                    "work_dir": self.state_dir / "lambda" / folder,
                    # one log per function, as its CloudWatch log group; START names the version
                    "log_path": self.state_dir / "logs" / f"{function_name}.log",
                }
                self.environments[key] = (
                    SandboxEnvironment(function, artifacts=self.artifacts[key], **place)
                    if self.execution == PARITY
                    else ExecutionEnvironment(function, **place)  # type: ignore[arg-type]
                )
            return self.environments[key]

    def invoke(
        self, function_name: str, qualifier: str | None, event: dict, request_id: str
    ) -> Any:
        version = self.resolve(function_name, qualifier)
        name = environment_key(function_name, version)
        result = self.environment(function_name, version).invoke(event, request_id=request_id)
        if result.init_ms is not None:
            print(f"lambda {name}: cold start, init {result.init_ms:.0f} ms", flush=True)
        print(f"lambda {name}: {request_id} took {result.duration_ms:.0f} ms", flush=True)
        return result.payload

    def api_urls(self) -> dict[str, str]:
        return {
            f"{api.name}/{stage}": self.gateway.url(api, stage)
            for api in self.stack.apis
            for stage in api.stages
        }

    def start(self) -> None:
        self.gateway.start()
        self._refresher.start()
        for poller in self.pollers:
            poller.start()
        self.batch.start()

    def stop(self) -> None:
        self._refresh_stop.set()
        for poller in self.pollers:
            poller.stop()
        self.batch.stop()
        with contextlib.suppress(Exception):
            self.gateway.stop()
        for env in self.environments.values():
            env.stop()

    def describe(self) -> dict[str, Any]:
        return {
            "pid": os.getpid(),
            "emulator_url": self.endpoint_url,
            "region": self.region,
            "execution": self.execution,
            "api_port": self.gateway.port,
            "api_urls": self.api_urls(),
            "functions": {
                name: {
                    "handler": f.handler,
                    "pid": self.environments[name].pid if name in self.environments else None,
                    "invocations": (
                        self.environments[name].invocations if name in self.environments else 0
                    ),
                }
                for name, f in self.stack.functions.items()
            },
            "versions": {
                key: {
                    "function": key.split(":")[0],
                    "version": key.split(":")[1],
                    "pid": env.pid,
                    "invocations": env.invocations,
                    "environment": {
                        k: env.function.environment[k]
                        for k in ("MODEL_URI", "MODEL_SHA256")
                        if k in env.function.environment
                    },
                }
                for key, env in list(self.environments.items())
                if ":" in key
            },
            "aliases": {
                name: {
                    alias.name: {"version": alias.function_version, "weights": dict(alias.weights)}
                    for alias in by_name.values()
                }
                for name, by_name in self.aliases.items()
                if by_name
            },
            "queues": [
                {
                    "queue": p.mapping.queue_arn,
                    "function": p.mapping.function_name,
                    "batches": p.batches,
                    "deleted": p.deleted,
                    "left": p.failed,
                }
                for p in self.pollers
            ],
            "batch": self.batch.summary(),
            "updated": time.time(),
        }

    def write_state(self) -> None:
        path = self.state_dir / "runner.json"
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.describe(), indent=2))
        tmp.replace(path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m inferstack.local.runner")
    parser.add_argument("--emulator-url", required=True)
    parser.add_argument("--region", required=True)
    parser.add_argument("--state-dir", type=Path, required=True)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--dist", type=Path, default=None)
    args = parser.parse_args(argv)

    stop = threading.Event()

    def on_signal(signum: int, frame: object) -> None:
        del signum, frame
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    args.state_dir.mkdir(parents=True, exist_ok=True)
    runner = Runner(args.emulator_url, args.region, args.state_dir, api_port=args.port,
                    dist=args.dist)  # fmt: skip
    runner.start()
    try:
        print(f"runner: serving {json.dumps(runner.api_urls())}", flush=True)
        while not stop.is_set():
            runner.write_state()
            stop.wait(2.0)
    finally:
        runner.stop()
        with contextlib.suppress(FileNotFoundError):
            (args.state_dir / "runner.json").unlink()
    return 0


if __name__ == "__main__":
    sys.exit(main())
