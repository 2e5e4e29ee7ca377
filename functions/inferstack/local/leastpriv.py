"""Least-privilege report: every AWS call a component made, against its role's policies.

moto enforces IAM only in part (the local README lists what it does not evaluate: conditions,
resources outside S3/SQS/IAM/STS, KMS key policies, ...). For that remainder the project
checks itself. The emulator (inferstack.local.motoserver) records every authorisation of a
role session: principal, action, resources, request parameters, moto's decision. This module
evaluates each recorded call against the policies of the caller's role as Terraform wrote
them (read back from the emulator's IAM), with wildcards in actions and resources and the
conditions whose keys the call's context gives (``s3:prefix`` of a ListBucket, ...), and
lists every granted action that no call used. An unused grant must be explained in the
reasons file next to the policy (``modules/<module>/iam_unused_grants.json``) or removed.

``python -m inferstack.local.leastpriv [--emulator-url URL] [--out DIR]`` writes
``report.json`` and ``report.md`` for the stack ``inferstack local up`` started (or the
emulator given); exit 1 when a call was made outside the policies or a grant is unexplained.
"""

from __future__ import annotations

import argparse
import fnmatch
import json
import sys
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote

REPO_ROOT = Path(__file__).resolve().parents[3]
CALLS_PATH = "/moto-api/inferstack/calls"  # = inferstack.local.motoserver.CALLS_PATH
REASON_FILES = tuple(sorted((REPO_ROOT / "modules").glob("*/iam_unused_grants.json")))
# The service principals the local runner plays: the roles it assumes are the report's roles.
COMPONENT_SERVICES = ("lambda.amazonaws.com", "ecs-tasks.amazonaws.com")

# moto's names of S3 operations that are not IAM actions (moto/s3/responses.py ACTION_MAP),
# and the action AWS authorises them with.
S3_ACTION_OF = {"s3:headbucket": "s3:ListBucket", "s3:listbucketversions": "s3:ListBucketVersions"}

# ------------------------------------------------------------------------ evaluation


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return [value] if isinstance(value, (str, bool, int)) else list(value)


def _wildcard(pattern: str, value: str, *, case: bool) -> bool:
    """IAM wildcards: * any run of characters, ? one character (fnmatch's [ ] escaped)."""
    escaped = pattern.replace("[", "[[]")
    if not case:
        return fnmatch.fnmatchcase(value.lower(), escaped.lower())
    return fnmatch.fnmatchcase(value, escaped)


def action_matches(pattern: str, action: str) -> bool:
    """Action names are case-insensitive; '*' and '?' are wildcards."""
    return _wildcard(pattern, action, case=False)


def resource_matches(pattern: str, resource: str) -> bool:
    """ARNs are case-sensitive; '*' and '?' are wildcards, also inside ARN segments."""
    return pattern == "*" or _wildcard(pattern, resource, case=True)


UNKNOWN = "unknown"  # a condition on a key the call's context does not give


def _string_test(operator: str, expected: str, actual: str) -> bool:
    if operator in ("StringEquals", "ArnEquals"):
        return actual == expected
    if operator == "StringEqualsIgnoreCase":
        return actual.lower() == expected.lower()
    if operator in ("StringLike", "ArnLike"):
        return _wildcard(expected, actual, case=True)
    if operator == "Bool":
        return actual.lower() == expected.lower()
    raise ValueError(operator)


_NEGATED = {
    "StringNotEquals": "StringEquals",
    "StringNotLike": "StringLike",
    "ArnNotEquals": "ArnEquals",
    "ArnNotLike": "ArnLike",
    "StringNotEqualsIgnoreCase": "StringEqualsIgnoreCase",
}
SUPPORTED_OPERATORS = frozenset(
    {
        "StringEquals",
        "StringLike",
        "ArnEquals",
        "ArnLike",
        "Bool",
        "StringEqualsIgnoreCase",
        *_NEGATED,
    }
)


def condition_result(conditions: Mapping[str, Any], context: Mapping[str, Any]) -> bool | str:
    """True/False, or UNKNOWN when a key is missing from the context or an operator is not
    supported here (the statement may or may not apply: the report says so)."""
    unknown = False
    for raw_operator, keys in conditions.items():
        operator = raw_operator.removesuffix("IfExists")
        if_exists = raw_operator.endswith("IfExists")
        for key, expected in keys.items():
            values = context.get(key, context.get(key.lower()))
            if values is None:
                if if_exists:
                    continue
                unknown = True
                continue
            if operator not in SUPPORTED_OPERATORS:
                unknown = True
                continue
            positive = _NEGATED.get(operator, operator)
            hit = any(
                _string_test(positive, str(e), str(a))
                for e in _as_list(expected)
                for a in _as_list(values)
            )
            if operator in _NEGATED:
                hit = not hit
            if not hit:
                return False
    return UNKNOWN if unknown else True


@dataclass(frozen=True)
class Statement:
    policy: str
    sid: str
    effect: str
    actions: tuple[str, ...]
    not_actions: tuple[str, ...]
    resources: tuple[str, ...]
    not_resources: tuple[str, ...]
    condition: Mapping[str, Any]

    @classmethod
    def parse(cls, policy: str, index: int, raw: Mapping[str, Any]) -> Statement:
        return cls(
            policy=policy,
            sid=str(raw.get("Sid") or f"#{index}"),
            effect=str(raw.get("Effect", "Allow")),
            actions=tuple(_as_list(raw.get("Action"))),
            not_actions=tuple(_as_list(raw.get("NotAction"))),
            resources=tuple(_as_list(raw.get("Resource"))),
            not_resources=tuple(_as_list(raw.get("NotResource"))),
            condition=raw.get("Condition") or {},
        )

    def covers_action(self, action: str) -> str | None:
        """The action pattern of this statement that covers `action` (None: not covered)."""
        if self.not_actions:
            return None if any(action_matches(p, action) for p in self.not_actions) else "NotAction"
        return next((p for p in self.actions if action_matches(p, action)), None)

    def covers_resource(self, resource: str) -> bool:
        if self.not_resources:
            return not any(resource_matches(p, resource) for p in self.not_resources)
        return any(resource_matches(p, resource) for p in self.resources)


def parse_policies(documents: Mapping[str, Any]) -> list[Statement]:
    """{policy name: policy document (dict or JSON)} -> statements."""
    statements = []
    for name, document in documents.items():
        doc = json.loads(document) if isinstance(document, str) else document
        for index, raw in enumerate(_as_list(doc.get("Statement"))):
            statements.append(Statement.parse(name, index, raw))
    return statements


@dataclass
class Decision:
    allowed: bool
    # (policy, sid, action pattern) of the Allow statements that grant the call
    granted_by: list[tuple[str, str, str]] = field(default_factory=list)
    denied_by: list[tuple[str, str]] = field(default_factory=list)
    unevaluated: list[str] = field(default_factory=list)  # statements with UNKNOWN conditions
    reason: str = ""


def evaluate(
    statements: Sequence[Statement],
    action: str,
    resources: Sequence[str],
    context: Mapping[str, Any] | None = None,
) -> Decision:
    """Identity-policy evaluation: an explicit Deny wins, else every resource needs an Allow.

    A statement whose condition cannot be evaluated (UNKNOWN) counts as applying, for an
    Allow (the call is reported as allowed "with unevaluated conditions") and a Deny alike.
    """
    context = context or {}
    decision = Decision(allowed=True)
    for resource in resources or ["*"]:
        allowed_here = False
        for st in statements:
            pattern = st.covers_action(action)
            if pattern is None or not st.covers_resource(resource):
                continue
            cond = condition_result(st.condition, context)
            if cond is False:
                continue
            if cond == UNKNOWN:
                decision.unevaluated.append(f"{st.policy}/{st.sid}")
            if st.effect == "Deny":
                decision.denied_by.append((st.policy, st.sid))
            else:
                allowed_here = True
                entry = (st.policy, st.sid, pattern)
                if entry not in decision.granted_by:
                    decision.granted_by.append(entry)
        if not allowed_here:
            decision.allowed = False
            decision.reason = f"no statement allows {action} on {resource}"
    if decision.denied_by:
        decision.allowed = False
        decision.reason = "explicit deny: " + ", ".join(f"{p}/{s}" for p, s in decision.denied_by)
    return decision


# ------------------------------------------------------------------ recorded calls


def call_action(call: Mapping[str, Any]) -> str:
    """The IAM action of a recorded call (moto's names mapped where they differ)."""
    action = str(call["action"])
    return S3_ACTION_OF.get(action.lower(), action)


def call_context(call: Mapping[str, Any]) -> dict[str, Any]:
    """Condition keys the call's own request gives (the rest stays unknown).

    s3:prefix / s3:delimiter / s3:max-keys of a ListBucket, aws:RequestedRegion,
    aws:PrincipalArn. A ListBucket without a prefix has an empty s3:prefix, which is how S3
    evaluates it (the key is present with "").
    """
    params = call.get("params") or {}
    context: dict[str, Any] = {
        "aws:RequestedRegion": call.get("region", ""),
        "aws:PrincipalArn": role_arn_of(str(call.get("principal", ""))),
    }
    if call_action(call).lower() == "s3:listbucket":
        context["s3:prefix"] = unquote(str(params.get("prefix", "")))
        for key in ("delimiter", "max-keys"):
            if key in params:
                context[f"s3:{key}"] = str(params[key])
    return context


def role_arn_of(principal: str) -> str:
    """arn:aws:sts::<acct>:assumed-role/<role>/<session> -> arn:aws:iam::<acct>:role/<role>."""
    if ":assumed-role/" not in principal:
        return principal
    prefix, rest = principal.split(":assumed-role/", 1)
    partition_account = prefix.replace(":sts:", ":iam:", 1)
    return f"{partition_account}:role/{rest.split('/', 1)[0]}"


# --------------------------------------------------------------------------- report


def load_reasons(files: Iterable[Path] = REASON_FILES) -> dict[tuple[str, str, str], str]:
    """(policy name, sid, action) -> why the grant exists though no local call uses it."""
    reasons: dict[tuple[str, str, str], str] = {}
    for path in files:
        data = json.loads(path.read_text())
        for policy, statements in data.get("policies", {}).items():
            for sid, entry in statements.items():
                for action in entry["actions"]:
                    reasons[(policy, sid, action)] = str(entry["reason"])
    return reasons


@dataclass(frozen=True)
class Role:
    name: str
    arn: str
    policies: Mapping[str, Any]  # policy name -> document

    @property
    def statements(self) -> list[Statement]:
        return parse_policies(self.policies)


def build_report(
    roles: Sequence[Role],
    calls: Sequence[Mapping[str, Any]],
    reasons: Mapping[tuple[str, str, str], str],
) -> dict[str, Any]:
    """Per role: the calls (allowed by which statement), calls outside the policies, and
    granted actions no call used (explained or not)."""
    by_role: dict[str, list[Mapping[str, Any]]] = defaultdict(list)
    for call in calls:
        by_role[role_arn_of(str(call.get("principal", "")))].append(call)
    report: dict[str, Any] = {"roles": {}, "outside_policies": [], "unexplained_grants": []}
    known_arns = {role.arn for role in roles}
    for arn, role_calls in sorted(by_role.items()):
        if arn not in known_arns:
            for call in role_calls:
                report["outside_policies"].append(
                    {**_call_summary(call), "role": arn, "why": "role not in the report"}
                )
    for role in roles:
        statements = role.statements
        used: set[tuple[str, str, str]] = set()
        rows: dict[tuple[str, str, str], dict[str, Any]] = {}
        for call in by_role.get(role.arn, []):
            action = call_action(call)
            decision = evaluate(
                statements, action, call.get("resources") or ["*"], call_context(call)
            )
            used.update(decision.granted_by)
            key = (action, ",".join(call.get("resources") or ["*"]), str(decision.allowed))
            row = rows.setdefault(
                key,
                {
                    "action": action,
                    "resources": call.get("resources"),
                    "count": 0,
                    "allowed": decision.allowed,
                    "granted_by": sorted({f"{p}/{s}" for p, s, _ in decision.granted_by}),
                    "unevaluated_conditions": sorted(set(decision.unevaluated)),
                    "emulator_decision": call.get("decision"),
                },
            )
            row["count"] += 1
            if not decision.allowed:
                summary = {**_call_summary(call), "role": role.arn, "why": decision.reason}
                report["outside_policies"].append(summary)
        unused = []
        for st in statements:
            if st.effect != "Allow":
                continue
            for pattern in st.actions or ("NotAction",):
                if (st.policy, st.sid, pattern) in used:
                    continue
                reason = reasons.get((st.policy, st.sid, pattern))
                entry = {"policy": st.policy, "sid": st.sid, "action": pattern, "reason": reason}
                unused.append(entry)
                if reason is None:
                    report["unexplained_grants"].append({**entry, "role": role.arn})
        report["roles"][role.name] = {
            "arn": role.arn,
            "policies": sorted(role.policies),
            "calls": sorted(rows.values(), key=lambda r: (r["action"], str(r["resources"]))),
            "unused_grants": unused,
        }
    report["ok"] = not report["outside_policies"] and not report["unexplained_grants"]
    return report


def _call_summary(call: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "action": call.get("action"),
        "resources": call.get("resources"),
        "principal": call.get("principal"),
        "params": call.get("params"),
    }


def render_markdown(report: Mapping[str, Any]) -> str:
    lines = ["# Least-privilege report", ""]
    lines.append(
        f"Result: {'OK' if report['ok'] else 'FAILED'}: "
        f"{len(report['outside_policies'])} call(s) outside the policies, "
        f"{len(report['unexplained_grants'])} unexplained unused grant(s)."
    )
    for name, role in report["roles"].items():
        lines += [
            "",
            f"## {name}",
            "",
            f"`{role['arn']}`, policies: {', '.join(role['policies'])}",
            "",
        ]
        lines += ["| action | resources | calls | allowed by | emulator |", "|---|---|---|---|---|"]
        for row in role["calls"]:
            allowed = ", ".join(row["granted_by"]) if row["allowed"] else "**NOT ALLOWED**"
            if row["unevaluated_conditions"]:
                allowed += (
                    " (conditions not evaluated: " + ", ".join(row["unevaluated_conditions"]) + ")"
                )
            resources = ", ".join(row["resources"] or ["*"])
            lines.append(
                f"| {row['action']} | {resources} | {row['count']} | {allowed} | "
                f"{row['emulator_decision']} |"
            )
        if not role["calls"]:
            lines.append("| (no call) | | | | |")
        lines += ["", "Granted, not used by any call:", ""]
        for grant in role["unused_grants"]:
            why = grant["reason"] or "**UNEXPLAINED: remove it or give the reason**"
            lines.append(f"- `{grant['action']}` ({grant['policy']}/{grant['sid']}): {why}")
        if not role["unused_grants"]:
            lines.append("- none")
    if report["outside_policies"]:
        lines += ["", "## Calls outside the policies", ""]
        lines += [
            f"- {c['role']}: {c['action']} {c['resources']}: {c['why']}"
            for c in report["outside_policies"]
        ]
    return "\n".join(lines) + "\n"


# ------------------------------------------------------------------- emulator side


def component_roles(iam: Any) -> list[Role]:
    """The roles the local runner assumes (trusted by Lambda or ECS tasks), with every policy
    attached to them as the emulator holds it: inline and managed (default version)."""
    roles = []
    for page in iam.get_paginator("list_roles").paginate():
        for role in page["Roles"]:
            trust = json.dumps(role.get("AssumeRolePolicyDocument", {}))
            if not any(service in trust for service in COMPONENT_SERVICES):
                continue
            name = role["RoleName"]
            policies: dict[str, Any] = {}
            for policy_name in iam.list_role_policies(RoleName=name)["PolicyNames"]:
                document = iam.get_role_policy(RoleName=name, PolicyName=policy_name)[
                    "PolicyDocument"
                ]
                policies[policy_name] = document
            for attached in iam.list_attached_role_policies(RoleName=name)["AttachedPolicies"]:
                meta = iam.get_policy(PolicyArn=attached["PolicyArn"])["Policy"]
                version = iam.get_policy_version(
                    PolicyArn=attached["PolicyArn"], VersionId=meta["DefaultVersionId"]
                )["PolicyVersion"]
                policies[attached["PolicyName"]] = version["Document"]
            roles.append(Role(name, role["Arn"], policies))
    return sorted(roles, key=lambda r: r.name)


def recorded_calls(endpoint_url: str) -> list[dict[str, Any]]:
    from inferstack.local.emulator import http_json  # noqa: PLC0415

    return list(http_json(endpoint_url + CALLS_PATH))  # type: ignore[arg-type]


def report_for_emulator(endpoint_url: str, region: str, out_dir: Path | None) -> dict[str, Any]:
    from inferstack.local.discovery import client  # noqa: PLC0415

    calls = recorded_calls(endpoint_url)
    roles = component_roles(client("iam", endpoint_url, region))
    report = build_report(roles, calls, load_reasons())
    if out_dir is not None:
        out_dir.mkdir(parents=True, exist_ok=True)
        (out_dir / "calls.json").write_text(json.dumps(calls, indent=1))
        (out_dir / "report.json").write_text(json.dumps(report, indent=2))
        (out_dir / "report.md").write_text(render_markdown(report))
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m inferstack.local.leastpriv", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--emulator-url", help="default: the stack `inferstack local up` started")
    parser.add_argument("--region", default=None)
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "build" / "leastpriv")
    args = parser.parse_args(argv)
    url, region = args.emulator_url, args.region
    if url is None:
        endpoints = json.loads((REPO_ROOT / "build" / "local" / "endpoints.json").read_text())
        url, region = endpoints["emulator_url"], region or endpoints["region"]
    report = report_for_emulator(url, region or "us-east-1", args.out)
    print(render_markdown(report))
    print(f"written: {args.out}/report.md, report.json", file=sys.stderr)
    return 0 if report["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
