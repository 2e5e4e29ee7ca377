"""The local cloud for integration tests: the whole stack (emulator, `terraform apply`,
runner) in a state folder of the test's own, torn down afterwards."""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from inferstack.local import stack

REPO = Path(__file__).resolve().parents[1]


def skip_unless_terraform_is_configured() -> None:
    if shutil.which("terraform") is None:
        pytest.skip("terraform is not installed")
    rc = REPO / "build" / "terraform" / "terraformrc"
    if (
        "TF_CLI_CONFIG_FILE" not in os.environ
        and not rc.is_file()
        and os.environ.get("TF_PLUGIN_MIRROR")
    ):
        pytest.skip("run `make tf-config` first (provider mirror configuration)")


@contextlib.contextmanager
def local_stack(state_dir: Path, **up_args: Any) -> Iterator[dict[str, Any]]:
    """`inferstack local up` into state_dir; its endpoints; `down` whatever happens. The
    emulator's, the runner's and the functions' logs stay in state_dir/logs (pytest keeps the
    last three runs' temporary folders), for whoever reads a failure."""
    skip_unless_terraform_is_configured()
    try:
        yield stack.up(root=REPO, state_dir=state_dir, **up_args)
    finally:
        stack.down(root=REPO, state_dir=state_dir, quiet=True, keep_logs=True)
