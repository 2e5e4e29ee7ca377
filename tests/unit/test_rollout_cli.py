"""``inferstack model rollout status`` against moto, and its names against the Terraform files."""

from __future__ import annotations

import io
import json
import re
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import hcl2
import pytest
from inferstack import cli
from inferstack.aws import rollout
from moto import mock_aws

REPO_ROOT = Path(__file__).resolve().parents[2]
REGION = "eu-west-1"
PREFIX = "shop"
FUNCTION = f"{PREFIX}-predict"
PRIMARY_URI = "s3://models/models/resnet50/1/"
CANDIDATE_URI = "s3://models/models/resnet50/2/"
PRIMARY_SHA = "a" * 64
CANDIDATE_SHA = "b" * 64


def _zip() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("handler.py", "def handler(event, context):\n    return {}\n")
    return buf.getvalue()


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Any]]:
    for name in ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_LAMBDA", "AWS_PROFILE", "AWS_REGION"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    with mock_aws():
        iam = boto3.client("iam", region_name=REGION)
        role = iam.create_role(
            RoleName="predict",
            AssumeRolePolicyDocument=json.dumps(
                {
                    "Version": "2012-10-17",
                    "Statement": [
                        {
                            "Effect": "Allow",
                            "Principal": {"Service": "lambda.amazonaws.com"},
                            "Action": "sts:AssumeRole",
                        }
                    ],
                }
            ),
        )["Role"]["Arn"]
        yield {
            "lambda": boto3.client("lambda", region_name=REGION),
            "cloudwatch": boto3.client("cloudwatch", region_name=REGION),
            "role": role,
        }


def _env(uri: str, sha: str) -> dict[str, Any]:
    return {"Variables": {"MODEL_URI": uri, "MODEL_SHA256": sha, "OTHER": "x"}}


def deploy_primary(aws: dict[str, Any]) -> str:
    """The stack without a canary: one published version behind live."""
    lam = aws["lambda"]
    lam.create_function(
        FunctionName=FUNCTION,
        Runtime="python3.13",
        Role=aws["role"],
        Handler="handler.handler",
        Code={"ZipFile": _zip()},
        Environment=_env(PRIMARY_URI, PRIMARY_SHA),
    )
    version = lam.publish_version(FunctionName=FUNCTION)["Version"]
    lam.create_alias(FunctionName=FUNCTION, Name="live", FunctionVersion=version)
    return version


def start_canary(aws: dict[str, Any], weight: float) -> tuple[str, str]:
    """What modules/realtime_api does: $LATEST carries the candidate, published, weighted."""
    lam = aws["lambda"]
    primary = lam.get_alias(FunctionName=FUNCTION, Name="live")["FunctionVersion"]
    lam.update_function_configuration(
        FunctionName=FUNCTION, Environment=_env(CANDIDATE_URI, CANDIDATE_SHA)
    )
    candidate = lam.publish_version(FunctionName=FUNCTION)["Version"]
    routing = {"AdditionalVersionWeights": {candidate: weight}} if weight > 0 else {}
    lam.update_alias(
        FunctionName=FUNCTION, Name="live", FunctionVersion=primary, RoutingConfig=routing
    )
    for name in rollout.canary_alarm_names(PREFIX).values():
        aws["cloudwatch"].put_metric_alarm(
            AlarmName=name,
            MetricName="Errors",
            Namespace="Inferstack",
            Statistic="Sum",
            Period=60,
            EvaluationPeriods=1,
            Threshold=0,
            ComparisonOperator="GreaterThanThreshold",
        )
        aws["cloudwatch"].set_alarm_state(AlarmName=name, StateValue="OK", StateReason="fine")
    return primary, candidate


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = cli.main(["model", "rollout", "status", "--name-prefix", PREFIX, *argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_no_canary_says_so(aws: dict[str, Any], capsys: pytest.CaptureFixture[str]) -> None:
    version = deploy_primary(aws)
    code, out, _ = run(capsys, "--json")
    doc = json.loads(out)
    assert code == 0
    assert doc["state"] == "no_canary"
    assert doc["candidate"] is None
    assert doc["primary"] == {
        "version": version,
        "weight": 1.0,
        "model_uri": PRIMARY_URI,
        "model_sha256": PRIMARY_SHA,
    }
    assert doc["alarms"] == []
    assert doc["healthy"] is True
    assert "start a canary" in doc["next"]
    code, out, _ = run(capsys)
    assert code == 0
    assert f"status: no canary: live serves version {version}" in out
    assert "next: start a canary: canary = { bundle_dir" in out


def test_canary_split_models_and_alarms(
    aws: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    deploy_primary(aws)
    primary, candidate = start_canary(aws, 0.3)
    code, out, err = run(capsys, "--json")
    doc = json.loads(out)
    assert code == 0, err
    assert doc["state"] == "canary"
    assert doc["primary"]["version"] == primary
    assert doc["primary"]["weight"] == pytest.approx(0.7)
    assert doc["primary"]["model_uri"] == PRIMARY_URI
    assert doc["candidate"] == {
        "version": candidate,
        "weight": 0.3,
        "model_uri": CANDIDATE_URI,
        "model_sha256": CANDIDATE_SHA,
    }
    assert {a["purpose"]: a["state"] for a in doc["alarms"]} == {
        "error_rate": "OK",
        "p99_latency": "OK",
        "init_failures": "OK",
    }
    assert "promote" in doc["next"]
    code, out, _ = run(capsys)
    assert code == 0
    assert f"candidate  {candidate}" in out
    assert "30%" in out
    assert f"{PREFIX}-canary-init-failures  OK" in out
    assert f"status: canary, 30% of live to version {candidate}" in out


def test_a_candidate_alarm_in_alarm_exits_non_zero(
    aws: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    deploy_primary(aws)
    start_canary(aws, 0.1)
    firing = rollout.canary_alarm_names(PREFIX)["init_failures"]
    aws["cloudwatch"].set_alarm_state(
        AlarmName=firing, StateValue="ALARM", StateReason="candidate answered only errors"
    )
    code, out, err = run(capsys)
    assert code == rollout.EXIT_ALARM == 1
    assert f"UNHEALTHY: candidate alarm in ALARM: {firing}" in out
    assert "next: roll back: set canary.weight = 0" in out
    assert f"candidate alarm in ALARM ({firing})" in err
    code, out, _ = run(capsys, "--json")
    doc = json.loads(out)
    assert code == 1
    assert doc["healthy"] is False
    alarm = next(a for a in doc["alarms"] if a["name"] == firing)
    assert (alarm["state"], alarm["reason"]) == ("ALARM", "candidate answered only errors")


def test_weight_zero_is_a_paused_canary(
    aws: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    deploy_primary(aws)
    start_canary(aws, 0)
    code, out, _ = run(capsys, "--json")
    doc = json.loads(out)
    assert code == 0
    assert doc["state"] == "canary_weight_0"
    assert doc["primary"]["weight"] == 1.0
    assert doc["candidate"]["weight"] == 0.0
    assert doc["candidate"]["model_uri"] == CANDIDATE_URI
    assert "remove canary" in doc["next"]


def test_canary_without_alarms_warns(
    aws: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    deploy_primary(aws)
    start_canary(aws, 0.2)
    aws["cloudwatch"].delete_alarms(AlarmNames=list(rollout.canary_alarm_names(PREFIX).values()))
    code, out, _ = run(capsys)
    assert code == 0
    assert "warning: candidate alarms not found" in out
    assert "MISSING" in out


def test_missing_stack_is_an_error_not_a_traceback(
    aws: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run(capsys)
    assert code == 2
    assert err.startswith("inferstack: error: AWS: ResourceNotFoundException")
    assert "is the stack deployed" in err
    assert "Traceback" not in err


def test_no_credentials_is_an_error_not_a_traceback(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    code, _, err = run(capsys)
    assert code == 2
    assert err.startswith("inferstack: error: AWS:")
    assert "Traceback" not in err


def test_tfvars_give_the_name_prefix_and_region(
    aws: dict[str, Any], capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    deploy_primary(aws)
    tfvars = tmp_path / "prod.tfvars"
    tfvars.write_text(f'name_prefix = "{PREFIX}"\nregion = "{REGION}"\n', encoding="utf-8")
    code = cli.main(["model", "rollout", "status", "--tfvars", str(tfvars), "--json"])
    assert code == 0
    assert json.loads(capsys.readouterr().out)["function"] == FUNCTION
    # Another region has no such stack.
    tfvars.write_text(f'name_prefix = "{PREFIX}"\nregion = "us-west-2"\n', encoding="utf-8")
    assert cli.main(["model", "rollout", "status", "--tfvars", str(tfvars)]) == 2
    capsys.readouterr()


# ----------------------------------------------------------------- names agree with Terraform


def _hcl(relative: str) -> dict[str, Any]:
    from hcl2.utils import SerializationOptions  # noqa: PLC0415

    options = SerializationOptions(
        with_comments=False, strip_string_quotes=True, explicit_blocks=False
    )
    text = (REPO_ROOT / relative).read_text(encoding="utf-8")
    return hcl2.loads(text, serialization_options=options)


def test_alarm_names_are_the_observability_modules() -> None:
    alarms = {
        name: body
        for block in _hcl("modules/observability/canary.tf")["resource"]
        for kind, named in block.items()
        if kind == "aws_cloudwatch_metric_alarm"
        for name, body in named.items()
    }
    outputs = (REPO_ROOT / "modules/observability/outputs.tf").read_text(encoding="utf-8")
    by_purpose = dict(
        re.findall(
            r'for a in aws_cloudwatch_metric_alarm\.(\w+) : "(\w+)" => a\.alarm_name', outputs
        )
    )
    assert {purpose: res for res, purpose in by_purpose.items()} == {
        p: f"canary_{p}" for p in rollout.CANARY_ALARM_SUFFIXES
    }
    expected = rollout.canary_alarm_names("${var.name_prefix}")
    for resource, purpose in by_purpose.items():
        assert alarms[resource]["alarm_name"] == expected[purpose]


def test_the_root_names_the_function_and_alarms_with_its_name_prefix() -> None:
    modules = {
        name: body for block in _hcl("terraform/main.tf")["module"] for name, body in block.items()
    }
    assert modules["observability"]["name_prefix"] == "${var.name_prefix}"
    assert modules["realtime_api"]["name_prefix"] == "${var.name_prefix}"
    realtime = _hcl("modules/realtime_api/main.tf")["locals"]
    function_name = next(b["function_name"] for b in realtime if "function_name" in b)
    assert rollout.predict_function_name("${var.name_prefix}") == function_name
    lambda_tf = (REPO_ROOT / "modules/realtime_api/lambda.tf").read_text(encoding="utf-8")
    alias = re.search(r'resource "aws_lambda_alias" "live" \{\s*name\s*=\s*"(\w+)"', lambda_tf)
    assert alias is not None
    assert alias.group(1) == rollout.ALIAS
