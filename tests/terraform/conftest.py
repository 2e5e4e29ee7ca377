"""Terraform fixtures: one environment and one `terraform init` per directory per session."""

from __future__ import annotations

import shutil
from collections.abc import Iterator

import pytest
from tfharness import CONFIGS, ROOT_STACK, TESTED_MODULES, Terraform, terraform_env


@pytest.fixture(scope="session")
def tf_env() -> dict[str, str]:
    if shutil.which("terraform") is None:
        pytest.skip("terraform is not installed")
    return terraform_env()


# Started as soon as the session's tests are known (see pytest_collection_finish).
EARLY = pytest.StashKey[Terraform]()


def pytest_collection_finish(session: pytest.Session) -> None:
    """Start the terraform jobs once the tests are collected, not when the first terraform
    test runs: the integration tests run first and mostly wait (on the emulator, on the AWS
    provider's fixed waits), and the jobs use the CPU they leave idle. One job at a time then,
    so that the integration tests keep a CPU; two when nothing else runs.

    The root stack is left out: the integration tests run `terraform init` in it (its lock
    file), so it is validated when its test runs."""
    items = session.items
    if session.config.option.collectonly or shutil.which("terraform") is None:
        return
    if not any(item.get_closest_marker("terraform") for item in items):
        return
    beside_integration = any(item.get_closest_marker("integration") for item in items)
    configs = [c for c in CONFIGS if c != ROOT_STACK] if beside_integration else CONFIGS
    workers = 1 if beside_integration else 2
    jobs = Terraform(terraform_env(), configs, TESTED_MODULES, workers=workers)
    session.config.stash[EARLY] = jobs


@pytest.fixture(scope="session")
def terraform(tf_env: dict[str, str], pytestconfig: pytest.Config) -> Iterator[Terraform]:
    """Every init, validate and `terraform test` job of the session, run in the background."""
    tf = pytestconfig.stash.get(EARLY, None) or Terraform(tf_env, CONFIGS, TESTED_MODULES)
    yield tf
    tf.close()


def pytest_sessionfinish(session: pytest.Session) -> None:
    """Jobs no test waited for (the session stopped early) are not started."""
    jobs = session.config.stash.get(EARLY, None)
    if jobs is not None:
        jobs.close()
