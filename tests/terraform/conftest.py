"""Terraform fixtures: one environment and one `terraform init` per directory per session."""

from __future__ import annotations

import shutil
from collections.abc import Iterator

import pytest
from tfharness import CONFIGS, TESTED_MODULES, Terraform, terraform_env


@pytest.fixture(scope="session")
def tf_env() -> dict[str, str]:
    if shutil.which("terraform") is None:
        pytest.skip("terraform is not installed")
    return terraform_env()


@pytest.fixture(scope="session")
def terraform(tf_env: dict[str, str]) -> Iterator[Terraform]:
    """Starts every init, validate and `terraform test` job of the session in the background."""
    tf = Terraform(tf_env, CONFIGS, TESTED_MODULES)
    yield tf
    tf.close()
