"""LocalStack's free edition without Docker: model store, network and observability modules.

Starts localstack-core in its own virtualenv (build/tools/localstack, installed on first
use), applies tests/integration/localstack_stack and checks the result through the APIs.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from inferstack.local.localstack import LocalStack, ensure_venv
from inferstack.local.process import pid_alive

pytestmark = [pytest.mark.integration, pytest.mark.localstack]

REPO = Path(__file__).resolve().parents[2]
STACK = Path(__file__).parent / "localstack_stack"
MODEL = REPO / "build" / "model" / "resnet50-int8"


@pytest.fixture(scope="module")
def localstack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    if shutil.which("terraform") is None:
        pytest.skip("terraform is not installed")
    try:
        python = ensure_venv(REPO / "build" / "tools" / "localstack")
    except (subprocess.CalledProcessError, RuntimeError) as exc:
        pytest.skip(f"localstack-core could not be installed: {exc}")
    with LocalStack(python, work_dir=tmp_path_factory.mktemp("localstack")) as ls:
        yield ls
    assert ls.process is None


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The built bundle when there is one, else a small stand-in bundle (bytes only)."""
    if (MODEL / "model.json").is_file():
        return MODEL
    folder = tmp_path_factory.mktemp("standin-bundle")
    tflite = b"stand-in tflite bytes"
    (folder / "model.tflite").write_bytes(tflite)
    (folder / "labels.txt").write_text("a\nb\n")
    digest = hashlib.sha256(tflite).hexdigest()
    meta = {"schema_version": 1, "name": "standin", "version": "1", "sha256": digest}
    (folder / "model.json").write_text(json.dumps(meta))
    return folder


def _terraform(work: Path, *args: str) -> str:
    env = dict(os.environ)
    env["TF_DATA_DIR"] = str(work / "tf-data")
    rc = REPO / "build" / "terraform" / "terraformrc"
    if "TF_CLI_CONFIG_FILE" not in env and rc.is_file():
        env["TF_CLI_CONFIG_FILE"] = str(rc)
    result = subprocess.run(
        ["terraform", f"-chdir={STACK}", *args],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result.stdout


@pytest.fixture(scope="module")
def applied(localstack: LocalStack, model_dir: Path, tmp_path_factory: pytest.TempPathFactory):
    work = tmp_path_factory.mktemp("ls-terraform")
    state = work / "terraform.tfstate"
    variables = [f"-var=endpoint_url={localstack.url}", f"-var=model_bundle_dir={model_dir}"]
    _terraform(work, "init", "-input=false", "-no-color")
    _terraform(work, "apply", "-auto-approve", "-input=false", "-no-color",
               f"-state={state}", *variables)  # fmt: skip
    raw = _terraform(work, "output", "-json", f"-state={state}")
    return {name: item["value"] for name, item in json.loads(raw).items()}


def _client(service: str, localstack: LocalStack) -> Any:
    return boto3.client(
        service,
        endpoint_url=localstack.url,
        region_name="us-east-1",
        aws_access_key_id="test",
        aws_secret_access_key="test",
    )


def test_model_object_is_kms_encrypted(localstack: LocalStack, applied: dict) -> None:
    s3 = _client("s3", localstack)
    key = applied["model_object_keys"]["model.tflite"]
    head = s3.head_object(Bucket=applied["model_bucket"], Key=key)
    assert head["ServerSideEncryption"] == "aws:kms"
    assert head["SSEKMSKeyId"].endswith(applied["kms_key_arn"].rsplit("/", 1)[-1])


def test_dashboard_exists(localstack: LocalStack, applied: dict) -> None:
    cloudwatch = _client("cloudwatch", localstack)
    dashboard = cloudwatch.get_dashboard(DashboardName=applied["dashboard_name"])
    assert json.loads(dashboard["DashboardBody"])["widgets"]


def test_network_exists(localstack: LocalStack, applied: dict) -> None:
    ec2 = _client("ec2", localstack)
    assert ec2.describe_vpcs(VpcIds=[applied["vpc_id"]])["Vpcs"]


def test_localstack_stops(localstack: LocalStack) -> None:
    assert localstack.process is not None
    pid = localstack.process.pid
    localstack.stop()
    assert not pid_alive(pid)
