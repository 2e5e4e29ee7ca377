"""Shared pytest configuration: paths every test suite uses."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
# Real pretrained models and photos live beside the project, never inside it.
FIXTURES_DIR = REPO_ROOT.parent / "shared" / "fixtures" / "imagenet"


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO_ROOT


@pytest.fixture(scope="session")
def imagenet_fixtures() -> Path:
    if not FIXTURES_DIR.is_dir():
        pytest.skip(f"pretrained fixtures not found at {FIXTURES_DIR}")
    return FIXTURES_DIR
