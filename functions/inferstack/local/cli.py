"""`inferstack local up|down|status|demo|leastpriv` (registered by inferstack.cli)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any


def _cmd_up(args: argparse.Namespace) -> int:
    from inferstack.local.stack import up  # noqa: PLC0415 - boto3 only when used

    endpoints = up(model_dir=args.model)
    print(json.dumps(endpoints, indent=2))
    return 0


def _cmd_down(args: argparse.Namespace) -> int:
    del args
    from inferstack.local.stack import down  # noqa: PLC0415

    down()
    return 0


def _cmd_status(args: argparse.Namespace) -> int:
    del args
    from inferstack.local.stack import status  # noqa: PLC0415

    result = status()
    print(json.dumps(result, indent=2))
    return 0 if result["up"] else 3


def _cmd_demo(args: argparse.Namespace) -> int:
    from inferstack.local.demo import run_demo  # noqa: PLC0415

    return run_demo(images_dir=args.images, model_dir=args.model, keep=args.keep)


def _cmd_leastpriv(args: argparse.Namespace) -> int:
    from inferstack.local.leastpriv import main  # noqa: PLC0415

    return main(["--out", str(args.out)] if args.out else [])


def add_local_commands(subparsers: Any) -> None:
    local = subparsers.add_parser(
        "local",
        help="the whole stack on this machine: AWS emulator + local runner, no Docker",
        description="Run the stack against a local AWS emulator (moto server); the function "
        "code runs in local processes, the way AWS would run it.",
    )
    commands = local.add_subparsers(dest="local_command", metavar="COMMAND", required=True)
    up = commands.add_parser("up", help="build, start the emulator, apply, start the runner")
    up.add_argument("--model", type=Path, help="model bundle folder to deploy")
    up.set_defaults(func=_cmd_up)
    down = commands.add_parser("down", help="stop every local process and remove build/local")
    down.set_defaults(func=_cmd_down)
    status = commands.add_parser("status", help="what runs locally and where (JSON)")
    status.set_defaults(func=_cmd_status)
    demo = commands.add_parser("demo", help="photos through /predict and the batch path")
    demo.add_argument("--images", type=Path, help="folder of extra images to send")
    demo.add_argument("--model", type=Path, help="model bundle folder to deploy")
    demo.add_argument("--keep", action="store_true", help="leave the stack running afterwards")
    demo.set_defaults(func=_cmd_demo)
    leastpriv = commands.add_parser(
        "leastpriv",
        help="least-privilege report of the running stack: each component's calls against "
        "its role's policies (exit 1: a call outside them or an unexplained grant)",
    )
    leastpriv.add_argument("--out", type=Path, help="report folder (default build/leastpriv)")
    leastpriv.set_defaults(func=_cmd_leastpriv)
