"""The local runner's weighted aliases: each published version in its own execution
environment with its own configuration, an alias' invocations drawn by its weights.

Against a real moto server with a stand-in function (tests/unit/local_standins), in the venv
mode; the project's stack with a canary is tests/integration/test_canary_local.py.
"""

from __future__ import annotations

import io
import json
import math
import os
import zipfile
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from inferstack.local.discovery import Alias, client, discover
from inferstack.local.emulator import Emulator
from inferstack.local.runner import Runner, pick_version

REGION = "eu-west-1"
STANDINS = Path(__file__).parent / "local_standins"
FUNCTION = "standin-canary"


def test_pick_version_gives_each_additional_version_its_weight() -> None:
    alias = Alias("live", "1", (("2", 0.3),))
    assert pick_version(alias, 0.0) == "2"
    assert pick_version(alias, 0.2999) == "2"
    assert pick_version(alias, 0.3) == "1"
    assert pick_version(alias, 0.9999) == "1"
    assert pick_version(Alias("live", "4"), 0.0) == "4"  # no routing configuration
    assert pick_version(Alias("live", "1", (("2", 0.0),)), 0.0) == "1"  # weight 0: rollback


def _zip_bytes() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.write(STANDINS / "standin_handler.py", "standin_handler.py")
    return buf.getvalue()


@pytest.fixture(scope="module")
def emulator() -> Iterator[Emulator]:
    with Emulator() as emu:
        yield emu


@pytest.fixture(scope="module")
def canary(emulator: Emulator) -> dict[str, Any]:
    """Version 1 (primary) and 2 (candidate), each with its own STANDIN_SETTING; the alias
    `live` on 1 with 0.3 of its invocations on 2, as modules/realtime_api deploys a canary."""
    iam, lam = client("iam", emulator.url, REGION), client("lambda", emulator.url, REGION)
    role = iam.create_role(RoleName="standin-canary", AssumeRolePolicyDocument="{}")["Role"]
    lam.create_function(
        FunctionName=FUNCTION,
        Runtime="python3.13",
        Role=role["Arn"],
        Handler="standin_handler.lambda_handler",
        Code={"ZipFile": _zip_bytes()},
        Timeout=30,
        Environment={"Variables": {"STANDIN_SETTING": "primary"}},
    )
    primary = lam.publish_version(FunctionName=FUNCTION)["Version"]
    lam.update_function_configuration(
        FunctionName=FUNCTION, Environment={"Variables": {"STANDIN_SETTING": "candidate"}}
    )
    candidate = lam.publish_version(FunctionName=FUNCTION)["Version"]
    lam.create_alias(
        FunctionName=FUNCTION,
        Name="live",
        FunctionVersion=primary,
        RoutingConfig={"AdditionalVersionWeights": {candidate: 0.3}},
    )
    return {"primary": primary, "candidate": candidate, "lam": lam}


@pytest.fixture(scope="module")
def runner(
    emulator: Emulator, canary: dict[str, Any], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Runner]:
    old = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(STANDINS), old]))
    run = Runner(emulator.url, REGION, tmp_path_factory.mktemp("state"), execution="venv")
    run.start()
    yield run
    run.stop()
    if old is None:
        os.environ.pop("PYTHONPATH", None)
    else:
        os.environ["PYTHONPATH"] = old


def test_discovery_reads_the_alias_weights_and_each_version(
    emulator: Emulator, canary: dict[str, Any]
) -> None:
    stack = discover(emulator.url, REGION)
    alias = stack.aliases[FUNCTION]["live"]
    assert alias.function_version == canary["primary"]
    assert alias.weights == ((canary["candidate"], 0.3),)
    versions = stack.versions[FUNCTION]
    assert versions[canary["primary"]].environment["STANDIN_SETTING"] == "primary"
    assert versions[canary["candidate"]].environment["STANDIN_SETTING"] == "candidate"
    assert versions[canary["candidate"]].version == canary["candidate"]
    assert stack.functions[FUNCTION].version == "$LATEST"


def _event() -> dict[str, Any]:
    return {"path": "/x", "resource": "/x", "body": None, "isBase64Encoded": False,
            "queryStringParameters": None,
            "requestContext": {"identity": {"apiKey": None}, "stage": "v1"}}  # fmt: skip


def test_the_alias_splits_by_weight_each_version_in_its_own_environment(
    runner: Runner, canary: dict[str, Any]
) -> None:
    n, weight = 400, 0.3
    served: Counter[tuple[str, str]] = Counter()
    pids: dict[str, set[int]] = {}
    for i in range(n):
        answer = runner.invoke(FUNCTION, "live", _event(), f"req-{i}")
        body = json.loads(answer["body"])
        env = body["env"]
        served[(env["AWS_LAMBDA_FUNCTION_VERSION"], env["STANDIN_SETTING"])] += 1
        pids.setdefault(env["AWS_LAMBDA_FUNCTION_VERSION"], set()).add(body["init_pid"])
    primary, candidate = canary["primary"], canary["candidate"]
    # each version answers with its own configuration, nothing else is served
    assert set(served) == {(primary, "primary"), (candidate, "candidate")}
    # binomial 99.9% interval for the candidate's share
    sd = math.sqrt(n * weight * (1 - weight))
    assert abs(served[(candidate, "candidate")] - n * weight) <= 3.3 * sd
    assert len(pids[primary]) == len(pids[candidate]) == 1
    assert pids[primary] != pids[candidate]
    # unqualified invocations keep running $LATEST
    latest = json.loads(runner.invoke(FUNCTION, None, _event(), "x")["body"])
    assert latest["env"]["AWS_LAMBDA_FUNCTION_VERSION"] == "$LATEST"


def test_a_changed_weight_is_followed_without_a_restart(
    runner: Runner, canary: dict[str, Any]
) -> None:
    lam = canary["lam"]
    lam.update_alias(
        FunctionName=FUNCTION, Name="live", FunctionVersion=canary["primary"],
        RoutingConfig={"AdditionalVersionWeights": {}},
    )  # fmt: skip
    runner.refresh_aliases()
    versions = {runner.resolve(FUNCTION, "live") for _ in range(200)}
    assert versions == {canary["primary"]}
    lam.update_alias(FunctionName=FUNCTION, Name="live", FunctionVersion=canary["candidate"])
    runner.refresh_aliases()
    assert {runner.resolve(FUNCTION, "live") for _ in range(50)} == {canary["candidate"]}
