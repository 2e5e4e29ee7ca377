"""Terraform source as the tests read it: modules/docs.py, the project's own HCL reader (the
one that writes the module READMEs), loaded once for every test that checks a contract
between the Terraform code and the Python code or the docs."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

REPO_ROOT = Path(__file__).resolve().parents[1]


def _load_docs() -> ModuleType:
    spec = importlib.util.spec_from_file_location("tfdocs", REPO_ROOT / "modules" / "docs.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("tfdocs", module)  # dataclasses resolve their module by name
    spec.loader.exec_module(module)
    return module


docs = _load_docs()
