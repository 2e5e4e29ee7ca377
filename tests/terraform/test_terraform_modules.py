"""Static checks of the Terraform code: fmt, validate, `terraform test`, checkov, README docs.

Nothing here needs an AWS account or an emulator: `terraform test` files use mock providers.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from tfharness import (
    CONFIGS,
    MODULES,
    PLUGIN_CACHE,
    REPO_ROOT,
    ROOT_STACK,
    TESTED_MODULES,
    Terraform,
    config_id,
    run_tf,
)

pytestmark = pytest.mark.terraform

CHECKOV = REPO_ROOT / "build" / "tools" / "checkov" / "bin" / "checkov"


def test_fmt(tf_env: dict[str, str]) -> None:
    dirs = [d for d in ("modules", "terraform", "examples") if (REPO_ROOT / d).is_dir()]
    result = run_tf(["fmt", "-check", "-recursive", "-diff", "-no-color", *dirs], REPO_ROOT, tf_env)
    assert result.returncode == 0, f"run `terraform fmt -recursive`:\n{result.output}"


@pytest.mark.parametrize("config", CONFIGS, ids=config_id)
def test_validate(config: Path, terraform: Terraform) -> None:
    result = terraform.validate(config)
    assert result.returncode == 0, result.output


@pytest.mark.parametrize("module", TESTED_MODULES, ids=config_id)
def test_terraform_test(module: Path, terraform: Terraform) -> None:
    result = terraform.test(module)
    assert result.returncode == 0, result.output
    assert "0 failed" in result.output, result.output


def _cache_entries() -> dict[Path, tuple[int, int]]:
    """Provider packages in the shared plugin cache with inode and mtime: a reinstall removes
    and recreates the entry, which changes its mtime (the inode may be reused)."""
    packages = PLUGIN_CACHE.glob("*/*/*/*/*")  # host/namespace/type/version/platform
    return {p: (p.lstat().st_ino, p.lstat().st_mtime_ns) for p in packages}


def test_init_leaves_the_shared_plugin_cache_alone(tf_env: dict[str, str], tmp_path: Path) -> None:
    """The terraform jobs of this session run side by side, each linked into the shared cache:
    an init that reinstalled an entry would pull a provider from under a running test."""
    config = 'terraform {\n  required_providers {\n    aws = { source = "hashicorp/aws" }\n  }\n}\n'

    def init_new_directory(name: str) -> str:
        (tmp_path / name).mkdir()
        (tmp_path / name / "versions.tf").write_text(config)
        result = run_tf(["init", "-backend=false", "-no-color"], tmp_path / name, tf_env)
        assert result.returncode == 0, result.output
        return result.output

    init_new_directory("first")
    before = _cache_entries()
    assert before, f"terraform init put nothing in {PLUGIN_CACHE}"
    output = init_new_directory("second")
    assert _cache_entries() == before, output


def test_every_module_has_tests() -> None:
    untested = sorted(m.name for m in MODULES if m not in TESTED_MODULES)
    assert not untested, f"modules without tests/*.tftest.hcl: {untested}"


def _json_documents(text: str) -> list[object]:
    """checkov prints one JSON document per scanned directory, one after the other."""
    decoder = json.JSONDecoder()
    documents, pos = [], 0
    while (pos := _skip_space(text, pos)) < len(text):
        document, pos = decoder.raw_decode(text, pos)
        documents.append(document)
    return documents


def _skip_space(text: str, pos: int) -> int:
    while pos < len(text) and text[pos].isspace():
        pos += 1
    return pos


def _checkov_failures(documents: list[object]) -> list[str]:
    """Failed checks from checkov's JSON reports (each a dict, or a list of dicts)."""
    reports = [r for d in documents for r in (d if isinstance(d, list) else [d])]
    failures = []
    for rep in reports:
        for check in rep.get("results", {}).get("failed_checks", []):
            failures.append(
                f"{check['check_id']} {check['resource']} {check['file_path']}:"
                f"{check['file_line_range']} {check['check_name']}"
            )
    return failures


def test_checkov() -> None:
    if not CHECKOV.exists():
        message = f"checkov is not installed at {CHECKOV}: run `make checkov`"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    proc = subprocess.run(
        [
            str(CHECKOV),
            *("-d", "modules", "-d", ROOT_STACK.name),
            *("--framework", "terraform", "--output", "json", "--quiet"),
            "--skip-download",  # no network: no guideline links
        ],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
        env=dict(os.environ, BC_SKIP_MAPPING="TRUE"),
    )
    try:
        documents = _json_documents(proc.stdout)
    except json.JSONDecodeError:
        rc = proc.returncode
        pytest.fail(f"checkov wrote no JSON report (rc {rc}):\n{proc.stderr[-4000:]}")
    assert documents, f"checkov reported nothing:\n{proc.stderr[-4000:]}"
    failures = _checkov_failures(documents)
    hint = "checkov failed checks (fix, or skip inline with a reason):\n"
    assert not failures, hint + "\n".join(failures)
    assert proc.returncode == 0, proc.stderr[-4000:]


def test_module_docs_in_sync() -> None:
    proc = subprocess.run(
        [sys.executable, str(REPO_ROOT / "modules" / "docs.py"), "--check"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, f"run `python modules/docs.py`:\n{proc.stderr}"
