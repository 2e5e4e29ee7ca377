"""The least-privilege evaluator and report (inferstack.local.leastpriv) on hand-made policies."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from inferstack.local import leastpriv
from inferstack.local.leastpriv import Role, build_report, evaluate, parse_policies
from tfsource import docs

REPO = Path(__file__).resolve().parents[2]
BUCKET = "arn:aws:s3:::data"
JOB = "arn:aws:iam::123456789012:role/job"

POLICY = {
    "Version": "2012-10-17",
    "Statement": [
        {
            "Sid": "ReadInput",
            "Effect": "Allow",
            "Action": "s3:GetObject",
            "Resource": f"{BUCKET}/input/*",
        },
        {
            "Sid": "Output",
            "Effect": "Allow",
            "Action": ["s3:Get*", "S3:PutObject"],
            "Resource": [f"{BUCKET}/output/*"],
        },
        {
            "Sid": "ListInput",
            "Effect": "Allow",
            "Action": "s3:ListBucket",
            "Resource": BUCKET,
            "Condition": {"StringLike": {"s3:prefix": ["input/*"]}},
        },
        {
            "Sid": "Kms",
            "Effect": "Allow",
            "Action": "kms:Decrypt",
            "Resource": "*",
            "Condition": {"StringEquals": {"kms:ViaService": "s3.us-east-1.amazonaws.com"}},
        },
        {
            "Sid": "NoSecret",
            "Effect": "Deny",
            "Action": "s3:*",
            "Resource": f"{BUCKET}/output/secret*",
        },
    ],
}
STATEMENTS = parse_policies({"job-policy": POLICY})


def test_allowed_by_the_statement_that_grants_it() -> None:
    decision = evaluate(STATEMENTS, "s3:GetObject", [f"{BUCKET}/input/a.jpg"])
    assert decision.allowed
    assert decision.granted_by == [("job-policy", "ReadInput", "s3:GetObject")]


def test_denied_by_resource() -> None:
    decision = evaluate(STATEMENTS, "s3:GetObject", [f"{BUCKET}/manifests/m.json"])
    assert not decision.allowed
    assert "s3:GetObject on arn:aws:s3:::data/manifests/m.json" in decision.reason


def test_denied_by_action() -> None:
    assert not evaluate(STATEMENTS, "s3:DeleteObject", [f"{BUCKET}/output/a.json"]).allowed


def test_action_wildcards_and_case() -> None:
    decision = evaluate(STATEMENTS, "s3:getobjecttagging", [f"{BUCKET}/output/a.json"])
    assert decision.allowed and decision.granted_by == [("job-policy", "Output", "s3:Get*")]
    assert evaluate(STATEMENTS, "s3:PutObject", [f"{BUCKET}/output/a/b/c.json"]).allowed
    # resource wildcards are case-sensitive
    assert not evaluate(STATEMENTS, "s3:PutObject", [f"{BUCKET}/OUTPUT/a.json"]).allowed


def test_explicit_deny_wins() -> None:
    decision = evaluate(STATEMENTS, "s3:PutObject", [f"{BUCKET}/output/secret.json"])
    assert not decision.allowed
    assert decision.denied_by == [("job-policy", "NoSecret")]


def test_conditions_from_the_call_context() -> None:
    list_input = evaluate(STATEMENTS, "s3:ListBucket", [BUCKET], {"s3:prefix": "input/2026/"})
    assert list_input.allowed and not list_input.unevaluated
    assert not evaluate(STATEMENTS, "s3:ListBucket", [BUCKET], {"s3:prefix": "output/"}).allowed
    assert not evaluate(STATEMENTS, "s3:ListBucket", [BUCKET], {"s3:prefix": ""}).allowed
    # a key the context does not give: the statement applies, flagged as not evaluated
    kms = evaluate(STATEMENTS, "kms:Decrypt", ["arn:aws:kms:us-east-1:1:key/k"], {})
    assert kms.allowed and kms.unevaluated == ["job-policy/Kms"]
    wrong = {"kms:ViaService": "sqs.us-east-1.amazonaws.com"}
    assert not evaluate(STATEMENTS, "kms:Decrypt", ["arn:aws:kms:us-east-1:1:key/k"], wrong).allowed


def test_negated_and_if_exists_operators() -> None:
    statements = parse_policies(
        {
            "p": {
                "Statement": [
                    {
                        "Effect": "Allow",
                        "Action": "sqs:SendMessage",
                        "Resource": "*",
                        "Condition": {
                            "ArnNotLike": {"aws:SourceArn": "arn:aws:s3:::other*"},
                            "StringEqualsIfExists": {"aws:SourceAccount": "1"},
                        },
                    }
                ]
            }
        }
    )
    assert evaluate(
        statements, "sqs:SendMessage", ["q"], {"aws:SourceArn": "arn:aws:s3:::data"}
    ).allowed
    assert not evaluate(
        statements, "sqs:SendMessage", ["q"], {"aws:SourceArn": "arn:aws:s3:::other1"}
    ).allowed
    ctx = {"aws:SourceArn": "arn:aws:s3:::data", "aws:SourceAccount": "2"}
    assert not evaluate(statements, "sqs:SendMessage", ["q"], ctx).allowed


def _call(action: str, resource: str, **params: str) -> dict:
    return {
        "principal": "arn:aws:sts::123456789012:assumed-role/job/j-1",
        "action": action,
        "resources": [resource],
        "params": params,
        "decision": "allow",
        "region": "us-east-1",
    }


def test_report_lists_calls_outside_the_policies_and_unexplained_grants() -> None:
    role = Role("job", JOB, {"job-policy": POLICY})
    calls = [
        _call("s3:GetObject", f"{BUCKET}/input/a.jpg"),
        _call("s3:ListBucket", BUCKET, prefix="output/"),  # the condition refuses it
        _call("s3:HeadBucket", BUCKET),  # moto's name; S3 authorises it as s3:ListBucket
    ]
    reasons = {("job-policy", "Output", "s3:Get*"): "reads its earlier results"}
    report = build_report([role], calls, reasons)
    assert not report["ok"]
    outside = [(c["action"], c["params"]) for c in report["outside_policies"]]
    assert outside == [("s3:ListBucket", {"prefix": "output/"}), ("s3:HeadBucket", {})]
    unexplained = {(g["sid"], g["action"]) for g in report["unexplained_grants"]}
    assert unexplained == {
        ("Output", "S3:PutObject"),
        ("ListInput", "s3:ListBucket"),
        ("Kms", "kms:Decrypt"),
    }
    unused = {g["action"]: g["reason"] for g in report["roles"]["job"]["unused_grants"]}
    assert unused["s3:Get*"] == "reads its earlier results"
    assert "ReadInput" not in {g["sid"] for g in report["roles"]["job"]["unused_grants"]}
    assert "**NOT ALLOWED**" in leastpriv.render_markdown(report)


def test_report_ok_when_every_call_is_allowed_and_every_unused_grant_explained() -> None:
    role = Role("job", JOB, {"job-policy": POLICY})
    calls = [
        _call("s3:GetObject", f"{BUCKET}/input/a.jpg"),
        _call("s3:ListBucket", BUCKET, prefix="input/"),
    ]
    reasons = {
        ("job-policy", sid, a): "why"
        for sid, a in (("Output", "s3:Get*"), ("Output", "S3:PutObject"), ("Kms", "kms:Decrypt"))
    }
    report = build_report([role], calls, reasons)
    assert report["ok"], report


def _module_statements(module: str) -> dict[str, set[str]]:
    """sid -> actions of every statement of every aws_iam_policy_document of a module."""
    found: dict[str, set[str]] = {}
    for block in docs.module_blocks(REPO / "modules" / module):
        if block.kind != "data" or block.labels[0] != "aws_iam_policy_document":
            continue
        for item in block.blocks:
            statement = item
            if item.kind == "dynamic" and item.labels == ["statement"]:
                (statement,) = [b for b in item.blocks if b.kind == "content"]
            elif item.kind != "statement":
                continue
            if "sid" in statement.attributes:
                sid = docs.string_value(statement.attributes["sid"])
                actions = re.findall(r'"([a-z0-9-]+:[A-Za-z*]+)"', statement.attributes["actions"])
                found.setdefault(sid, set()).update(actions)
    return found


@pytest.mark.parametrize("path", leastpriv.REASON_FILES, ids=lambda p: p.parent.name)
def test_every_reason_names_a_grant_the_module_writes(path: Path) -> None:
    """A reason for a grant the module no longer writes is stale: remove it with the grant."""
    statements = _module_statements(path.parent.name)
    data = json.loads(path.read_text())
    assert data["policies"], path
    sources = "".join(f.read_text() for f in path.parent.glob("*.tf"))
    for policy, sids in data["policies"].items():
        assert f'name   = "{policy}"' in sources, f"{path}: no role policy named {policy}"
        for sid, entry in sids.items():
            assert sid in statements, f"{path}: {policy}/{sid} is no statement of the module"
            assert set(entry["actions"]) <= statements[sid], f"{path}: {policy}/{sid}"
            assert entry["reason"].strip()


def test_reason_files_exist_for_the_modules_with_component_roles() -> None:
    assert {p.parent.name for p in leastpriv.REASON_FILES} == {"batch", "realtime_api"}
