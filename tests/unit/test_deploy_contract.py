"""The README's "Deploy to AWS" steps, the root stack's outputs and the example tfvars agree.

The worker image is the weak link of a first deployment: it must be built for the CPU
architecture the job definition asks Fargate for, pushed to the exact URI the job definition
runs, and the registry login must name the stack's region. These tests read the README's
shell block, the root stack's Terraform (with the project's own HCL reader, modules/docs.py)
and the example tfvars, and fail when one of them drifts from the others.
"""

from __future__ import annotations

import re
import shlex
import tomllib
from pathlib import Path

import pytest
from tfsource import docs

REPO = Path(__file__).resolve().parents[2]
ROOT_STACK = REPO / "terraform"
EXAMPLE_TFVARS = ROOT_STACK / "environments" / "aws.example.tfvars"
OUTPUT_REF = re.compile(r"\$\(terraform output -raw ([a-z0-9_]+)\)")


def _blocks(kind: str) -> dict[str, docs.Block]:
    return {b.labels[0]: b for b in docs.module_blocks(ROOT_STACK) if b.kind == kind}


def deploy_commands() -> list[str]:
    """The shell block of the README's "Deploy to AWS" section, one command per line
    (backslash continuations joined, comments dropped)."""
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Deploy to AWS", 1)[1].split("\n## ", 1)[0]
    match = re.search(r"```sh\n(.*?)```", section, re.S)
    assert match, "the Deploy to AWS section has no ```sh block"
    text = match.group(1).replace("\\\n", " ")
    lines = [line.split(" #", 1)[0].strip() for line in text.splitlines()]
    return [line for line in lines if line and not line.startswith("#")]


def _resolve(word: str, assignments: dict[str, str]) -> str:
    """A word that is exactly "$NAME" or "${NAME}" of a variable the block assigned -> its value."""
    match = re.fullmatch(r"\$\{?([A-Z_]+)\}?", word)
    return assignments.get(match.group(1), word) if match else word


def _parsed() -> tuple[list[list[str]], dict[str, str], Path]:
    """Each command split into words (pipelines split at |), the block's variable assignments,
    and the directory the commands after `cd` run in."""
    commands: list[list[str]] = []
    assignments: dict[str, str] = {}
    cwd = REPO
    for line in deploy_commands():
        assignment = re.fullmatch(r'([A-Z_]+)="(.+)"', line)
        if assignment:
            assignments[assignment.group(1)] = assignment.group(2)
            continue
        for part in re.split(r"\s\|\s|;", line):
            words = [w.strip('"') for w in shlex.split(part, posix=False)]
            if not words:
                continue
            if words[0] == "cd":
                cwd = (cwd / words[1]).resolve()
            commands.append([_resolve(w, assignments) for w in words])
    return commands, assignments, cwd


def _command(commands: list[list[str]], *prefix: str) -> list[str]:
    found = [c for c in commands if c[: len(prefix)] == list(prefix)]
    assert len(found) == 1, f"expected one `{' '.join(prefix)}` in the deploy steps, got {found}"
    return found[0]


def _option(command: list[str], name: str) -> str:
    assert name in command, f"`{' '.join(command)}` has no {name}"
    return command[command.index(name) + 1]


def test_every_output_the_steps_read_exists() -> None:
    outputs = _blocks("output")
    used = {name for line in deploy_commands() for name in OUTPUT_REF.findall(line)}
    assert used, "the deploy steps read no terraform output"
    assert used <= outputs.keys(), f"outputs the root stack does not have: {used - outputs.keys()}"


def test_the_image_is_built_for_the_job_definitions_platform_and_pushed_where_it_runs() -> None:
    commands, _, cwd = _parsed()
    build = _command(commands, "docker", "build")
    push = _command(commands, "docker", "push")
    image = "$(terraform output -raw worker_image)"
    assert _option(build, "--platform") == "$(terraform output -raw worker_image_platform)"
    assert _option(build, "-t") == image, "the build must tag the URI the job definition runs"
    assert push[2] == image, "the push must send the URI the job definition runs"
    dockerfile = (cwd / _option(build, "-f")).resolve()
    assert dockerfile == REPO / "functions" / "inferstack_worker" / "Dockerfile"
    assert (cwd / build[-1]).resolve() == REPO, "the build context is the repository root"


def test_the_registry_login_names_the_stacks_region_and_the_images_registry() -> None:
    commands, assignments, _ = _parsed()
    login = _command(commands, "aws", "ecr", "get-login-password")
    assert _option(login, "--region") == "$(terraform output -raw region)"
    registry = _command(commands, "docker", "login")[-1]
    # "${IMAGE%%/*}": the registry host of the image the steps push.
    match = re.fullmatch(r"\$\{([A-Z_]+)%%/\*\}", registry)
    assert match, f"docker login must target the pushed image's registry, not {registry!r}"
    assert assignments[match.group(1)] == "$(terraform output -raw worker_image)"


def test_root_outputs_hand_on_the_batch_modules_image_platform_and_region() -> None:
    outputs = _blocks("output")
    batch = _blocks("module")["batch"]
    assert outputs["worker_image"].attributes["value"] == "module.batch.worker_image"
    assert outputs["worker_image_platform"].attributes["value"] == (
        "module.batch.worker_image_platform"
    )
    assert outputs["region"].attributes["value"] == "var.region"
    # The job definition's runtime platform and the platform output both follow this.
    assert batch.attributes["architecture"] == "var.architecture"


def test_the_push_commands_output_matches_the_readme() -> None:
    value = _blocks("output")["worker_image_push_commands"].attributes["value"]
    for expected in (
        "aws ecr get-login-password --region ${var.region}",
        "docker build --platform ${module.batch.worker_image_platform}",
        "-f functions/inferstack_worker/Dockerfile -t ${module.batch.worker_image} .",
        "docker push ${module.batch.worker_image}",
    ):
        assert expected in value, f"worker_image_push_commands lacks {expected!r}"
    assert (REPO / "functions" / "inferstack_worker" / "Dockerfile").is_file()


def _depth(line: str) -> int:
    return line.count("{") + line.count("[") - line.count("}") - line.count("]")


def example_settings() -> dict[str, str]:
    """The example tfvars' commented settings, uncommented: name -> expression source.
    A setting starts at "# name = ..." and runs until its brackets close; nested comments
    ("#   # ...") stay comments."""
    settings: dict[str, str] = {}
    lines = EXAMPLE_TFVARS.read_text(encoding="utf-8").splitlines()
    i = 0
    while i < len(lines):
        match = re.match(r"# ([a-z_]+) *=", lines[i])
        if not match:
            i += 1
            continue
        snippet = [lines[i][2:]]
        depth = _depth(lines[i])
        while depth > 0:
            i += 1
            line = lines[i][2:] if lines[i].startswith("# ") else lines[i].lstrip("#")
            snippet.append(line)
            if not line.lstrip().startswith("#"):
                depth += _depth(line)
        attributes, _ = docs.parse_body("\n".join(snippet) + "\n")
        # The example shows alternatives (a new VPC or your own): keep the first of each.
        for name, source in attributes.items():
            settings.setdefault(name, source)
        i += 1
    return settings


def _object_attributes(type_source: str) -> set[str]:
    return set(re.findall(r"([a-z_]+)\s*=\s*optional\(", type_source))


def test_example_tfvars_names_only_root_variables() -> None:
    variables = _blocks("variable")
    settings = example_settings()
    assert {"region", "architecture", "batch"} <= settings.keys()
    assert settings.keys() <= variables.keys(), settings.keys() - variables.keys()
    for name, source in settings.items():
        if source.startswith("{"):
            keys = set(re.findall(r"^\s*([a-z_]+)\s*=", source, re.M))
            allowed = _object_attributes(variables[name].attributes["type"])
            assert keys <= allowed, f"{name}: {keys - allowed} are not attributes of var.{name}"


def test_example_tfvars_agrees_on_architecture_region_and_image_tag() -> None:
    settings = example_settings()
    variables = _blocks("variable")
    assert docs.string_value(settings["region"]) == docs.string_value(
        variables["region"].attributes["default"]
    )
    assert docs.string_value(settings["architecture"]) in {"arm64", "x86_64"}
    tag = re.search(r'worker_image_tag\s*=\s*"([^"]+)"', settings["batch"])
    assert tag, "the example must show batch.worker_image_tag, the tag the README pushes"
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
    assert tag.group(1) == pyproject["project"]["version"], (
        "the example's worker_image_tag is the default one: the project version"
    )
    assert "worker_image_platform" in EXAMPLE_TFVARS.read_text(encoding="utf-8")


@pytest.mark.parametrize("line", ["docker build", "docker push", "get-login-password"])
def test_each_image_step_appears_once(line: str) -> None:
    assert sum(line in c for c in deploy_commands()) == 1
