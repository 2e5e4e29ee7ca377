"""Terraform test helpers: the directories to check, the environment, one init per directory."""

from __future__ import annotations

import os
import subprocess
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
BUILD_TF = REPO_ROOT / "build" / "terraform"
PLUGIN_CACHE = BUILD_TF / "plugin-cache"

MODULES = sorted(p.parent for p in (REPO_ROOT / "modules").glob("*/versions.tf"))
EXAMPLES = sorted(p for p in (REPO_ROOT / "examples").glob("*") if any(p.glob("*.tf")))
ROOT_STACK = REPO_ROOT / "terraform"
# Every directory that `terraform validate` must accept.
CONFIGS = [*MODULES, *EXAMPLES, ROOT_STACK]
# Modules with `terraform test` files.
TESTED_MODULES = [m for m in MODULES if any((m / "tests").glob("*.tftest.hcl"))]


def config_id(path: Path) -> str:
    """Short test id: module/network, example/complete, root."""
    if path == ROOT_STACK:
        return "root"
    kind = "module" if path.parent.name == "modules" else "example"
    return f"{kind}/{path.name}"


def _cli_config(mirror: str) -> Path:
    """The same CLI config as `make tf-config`: the offline mirror plus a shared plugin cache,
    used without lock-file checksums so that no init reinstalls an entry another run is using."""
    PLUGIN_CACHE.mkdir(parents=True, exist_ok=True)
    rc = BUILD_TF / "terraformrc"
    rc.write_text(
        f'plugin_cache_dir = "{PLUGIN_CACHE}"\n'
        "plugin_cache_may_break_dependency_lock_file = true\n"
        "provider_installation {\n"
        "  filesystem_mirror {\n"
        f'    path    = "{mirror}"\n'
        '    include = ["registry.terraform.io/hashicorp/*"]\n'
        "  }\n"
        "  direct {\n"
        '    exclude = ["registry.terraform.io/hashicorp/*"]\n'
        "  }\n"
        "}\n"
    )
    return rc


def terraform_env() -> dict[str, str]:
    """Environment for terraform commands; works without the Makefile too."""
    env = dict(os.environ, TF_IN_AUTOMATION="1", CHECKPOINT_DISABLE="1", TF_INPUT="0")
    mirror = env.get("TF_PLUGIN_MIRROR", "").strip()
    configured = env.get("TF_CLI_CONFIG_FILE", "")
    if mirror and not (configured and Path(configured).is_file()):
        env["TF_CLI_CONFIG_FILE"] = str(_cli_config(mirror))
    elif not mirror and not configured:
        PLUGIN_CACHE.mkdir(parents=True, exist_ok=True)
        env.setdefault("TF_PLUGIN_CACHE_DIR", str(PLUGIN_CACHE))
        env.setdefault("TF_PLUGIN_CACHE_MAY_BREAK_DEPENDENCY_LOCK_FILE", "true")
    return env


@dataclass(frozen=True)
class Result:
    returncode: int
    output: str


def run_tf(args: list[str], cwd: Path, env: dict[str, str], timeout: int = 600) -> Result:
    proc = subprocess.run(
        ["terraform", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    return Result(proc.returncode, proc.stdout + proc.stderr)


class Terraform:
    """The session's terraform work: init once per directory, validate and test jobs run in
    the background (`workers` at a time; these machines have 2 CPUs), each test waits for its
    job. Directories not in `configs` are validated when asked.

    The first init runs alone because it fills the shared plugin cache, which concurrent
    inits could race on; later inits only link from it.
    """

    def __init__(
        self, env: dict[str, str], configs: list[Path], tested: list[Path], workers: int = 2
    ) -> None:
        self.env = env
        self._inits: dict[Path, Result] = {}
        self._init_locks = {path: threading.Lock() for path in configs}
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="terraform")
        if configs:
            self.init(configs[0])
        # The slowest jobs (terraform test) first, so the quick ones fill the gaps.
        self._tests = {m: self._pool.submit(self._after_init, m, "test") for m in tested}
        self._validations = {c: self._pool.submit(self._after_init, c, "validate") for c in configs}

    def init(self, path: Path) -> Result:
        with self._init_locks.setdefault(path, threading.Lock()):
            if path not in self._inits:
                args = ["init", "-backend=false", "-input=false", "-no-color"]
                self._inits[path] = run_tf(args, path, self.env)
            return self._inits[path]

    def _after_init(self, path: Path, command: str) -> Result:
        init = self.init(path)
        if init.returncode != 0:
            return Result(init.returncode, f"terraform init failed in {path}:\n{init.output}")
        return run_tf([command, "-no-color"], path, self.env, timeout=900)

    def validate(self, path: Path) -> Result:
        if path not in self._validations:
            self._validations[path] = self._pool.submit(self._after_init, path, "validate")
        return self._validations[path].result()

    def test(self, module: Path) -> Result:
        return self._tests[module].result()

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)
