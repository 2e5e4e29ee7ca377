"""``inferstack aws preflight`` (registered by inferstack.cli).

Exit status: 0 no check failed (WARNs allowed); 1 a check FAILed; 2 the settings or the
credentials cannot be used (one line on stderr, no traceback).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2


def _error(message: str) -> int:
    print(f"inferstack: error: {message}", file=sys.stderr)
    return EXIT_USAGE


def _cmd_preflight(args: argparse.Namespace) -> int:
    import boto3  # noqa: PLC0415  (lazy: --help stays instant)
    from botocore.exceptions import BotoCoreError  # noqa: PLC0415

    from inferstack.aws.preflight import PreflightError, SessionClients, run_preflight  # noqa: PLC0415
    from inferstack.aws.settings import SettingsError, StackSettings  # noqa: PLC0415

    overrides = {
        "region": args.region,
        "name_prefix": args.name_prefix,
        "architecture": args.architecture,
        "batch_max_vcpus": args.max_vcpus,
        "worker_image": args.worker_image,
    }
    try:
        settings = StackSettings.load(args.tfvars, overrides)
    except SettingsError as exc:
        return _error(str(exc))
    try:
        session = boto3.Session(profile_name=args.profile, region_name=settings.region)
        report = run_preflight(settings, SessionClients(session))
    except PreflightError as exc:
        return _error(str(exc))
    except BotoCoreError as exc:  # unknown profile, unreadable config, ...
        return _error(str(exc))
    print(report.to_json() if args.json else report.to_table())
    return EXIT_FAILED if report.failed else EXIT_OK


def add_aws_commands(subparsers: Any) -> None:
    aws = subparsers.add_parser(
        "aws",
        help="checks against a real AWS account (read-only)",
        description="Commands that read a real AWS account with your credentials.",
    )
    commands = aws.add_subparsers(dest="aws_command", metavar="COMMAND", required=True)
    preflight = commands.add_parser(
        "preflight",
        help="what a first terraform apply of the root stack would hit in this account",
        description="Read-only checks of the account against the root stack's settings "
        "(tfvars over the Terraform defaults, then these flags): Lambda concurrency and "
        "memory quotas, the Fargate vCPU quota, the API Gateway CloudWatch Logs role, the "
        "availability zones the endpoints need, the worker image's architecture in ECR. "
        "Exit status 1 when a check FAILs, 2 when the settings or credentials cannot be used.",
    )
    preflight.add_argument(
        "--tfvars",
        action="append",
        type=Path,
        default=[],
        metavar="FILE",
        help="the -var-file given to terraform apply (repeatable; later files win)",
    )
    preflight.add_argument("--region", help="AWS region (default: the tfvars' region)")
    preflight.add_argument("--profile", help="AWS profile (default: the usual credential chain)")
    preflight.add_argument("--name-prefix", help="name_prefix of the stack")
    preflight.add_argument("--architecture", choices=("arm64", "x86_64"))
    preflight.add_argument("--max-vcpus", type=int, metavar="N", help="batch.compute.max_vcpus")
    preflight.add_argument("--worker-image", metavar="URI", help="batch.worker_image")
    preflight.add_argument("--json", action="store_true", help="JSON instead of a table")
    preflight.set_defaults(func=_cmd_preflight)
