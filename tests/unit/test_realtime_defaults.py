"""The root stack's real-time defaults deploy in a fresh AWS account.

A fresh account has no API Gateway CloudWatch role (a stage with logs cannot be created until
one is set) and reduced Lambda quotas (no room for reserved or provisioned concurrency). The
module's own defaults are checked by modules/realtime_api/tests; this checks what the root
stack, read with the project's HCL reader (modules/docs.py), adds on top.
"""

from __future__ import annotations

import re
from pathlib import Path

from tfsource import docs

REPO = Path(__file__).resolve().parents[2]
ROOT_STACK = REPO / "terraform"


BLOCKS = docs.module_blocks(ROOT_STACK)


def _variable_default(name: str) -> str:
    block = next(b for b in BLOCKS if b.kind == "variable" and b.labels[0] == name)
    return block.attributes["default"].strip()


def _module_argument(module: str, name: str) -> str | None:
    block = next(b for b in BLOCKS if b.kind == "module" and b.labels[0] == module)
    value = block.attributes.get(name)
    return value.strip() if value is not None else None


def test_the_api_gateway_cloudwatch_role_is_set_by_default() -> None:
    assert _variable_default("create_api_gateway_account") == "true"
    assert (
        _module_argument("realtime_api", "create_api_gateway_account")
        == "var.create_api_gateway_account"
    )


def test_no_provisioned_or_reserved_concurrency_by_default() -> None:
    assert _variable_default("provisioned_concurrency") == "0"
    # The root passes the predict settings through; null takes the module default (-1).
    assert _module_argument("realtime_api", "reserved_concurrency") == (
        "var.predict.reserved_concurrency"
    )
    # The dispatcher's settings pass through with no default of the root's own: null takes the
    # batch module's (no reservation, concurrency bounded by the SQS mapping).
    assert _module_argument("batch", "dispatcher") == "var.batch.dispatcher"
    batch_type = next(b for b in BLOCKS if b.kind == "variable" and b.labels[0] == "batch")
    assert re.search(
        r"reserved_concurrency\s*=\s*optional\(number\)\n", batch_type.attributes["type"]
    )


def test_local_environment_turns_off_what_moto_cannot_destroy() -> None:
    local = (ROOT_STACK / "environments" / "local.tfvars").read_text(encoding="utf-8")
    assert re.search(r"^create_api_gateway_account\s*=\s*false", local, re.M)
