"""Terraform fixtures: one environment and one `terraform init` per directory per session."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
from tfharness import CONFIGS, Initializer, Result, terraform_env


@pytest.fixture(scope="session")
def tf_env() -> dict[str, str]:
    if shutil.which("terraform") is None:
        pytest.skip("terraform is not installed")
    return terraform_env()


@pytest.fixture(scope="session")
def tf_init(tf_env: dict[str, str]) -> Callable[[Path], Result]:
    """Initializes every directory once (two at a time) and hands out the results."""
    initializer = Initializer(tf_env)
    initializer.warm(CONFIGS)
    return initializer
