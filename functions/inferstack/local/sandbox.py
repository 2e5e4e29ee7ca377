"""Run a program inside the Debian root file system (inferstack.local.rootfs) as AWS would.

Each sandboxed process gets a mount namespace of its own (`unshare --mount`, private
propagation): its bind mounts (/var/task, /opt, a private /tmp, ...) exist only for it and
vanish with it, also when it is killed or crashes, and the shared root file system is
mounted read-only inside it, as Lambda's and the worker's (readonlyRootFilesystem) are.
Then `chroot` into the root file system (root is needed, as for debootstrap), optionally as
another user, and exec the program from a working directory.

What runs there is installed once and cached:

- the Lambda runtime's bootstrap, AWS's runtime interface client (awslambdaric), in the root
  file system's /var/runtime as the managed runtime has it (never in a function's layer);
- the batch worker's packages: exactly functions/inferstack_worker/requirements.txt (what
  the Dockerfile installs with --no-deps) plus the project's own wheel, under
  build/rootfs/worker-<arch>/, mounted as the root file system's site directory
  /usr/local/lib/python3.13/dist-packages for the worker only, its console scripts as
  /usr/local/bin.

Wheels are the python3.13 manylinux ones for the architecture (pip's --target with
--platform/--python-version/--only-binary, as layers/build.py builds the layer).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from inferstack.local import rootfs as rootfs_module
from inferstack.local.rootfs import REPO_ROOT, debian_arch, ensure_rootfs, file_lock, is_foreign

EXECUTION_ENV = "INFERSTACK_LOCAL_EXECUTION"
PARITY, VENV = "parity", "venv"
PYTHON_VERSION = "3.13"
PYTHON = f"/usr/bin/python{PYTHON_VERSION}"
RUNTIME_DIR = "/var/runtime"
SANDBOX_TMP = "/tmp"  # noqa: S108 - the sandbox's own /tmp, a private mount
AWSLAMBDARIC = "awslambdaric==4.2.2"
RUNTIME_STAMP = ".inferstack-runtime.json"
WORKER_REQUIREMENTS = REPO_ROOT / "functions" / "inferstack_worker" / "requirements.txt"
WORKER_SITE = f"/usr/local/lib/python{PYTHON_VERSION}/dist-packages"
WORKER_BIN = "/usr/local/bin"
_PIP_ARCH = {"amd64": "x86_64", "arm64": "aarch64"}
_MANYLINUX = (
    "manylinux_2_28",
    "manylinux_2_27",
    "manylinux_2_17",
    "manylinux2014",
    "manylinux_2_5",
    "manylinux1",
)
_install_lock = threading.Lock()


class SandboxError(RuntimeError):
    pass


def execution_mode(environ: dict[str, str] | None = None) -> str:
    """INFERSTACK_LOCAL_EXECUTION: `parity` (default: the deployed artifacts in the root file
    system) or `venv` (the installed package in this interpreter, the fast option for tests)."""
    value = (os.environ if environ is None else environ).get(EXECUTION_ENV, "").strip().lower()
    if value in ("", PARITY):
        return PARITY
    if value == VENV:
        return VENV
    raise SandboxError(f"{EXECUTION_ENV}={value!r}: expected {PARITY!r} or {VENV!r}")


# ------------------------------------------------------------------------------- processes


@dataclass(frozen=True)
class Mount:
    source: Path  # on the host
    target: str  # inside the root file system
    read_only: bool = False


def sandbox_command(
    root: Path,
    argv: Sequence[str],
    *,
    mounts: Sequence[Mount] = (),
    workdir: str = "/",
    user: str | None = None,
) -> list[str]:
    """The host command that runs `argv` inside `root` with `mounts`, read-only elsewhere.

    The mount targets must exist in `root` (ensure_mount_points). Everything happens in a
    private mount namespace: nothing is mounted on the host, nothing needs unmounting.
    """
    if is_foreign_root(root):
        raise SandboxError(f"{root} is for another architecture: it cannot be chrooted into")
    mount = _host_program("mount")
    lines = [
        "set -e",
        'R="$1"; shift',
        f'{mount} --bind "$R" "$R"',
        f'{mount} -t proc proc "$R/proc"',
    ]
    args: list[str] = [str(root)]
    for item in mounts:
        lines.append(f'{mount} --bind "$1" "$R{item.target}"')
        if item.read_only:
            lines.append(f'{mount} -o remount,bind,ro "$R{item.target}"')
        lines.append("shift")
        args.append(str(item.source))
    lines.append(f'{mount} -o remount,bind,ro "$R"')
    userspec = [f"--userspec={user}"] if user else []
    chroot = [_host_program("chroot"), *userspec, '"$R"', "/usr/bin/env", "-C", workdir]
    lines.append(f'exec {" ".join(chroot)} "$@"')
    script = "\n".join(lines)
    return [
        _host_program("unshare"),
        "--mount",
        "--propagation",
        "private",
        _host_program("sh"),
        "-c",
        script,
        "sandbox",
        *args,
        *argv,
    ]


def _host_program(name: str) -> str:
    """Absolute path on the host: the sandboxed process's PATH is the one AWS gives it."""
    for folder in ("/usr/bin", "/usr/sbin", "/bin", "/sbin"):
        if Path(folder, name).is_file():
            return f"{folder}/{name}"
    found = shutil.which(name)
    if found is None:
        raise SandboxError(f"{name} not found: the sandbox needs util-linux and coreutils")
    return found


def is_foreign_root(root: Path) -> bool:
    """A root file system named for another architecture (trixie-arm64 on x86_64)."""
    arch = root.name.rsplit("-", 1)[-1]
    return arch in ("amd64", "arm64") and is_foreign(arch)


def ensure_mount_points(root: Path, targets: Sequence[str]) -> None:
    for target in targets:
        (root / target.lstrip("/")).mkdir(parents=True, exist_ok=True)


def host_mounts_under(root: Path) -> list[str]:
    """Mount points under `root` in this process's (the host's) namespace: none expected."""
    return rootfs_module.mounts_under(root)


# ------------------------------------------------------------------------------------ pip


def pip_target_args(deb_arch: str) -> list[str]:
    args = ["--implementation", "cp", "--python-version", PYTHON_VERSION, "--only-binary=:all:"]
    for tag in _MANYLINUX:
        args += ["--platform", f"{tag}_{_PIP_ARCH[deb_arch]}"]
    return args


def _pip(args: Sequence[str]) -> None:
    env = {**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    done = subprocess.run(
        [sys.executable, "-m", "pip", *args], capture_output=True, text=True, env=env, check=False
    )
    if done.returncode != 0:
        raise SandboxError(f"pip {' '.join(args[:2])} failed:\n{done.stderr[-3000:]}")


def pip_install_target(
    target: Path, requirements: Sequence[str], deb_arch: str, *, no_deps: bool = False
) -> None:
    """Download the wheels once (build/cache/pip/<arch>), install them offline into target."""
    wheels = REPO_ROOT / "build" / "cache" / "pip" / ("arm64" if deb_arch == "arm64" else "x86_64")
    wheels.mkdir(parents=True, exist_ok=True)
    deps = ["--no-deps"] if no_deps else []
    platform = pip_target_args(deb_arch)
    _pip(["download", "--quiet", "--dest", str(wheels), *deps, *platform, *requirements])
    _pip(
        [
            "install",
            "--quiet",
            "--isolated",
            "--no-index",
            "--find-links",
            str(wheels),
            "--no-compile",
            "--target",
            str(target),
            *deps,
            *platform,
            *requirements,
        ]
    )


@contextlib.contextmanager
def _staging(final: Path) -> Iterator[Path]:
    """A temporary folder beside `final`, renamed into place when the block succeeds."""
    final.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{final.name}.tmp-", dir=final.parent))
    try:
        yield work
        work.chmod(0o755)  # mkdtemp's 0700 would hide it from the sandbox's users
        if final.exists():
            shutil.rmtree(final)
        work.rename(final)
    finally:
        shutil.rmtree(work, ignore_errors=True)


# -------------------------------------------------------------------------- Lambda runtime


def ensure_lambda_runtime(arch: str | None = None, *, cache_dir: Path | None = None) -> Path:
    """The root file system for `arch` with awslambdaric installed in its /var/runtime.

    Only this machine's architecture: a chroot runs native programs (the arm64 artifacts are
    run under qemu by their own test, not as execution environments).
    """
    if is_foreign(arch):
        raise SandboxError(
            f"a function built for {arch} cannot run as an execution environment on this "
            f"{debian_arch(None)} machine: deploy the local stack for this architecture "
            "(architecture in terraform/environments/local.tfvars)"
        )
    root = ensure_rootfs(arch, cache_dir=cache_dir)
    deb_arch = debian_arch(arch)
    runtime = root / RUNTIME_DIR.lstrip("/")
    wanted = {"requirements": [AWSLAMBDARIC], "arch": deb_arch}
    if _stamp(runtime / RUNTIME_STAMP) == wanted:
        return root
    with _install_lock, file_lock(root.parent / f".{root.name}-runtime.lock"):
        if _stamp(runtime / RUNTIME_STAMP) != wanted:
            with _staging(runtime) as work:
                pip_install_target(work, [AWSLAMBDARIC], deb_arch)
                (work / RUNTIME_STAMP).write_text(json.dumps(wanted))
                work.chmod(0o755)
    ensure_mount_points(root, ["/var/task", "/opt", SANDBOX_TMP, "/proc"])
    return root


def _stamp(path: Path) -> object:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


# ---------------------------------------------------------------------------- the worker


def _source_digest(root: Path) -> str:
    """What the project's wheel is built from: pyproject, README and functions/**.py."""
    digest = hashlib.sha256()
    files = [root / "pyproject.toml", root / "README.md"]
    files += sorted(p for p in (root / "functions").rglob("*.py") if "__pycache__" not in p.parts)
    for path in files:
        digest.update(path.relative_to(root).as_posix().encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:16]


def ensure_worker_site(
    arch: str | None = None, *, cache_dir: Path | None = None, project: Path = REPO_ROOT
) -> tuple[Path, Path]:
    """(site dir, bin dir) of the worker image's Python packages for `arch`.

    requirements.txt installed once (cached by its content), then the project's wheel built
    from `project` (cached by the source's digest) without dependencies, as the Dockerfile
    does. Console scripts are rewritten to run the root file system's python3.13.
    """
    deb_arch = debian_arch(arch)
    base = Path(cache_dir) if cache_dir is not None else rootfs_module.DEFAULT_CACHE_DIR
    base = base / f"worker-{deb_arch}"
    requirements = WORKER_REQUIREMENTS.read_text()
    pins = [
        line.strip()
        for line in requirements.splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    ]
    deps = base / f"deps-{hashlib.sha256(requirements.encode()).hexdigest()[:16]}"
    final = base / f"site-{deps.name.removeprefix('deps-')}-{_source_digest(project)}"
    if (final / ".complete").is_file():
        return final / "site", final / "bin"
    with _install_lock, file_lock(base / ".lock"):
        if not (deps / ".complete").is_file():
            with _staging(deps) as work:
                pip_install_target(work, pins, deb_arch, no_deps=True)
                (work / ".complete").touch()
        if not (final / ".complete").is_file():
            with _staging(final) as work:
                # the packages as hard links (cheap), their console scripts rewritten below;
                # pip --target would not add the project's scripts to an existing bin/
                top = {"bin", ".complete"}
                shutil.copytree(
                    deps,
                    work / "site",
                    copy_function=os.link,
                    ignore=lambda d, names: top & set(names) if Path(d) == deps else (),
                )
                _copy_scripts(deps / "bin", work / "bin")
                with tempfile.TemporaryDirectory() as tmp:
                    _build_project_wheel(project, Path(tmp))
                    wheels = [str(w) for w in Path(tmp, "wheels").glob("*.whl")]
                    _pip(
                        [
                            "install",
                            "--quiet",
                            "--no-deps",
                            "--no-compile",
                            "--target",
                            str(work / "site"),
                            *wheels,
                        ]
                    )
                _copy_scripts(work / "site" / "bin", work / "bin")
                shutil.rmtree(work / "site" / "bin", ignore_errors=True)
                (work / ".complete").touch()
        for stale in base.glob("site-*"):  # older builds of the project
            if stale != final and (stale / ".complete").is_file():
                shutil.rmtree(stale, ignore_errors=True)
    return final / "site", final / "bin"


def _build_project_wheel(project: Path, tmp: Path) -> None:
    """The project's wheel from what the Dockerfile copies (pyproject.toml, README.md,
    functions/), built in a copy so the source tree stays clean; the build backend comes
    from the package index as pyproject.toml's [build-system] asks."""
    src = tmp / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(project / name, src / name)
    shutil.copytree(
        project / "functions",
        src / "functions",
        ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info"),
    )
    _pip(["wheel", "--quiet", "--no-deps", "--wheel-dir", str(tmp / "wheels"), str(src)])


def _copy_scripts(scripts: Path, bin_dir: Path) -> None:
    """pip --target writes console scripts for the host's interpreter: copy them into bin_dir
    pointed at the root file system's python3.13."""
    bin_dir.mkdir(exist_ok=True)
    if not scripts.is_dir():
        return
    for script in scripts.iterdir():
        lines = script.read_text().splitlines(keepends=True)
        if lines and lines[0].startswith("#!"):
            lines[0] = f"#!{PYTHON}\n"
        (bin_dir / script.name).write_text("".join(lines))
        (bin_dir / script.name).chmod(0o755)


# The image's ENV (python:3.13-slim and functions/inferstack_worker/Dockerfile), USER and
# WORKDIR.
WORKER_IMAGE_ENV = {
    "PATH": "/usr/local/bin:/usr/local/sbin:/usr/sbin:/usr/bin:/sbin:/bin",
    "LANG": "C.UTF-8",
    "PYTHONDONTWRITEBYTECODE": "1",
    "PYTHONUNBUFFERED": "1",
    "MODEL_CACHE_DIR": "/tmp/inferstack-models",  # noqa: S108 - the container's scratch volume
    "HOME": "/home/worker",
}
WORKER_USER = "10001:10001"
WORKER_WORKDIR = "/home/worker"
_HOST_KEYS = ("PATH", "HOME", "LANG", "VIRTUAL_ENV")


class WorkerSandbox:
    """Batch jobs as Fargate runs the worker image: the root file system read-only, the
    image's packages, user and environment, an empty scratch folder for each of the job
    definition's mount points (and /tmp), gone when the attempt ends."""

    def __init__(self, work_dir: Path, arch: str | None = None) -> None:
        self.work_dir = work_dir
        self.arch = arch
        self._prepared: tuple[Path, Path, Path] | None = None
        self._lock = threading.Lock()

    def prepare(self) -> tuple[Path, Path, Path]:
        """(root file system, site, bin): built or installed once, on the first job."""
        with self._lock:
            if self._prepared is None:
                root = ensure_rootfs(self.arch)
                site, bin_dir = ensure_worker_site(self.arch)
                ensure_mount_points(
                    root, [WORKER_SITE, WORKER_BIN, WORKER_WORKDIR, SANDBOX_TMP, "/proc"]
                )
                self._prepared = (root, site, bin_dir)
            return self._prepared

    def scratch(self, job_id: str, attempt: int) -> Path:
        return self.work_dir / f"{job_id.replace(':', '.')}.{attempt}"

    def wrap(
        self,
        argv: Sequence[str],
        env: dict[str, str],
        *,
        job_environment: dict[str, str],
        mount_points: Sequence[str],
        scratch: Path,
    ) -> tuple[list[str], dict[str, str]]:
        """The host command and environment that run the job's command in the sandbox."""
        root, site, bin_dir = self.prepare()
        mounts = [
            Mount(site, WORKER_SITE, read_only=True),
            Mount(bin_dir, WORKER_BIN, read_only=True),
        ]
        for target in dict.fromkeys([*mount_points, SANDBOX_TMP]):
            folder = scratch / target.strip("/").replace("/", "_")
            folder.mkdir(parents=True, exist_ok=True)
            folder.chmod(0o1777)
            mounts.append(Mount(folder, target))
        ensure_mount_points(root, [m.target for m in mounts])
        kept = {k: v for k, v in env.items() if k not in _HOST_KEYS or k in job_environment}
        command = sandbox_command(
            root, argv, mounts=mounts, workdir=WORKER_WORKDIR, user=WORKER_USER
        )
        return command, {**WORKER_IMAGE_ENV, **kept}


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m inferstack.local.sandbox`: prepare what parity execution runs (once)."""
    import argparse  # noqa: PLC0415 - only the command line needs it
    import time  # noqa: PLC0415

    parser = argparse.ArgumentParser(
        prog="python -m inferstack.local.sandbox",
        description="Build (once) the root file system with awslambdaric and the worker's "
        "packages for this machine's architecture.",
    )
    parser.parse_args(argv)
    started = time.monotonic()
    try:
        root = ensure_lambda_runtime()
        site, _ = ensure_worker_site()
    except (SandboxError, rootfs_module.RootfsError) as exc:
        print(f"sandbox: {exc}", file=sys.stderr)
        return 1
    print(f"{root} (Lambda runtime), {site} (worker) in {time.monotonic() - started:.1f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
