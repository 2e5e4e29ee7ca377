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

MODULES = sorted(p.parent for p in (REPO_ROOT / "modules").glob("*/versions.tf"))
EXAMPLES = sorted(p for p in (REPO_ROOT / "examples").glob("*") if any(p.glob("*.tf")))
ROOT_STACK = REPO_ROOT / "terraform"
# Every directory that `terraform validate` must accept.
CONFIGS = [*MODULES, *EXAMPLES, ROOT_STACK]


def config_id(path: Path) -> str:
    """Short test id: module/network, example/complete, root."""
    if path == ROOT_STACK:
        return "root"
    kind = "module" if path.parent.name == "modules" else "example"
    return f"{kind}/{path.name}"


def _cli_config(mirror: str) -> Path:
    """The same CLI config as `make tf-config`: the offline mirror plus a shared plugin cache."""
    cache = BUILD_TF / "plugin-cache"
    cache.mkdir(parents=True, exist_ok=True)
    rc = BUILD_TF / "terraformrc"
    rc.write_text(
        f'plugin_cache_dir = "{cache}"\n'
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
        cache = BUILD_TF / "plugin-cache"
        cache.mkdir(parents=True, exist_ok=True)
        env.setdefault("TF_PLUGIN_CACHE_DIR", str(cache))
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


class Initializer:
    """Runs `terraform init -backend=false` at most once per directory per session.

    The first init fills the shared plugin cache on its own (concurrent inits may race on
    it); the rest run two at a time, which is what these 2-CPU machines can take.
    """

    def __init__(self, env: dict[str, str]) -> None:
        self._env = env
        self._results: dict[Path, Result] = {}
        self._lock = threading.Lock()

    def _init(self, path: Path) -> Result:
        return run_tf(["init", "-backend=false", "-input=false", "-no-color"], path, self._env)

    def warm(self, paths: list[Path]) -> None:
        todo = [p for p in paths if p not in self._results]
        if not todo:
            return
        self._results[todo[0]] = self._init(todo[0])
        with ThreadPoolExecutor(max_workers=2) as pool:
            for path, result in zip(todo[1:], pool.map(self._init, todo[1:]), strict=True):
                self._results[path] = result

    def __call__(self, path: Path) -> Result:
        with self._lock:
            if path not in self._results:
                self._results[path] = self._init(path)
            return self._results[path]
