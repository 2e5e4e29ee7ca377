"""``inferstack model rollout status``: the canary rollout of a model, read from the account.

What it reads (read-only): the predict function's ``live`` alias (its version and the
``RoutingConfig`` weights, ``lambda:GetAlias``), each version's ``MODEL_URI`` and
``MODEL_SHA256`` and those of ``$LATEST`` (``lambda:GetFunctionConfiguration``; during a
canary ``$LATEST`` carries the candidate, see modules/realtime_api/README.md), and the state
of the candidate's alarms (``cloudwatch:DescribeAlarms``).

The names are the stack's: ``<name_prefix>-predict`` (modules/realtime_api) and
``<name_prefix>-canary-<purpose>`` (modules/observability/canary.tf);
tests/unit/test_rollout_cli.py checks them against the Terraform files.

Promote and rollback are tfvars changes applied with Terraform (README, "Rolling out a new
model"); the command prints the next step for the state it finds.

Exit status: 0 no candidate alarm is in ALARM; 1 a candidate alarm is in ALARM (roll back);
2 the settings, the credentials or the stack cannot be read (one line, no traceback).
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

EXIT_OK = 0
EXIT_ALARM = 1
EXIT_USAGE = 2

ALIAS = "live"
# Purpose -> name suffix of the candidate's alarms (modules/observability/canary.tf).
CANARY_ALARM_SUFFIXES = {
    "error_rate": "canary-error-rate",
    "p99_latency": "canary-p99-latency",
    "init_failures": "canary-init-failures",
}
README_SECTION = "README.md, 'Rolling out a new model'"

NO_CANARY = "no_canary"
CANARY = "canary"
PAUSED = "canary_weight_0"


def canary_alarm_names(name_prefix: str) -> dict[str, str]:
    """The candidate's alarm names by purpose, as modules/observability names them."""
    return {purpose: f"{name_prefix}-{suffix}" for purpose, suffix in CANARY_ALARM_SUFFIXES.items()}


def predict_function_name(name_prefix: str) -> str:
    from inferstack.aws.settings import StackSettings  # noqa: PLC0415

    return StackSettings(name_prefix=name_prefix).predict_function_name


@dataclass
class Version:
    version: str
    weight: float
    model_uri: str | None
    model_sha256: str | None

    @property
    def model(self) -> tuple[str | None, str | None]:
        return self.model_uri, self.model_sha256


@dataclass
class Alarm:
    purpose: str
    name: str
    state: str  # OK | ALARM | INSUFFICIENT_DATA | MISSING (not found)
    reason: str = ""
    since: str | None = None


@dataclass
class RolloutStatus:
    function: str
    alias: str
    state: str
    primary: Version
    candidate: Version | None
    alarms: list[Alarm]
    warnings: list[str] = field(default_factory=list)

    @property
    def firing(self) -> list[Alarm]:
        return [a for a in self.alarms if a.state == "ALARM"]

    @property
    def healthy(self) -> bool:
        return not self.firing

    @property
    def next_step(self) -> str:
        if self.firing:
            return (
                "roll back: set canary.weight = 0 in your tfvars and terraform apply (the "
                "primary serves alone at once), then remove canary and apply again"
            )
        if self.state == CANARY:
            return (
                "watch the alarms; raise canary.weight (below 1) and apply, or promote: "
                "model_bundle_dir = the candidate's folder and remove canary, in one apply; "
                "roll back with canary.weight = 0"
            )
        if self.state == PAUSED:
            return (
                "the candidate gets no traffic (canary.weight = 0): remove canary and apply to "
                "end the rollback, or raise canary.weight to resume"
            )
        return (
            'start a canary: canary = { bundle_dir = "<the new bundle>", weight = 0.1 } in '
            "your tfvars, then terraform apply"
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "function": self.function,
            "alias": self.alias,
            "state": self.state,
            "healthy": self.healthy,
            "primary": asdict(self.primary),
            "candidate": None if self.candidate is None else asdict(self.candidate),
            "alarms": [asdict(a) for a in self.alarms],
            "warnings": self.warnings,
            "next": self.next_step,
            "procedure": README_SECTION,
        }


def _model_of(lambda_client: Any, function: str, qualifier: str) -> tuple[str | None, str | None]:
    config = lambda_client.get_function_configuration(FunctionName=function, Qualifier=qualifier)
    env = (config.get("Environment") or {}).get("Variables") or {}
    sha = env.get("MODEL_SHA256")
    return env.get("MODEL_URI"), sha.lower() if sha else None


def _alarms(cloudwatch: Any, names: dict[str, str]) -> list[Alarm]:
    found: dict[str, dict[str, Any]] = {}
    paginator = cloudwatch.get_paginator("describe_alarms")
    for page in paginator.paginate(AlarmNames=list(names.values())):
        for alarm in page.get("MetricAlarms", []) + page.get("CompositeAlarms", []):
            found[alarm["AlarmName"]] = alarm
    alarms = []
    for purpose, name in names.items():
        alarm = found.get(name)
        if alarm is None:
            alarms.append(Alarm(purpose, name, "MISSING"))
            continue
        since = alarm.get("StateUpdatedTimestamp")
        alarms.append(
            Alarm(
                purpose,
                name,
                str(alarm.get("StateValue", "INSUFFICIENT_DATA")),
                str(alarm.get("StateReason", "")),
                since.isoformat() if hasattr(since, "isoformat") else since,
            )
        )
    return alarms


def read_status(
    lambda_client: Any, cloudwatch: Any, *, function: str, name_prefix: str
) -> RolloutStatus:
    """The rollout as the account has it (botocore errors propagate)."""
    alias = lambda_client.get_alias(FunctionName=function, Name=ALIAS)
    weights = {
        str(v): float(w)
        for v, w in (
            (alias.get("RoutingConfig") or {}).get("AdditionalVersionWeights") or {}
        ).items()
    }
    primary_version = str(alias["FunctionVersion"])
    primary = Version(
        primary_version,
        round(1.0 - sum(weights.values()), 6),
        *_model_of(lambda_client, function, primary_version),
    )
    candidate: Version | None = None
    warnings: list[str] = []
    if weights:
        version, weight = max(weights.items(), key=lambda item: item[1])
        candidate = Version(version, weight, *_model_of(lambda_client, function, version))
        state = CANARY
    else:
        # Weight 0 (a rollback): the alias routes nothing, but $LATEST still carries the
        # candidate's model while canary is set.
        latest = _model_of(lambda_client, function, "$LATEST")
        if latest != primary.model:
            candidate = Version("$LATEST", 0.0, *latest)
            state = PAUSED
        else:
            state = NO_CANARY
    alarms = _alarms(cloudwatch, canary_alarm_names(name_prefix))
    missing = [a.name for a in alarms if a.state == "MISSING"]
    if state != NO_CANARY and missing:
        warnings.append(
            f"candidate alarms not found: {', '.join(missing)} (observability create_alarms "
            "off, or another --name-prefix): the candidate's health is not known"
        )
    if state == NO_CANARY:
        # Without a canary the alarms do not exist; one left over says nothing about live.
        alarms = [a for a in alarms if a.state != "MISSING"]
    return RolloutStatus(function, ALIAS, state, primary, candidate, alarms, warnings)


def _pct(weight: float) -> str:
    return f"{weight * 100:.4g}%"


def render_table(status: RolloutStatus) -> str:
    lines = [f"function {status.function}, alias {status.alias}"]
    rows = [("", "version", "traffic", "model_uri", "sha256")]
    for role, version in (("primary", status.primary), ("candidate", status.candidate)):
        if version is not None:
            rows.append(
                (
                    role,
                    version.version,
                    _pct(version.weight),
                    version.model_uri or "-",
                    (version.model_sha256 or "-")[:12],
                )
            )
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    for row in rows:
        cells = [f"{row[i]:<{widths[i]}}" for i in range(4)]
        lines.append("  ".join([*cells, row[4]]).rstrip())
    if status.alarms:
        width = max(len(a.name) for a in status.alarms)
        lines.append("")
        lines.append(f"{'candidate alarm':<{width}}  state")
        for alarm in status.alarms:
            since = f" since {alarm.since}" if alarm.since and alarm.state == "ALARM" else ""
            lines.append(f"{alarm.name:<{width}}  {alarm.state}{since}")
    lines.append("")
    if status.state == NO_CANARY:
        lines.append(f"status: no canary: {status.alias} serves version {status.primary.version}")
    elif status.state == PAUSED:
        lines.append("status: canary at weight 0 (the candidate is configured, gets no traffic)")
    else:
        assert status.candidate is not None
        lines.append(
            f"status: canary, {_pct(status.candidate.weight)} of {status.alias} to version "
            f"{status.candidate.version}"
        )
    if status.firing:
        names = ", ".join(a.name for a in status.firing)
        lines.append(f"UNHEALTHY: candidate alarm in ALARM: {names}")
    for warning in status.warnings:
        lines.append(f"warning: {warning}")
    lines.append(f"next: {status.next_step} ({README_SECTION})")
    return "\n".join(lines)


# ----------------------------------------------------------------------------- command


def _error(message: str) -> int:
    print(f"inferstack: error: {message}", file=sys.stderr)
    return EXIT_USAGE


def _cmd_status(args: argparse.Namespace) -> int:
    import boto3  # noqa: PLC0415  (lazy: --help stays instant)
    from botocore.exceptions import BotoCoreError, ClientError  # noqa: PLC0415

    from inferstack.aws.settings import SettingsError, StackSettings  # noqa: PLC0415
    from inferstack.s3 import endpoint_url  # noqa: PLC0415

    try:
        settings = StackSettings.load(args.tfvars, {"name_prefix": args.name_prefix})
    except SettingsError as exc:
        return _error(str(exc))
    # Without --region and tfvars: the usual chain (AWS_REGION, the profile), not a default.
    region = args.region or (settings.region if args.tfvars else None)
    function = args.function_name or settings.predict_function_name
    try:
        session = boto3.Session(profile_name=args.profile, region_name=region)
        lambda_client = session.client("lambda", endpoint_url=endpoint_url("lambda"))
        cloudwatch = session.client("cloudwatch", endpoint_url=endpoint_url("cloudwatch"))
        status = read_status(
            lambda_client, cloudwatch, function=function, name_prefix=settings.name_prefix
        )
    except ClientError as exc:
        error = exc.response.get("Error", {})
        hint = ""
        if error.get("Code") == "ResourceNotFoundException":
            hint = " (is the stack deployed in this account and region, with this --name-prefix?)"
        return _error(f"AWS: {error.get('Code')}: {error.get('Message', exc)}{hint}")
    except BotoCoreError as exc:  # no credentials, no region, unknown profile, endpoint down
        return _error(f"AWS: {exc}")
    if args.json:
        print(json.dumps(status.to_dict(), indent=1, sort_keys=True))
    else:
        print(render_table(status))
    if status.firing:
        names = ", ".join(a.name for a in status.firing)
        print(
            f"inferstack: candidate alarm in ALARM ({names}): roll back (canary.weight = 0)",
            file=sys.stderr,
        )
        return EXIT_ALARM
    return EXIT_OK


def add_rollout_commands(model_commands: Any) -> None:
    """``model rollout status`` (``model_commands``: the ``model`` group's subparsers)."""
    rollout = model_commands.add_parser(
        "rollout",
        help="the canary rollout of a new model (promote and roll back are tfvars changes)",
        description="The canary rollout of a model on the predict function's live alias. "
        "Start: canary = { bundle_dir, weight } in your tfvars and terraform apply. Promote: "
        "model_bundle_dir = the candidate's folder and remove canary, in one apply. Roll "
        "back: canary.weight = 0 and apply, then remove canary. Details: " + README_SECTION,
    )
    commands = rollout.add_subparsers(dest="rollout_command", metavar="COMMAND", required=True)
    status = commands.add_parser(
        "status",
        help="the live alias' split, each version's model, the candidate's alarms",
        description="Read (read-only) the live alias of <name_prefix>-predict: the version it "
        "serves and the weight it sends to the candidate, each version's MODEL_URI and "
        "MODEL_SHA256, and the state of the candidate's alarms (<name_prefix>-canary-"
        "error-rate, -canary-p99-latency, -canary-init-failures); print the next step. Exit "
        "status 0 when no candidate alarm is in ALARM, 1 when one is (roll back), 2 when the "
        "settings, credentials or stack cannot be read.",
    )
    status.add_argument(
        "--tfvars",
        action="append",
        type=Path,
        default=[],
        metavar="FILE",
        help="the -var-file given to terraform apply, for name_prefix and region (repeatable)",
    )
    status.add_argument("--name-prefix", help="name_prefix of the stack (default: inferstack)")
    status.add_argument("--region", help="AWS region (default: the tfvars', else AWS_REGION)")
    status.add_argument("--profile", help="AWS profile (default: the usual credential chain)")
    status.add_argument(
        "--function-name", help="the predict function (default: <name_prefix>-predict)"
    )
    status.add_argument("--json", action="store_true", help="JSON instead of a table")
    status.set_defaults(func=_cmd_status)
