"""The worker image's Dockerfile: a pinned base image, only pinned packages, and a file system
layout that works with the job definition's read-only root and its one scratch volume.

No Docker here: these tests read the Dockerfile, requirements.txt, pyproject.toml, the
installed packages' metadata and modules/batch (with the project's HCL reader, modules/docs.py).
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import re
import shlex
import sys
import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from tfsource import docs

REPO = Path(__file__).resolve().parents[2]
WORKER = REPO / "functions" / "inferstack_worker"
DOCKERFILE = WORKER / "Dockerfile"
REQUIREMENTS = WORKER / "requirements.txt"
# Where the image runs: Fargate's Linux on either architecture, the base image's Python.
MARKER_ENV = {"sys_platform": "linux", "platform_system": "Linux", "os_name": "posix", "extra": ""}


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of the Dockerfile, continuation lines joined."""
    text = DOCKERFILE.read_text(encoding="utf-8").replace("\\\n", " ")
    result = []
    for raw in text.splitlines():
        line = raw.strip()
        if line and not line.startswith("#"):
            keyword, _, rest = line.partition(" ")
            result.append((keyword.upper(), rest.strip()))
    return result


def _args() -> dict[str, str]:
    return dict(rest.split("=", 1) for kw, rest in instructions() if kw == "ARG" and "=" in rest)


def _env() -> dict[str, str]:
    env: dict[str, str] = {}
    for keyword, rest in instructions():
        if keyword == "ENV":
            env.update(word.split("=", 1) for word in shlex.split(rest))
    return env


def pinned() -> dict[str, str]:
    """requirements.txt as canonical name -> version; every line must be an exact pin."""
    pins = {}
    for raw in REQUIREMENTS.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        match = re.fullmatch(r"([A-Za-z0-9._-]+)==([A-Za-z0-9.+!-]+)", line)
        assert match, f"requirements.txt: {line!r} is not an exact name==version pin"
        pins[canonicalize_name(match.group(1))] = match.group(2)
    return pins


def image_python() -> str:
    """The base image's Python as major.minor, from its tag (python:3.13.15-slim-...)."""
    match = re.match(r"python:(3\.\d+)\.\d+-", _args()["PYTHON_IMAGE"])
    assert match, f"cannot read the Python version of {_args()['PYTHON_IMAGE']}"
    return match.group(1)


def _lambda_python() -> str:
    """The Python layers/build.py builds the Lambda layer for."""
    spec = importlib.util.spec_from_file_location("layers_build_py", REPO / "layers" / "build.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault(spec.name, module)  # its dataclasses resolve their module by name
    spec.loader.exec_module(module)
    return str(module.LAMBDA_PYTHON)


def test_base_image_is_pinned_by_version_and_digest() -> None:
    image = _args()["PYTHON_IMAGE"]
    assert re.fullmatch(r"python:3\.\d+\.\d+-slim-[a-z]+@sha256:[0-9a-f]{64}", image), image
    for keyword, rest in instructions():
        if keyword == "FROM":
            assert rest.split()[0] == "${PYTHON_IMAGE}", f"FROM {rest}: use the pinned base image"


def test_every_pip_install_takes_only_pinned_packages() -> None:
    runs = [rest for keyword, rest in instructions() if keyword == "RUN"]
    commands = [c.strip() for run in runs for c in run.split("&&")]
    pip = [shlex.split(c) for c in commands if c.startswith("pip ")]
    assert pip, "the Dockerfile installs nothing with pip"
    for words in pip:
        if words[1] == "check":
            continue
        assert "--no-deps" in words, f"`{' '.join(words)}` would resolve dependencies itself"
        if words[1] == "wheel":
            assert "--no-build-isolation" in words, "an isolated build resolves its backend anew"
            continue
        assert words[1] == "install", words
        targets = [w for w in words[2:] if not w.startswith("-") or w == "-r"]
        for i, target in enumerate(targets):
            if target == "-r" or (i and targets[i - 1] == "-r"):
                continue
            assert re.fullmatch(r"[A-Za-z0-9._-]+==[0-9][A-Za-z0-9.]*", target) or target.endswith(
                ".whl"
            ), f"`{target}` is not pinned"
    assert any("-r" in words and words[-1].endswith("requirements.txt") for words in pip)
    assert "pip check" in commands, "the build must prove the pinned set complete"


def test_worker_runs_the_python_of_the_lambda_runtime() -> None:
    """The worker and the functions run the same pinned wheels: one Python for both."""
    assert image_python() == _lambda_python() == "3.13"


def test_requirements_pin_exactly_the_projects_dependencies() -> None:
    project = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    pins = pinned()
    for dependency in project["dependencies"]:
        requirement = Requirement(dependency)
        (spec,) = requirement.specifier
        assert spec.operator == "==", f"pyproject.toml pins {dependency} loosely"
        assert pins.get(canonicalize_name(requirement.name)) == spec.version, (
            f"requirements.txt must pin {requirement.name} at pyproject.toml's {spec.version}"
        )


def test_requirements_are_complete_and_consistent() -> None:
    """Every package the pinned ones require is pinned too, at a version they accept (from the
    metadata of the packages installed here, which must be the pinned versions), with the
    markers evaluated for the base image's Python."""
    pins = pinned()
    python = image_python()
    for name, version in pins.items():
        installed = importlib.metadata.version(name)
        assert installed == version, (
            f"{name}: requirements.txt pins {version}, the tests run {installed}; regenerate it"
        )
        for line in importlib.metadata.requires(name) or []:
            requirement = Requirement(line)
            environment = {**MARKER_ENV, "python_version": python, "python_full_version": python}
            if requirement.marker is not None and not requirement.marker.evaluate(environment):
                continue
            dependency = canonicalize_name(requirement.name)
            assert dependency in pins, f"{name} needs {requirement}, which is not pinned"
            assert requirement.specifier.contains(pins[dependency], prereleases=True), (
                f"{name} needs {requirement}; requirements.txt pins {pins[dependency]}"
            )


def _batch_local(name: str) -> str:
    for block in docs.module_blocks(REPO / "modules" / "batch"):
        if block.kind == "locals" and name in block.attributes:
            return docs.string_value(block.attributes[name])
    raise AssertionError(f"modules/batch has no local.{name}")


def test_the_worker_writes_only_under_the_job_definitions_scratch_volume() -> None:
    """The job definition mounts its only writable volume at local.worker_scratch_path; the
    image declares that path a VOLUME (so ECS gives the mount the image's 1777 mode, writable
    by the non-root user) and keeps the model cache under it."""
    scratch = _batch_local("worker_scratch_path")
    volumes = [
        v for kw, rest in instructions() if kw == "VOLUME" for v in re.findall(r'"([^"]+)"', rest)
    ]
    assert volumes == [scratch], f"VOLUME {volumes} must be the job definition's mount {scratch}"
    cache = Path(_env()["MODEL_CACHE_DIR"])
    assert cache.is_relative_to(scratch), f"MODEL_CACHE_DIR {cache} is outside {scratch}"
    users = [rest for kw, rest in instructions() if kw == "USER"]
    assert users and not users[-1].startswith(("0", "root")), "the worker must not run as root"
