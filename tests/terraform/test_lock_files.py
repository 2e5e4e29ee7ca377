"""The root stack and each example commit a dependency lock file that works on every platform.

A lock file written by `terraform init` from a single-platform mirror holds one h1 checksum,
and `terraform init` on another platform (macOS, arm64) then refuses the provider it
downloads. The committed files carry the registry's zh checksums of every platform's package
plus the h1 of the linux_amd64 package (the one the offline mirror here holds, so `terraform
init` here verifies against it).
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
from packaging.specifiers import SpecifierSet
from packaging.version import Version
from tfharness import EXAMPLES, REPO_ROOT, ROOT_STACK, config_id

pytestmark = pytest.mark.terraform

PROVIDER = "registry.terraform.io/hashicorp/aws"
# The registry's checksums of hashicorp/aws 5.100.0: one zh (the zip's SHA-256) per released
# platform package, 15 in all, as `terraform init` against the registry writes them.
PLATFORMS = 15


def _lock(config: Path) -> tuple[str, list[str]]:
    text = (config / ".terraform.lock.hcl").read_text(encoding="utf-8")
    block = re.search(rf'provider "{re.escape(PROVIDER)}" {{(.*?)\n}}', text, re.S)
    assert block, f"{config_id(config)}: no {PROVIDER} entry"
    version = re.search(r'version\s*=\s*"([^"]+)"', block.group(1))
    assert version
    return version.group(1), re.findall(r'"((?:h1|zh):[^"]+)"', block.group(1))


def _constraint(config: Path) -> SpecifierSet:
    sources = "".join(p.read_text(encoding="utf-8") for p in sorted(config.glob("*.tf")))
    match = re.search(r'source\s*=\s*"hashicorp/aws"\s*\n\s*version\s*=\s*"([^"]+)"', sources)
    assert match, f"{config_id(config)} declares no hashicorp/aws version constraint"
    return SpecifierSet(match.group(1).replace(" ", ""))


@pytest.mark.parametrize("config", [ROOT_STACK, *EXAMPLES], ids=config_id)
def test_lock_file_is_committed_and_covers_every_platform(config: Path) -> None:
    lock = config / ".terraform.lock.hcl"
    assert lock.is_file(), f"{config_id(config)} has no .terraform.lock.hcl"
    ignored = subprocess.run(
        ["git", "check-ignore", "-q", str(lock.relative_to(REPO_ROOT))],
        cwd=REPO_ROOT,
        check=False,
    )
    assert ignored.returncode == 1, f"{lock} is ignored by git: it must be committed"
    version, hashes = _lock(config)
    assert Version(version) in _constraint(config), f"{version} is outside the constraint"
    zh = [h for h in hashes if h.startswith("zh:")]
    assert len(set(zh)) == PLATFORMS, f"{config_id(config)}: {len(zh)} zh checksums"
    assert any(h.startswith("h1:") for h in hashes)


def test_every_lock_file_pins_the_same_provider() -> None:
    locks = {config_id(c): _lock(c) for c in [ROOT_STACK, *EXAMPLES]}
    assert len({(v, tuple(sorted(h))) for v, h in locks.values()}) == 1, locks
