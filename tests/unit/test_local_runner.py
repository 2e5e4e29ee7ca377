"""The local runner against a real moto server, with stand-in resources created by boto3.

The deployed resources here are stand-ins (tests/unit/local_standins/standin_handler.py and
a Python one-liner as the Batch command), not the project's stack: this checks the runner's
machinery (API Gateway proxy events and API keys, execution environments, SQS event source
mappings with partial batch failures and redrive, Batch jobs with retries and truthful
states), in the fast venv mode (the installed package in this interpreter). Lambda-parity
execution (the default) is tested by tests/integration/test_lambda_parity.py, the real stack
by tests/integration/test_local_stack.py.
"""

from __future__ import annotations

import io
import json
import os
import sys
import time
import urllib.error
import urllib.request
import uuid
import zipfile
from pathlib import Path
from typing import Any

import pytest
from inferstack.local.apigw import is_binary, match_route, missing_parameters
from inferstack.local.batch import retry_decision, substitute_parameters
from inferstack.local.discovery import Route, client
from inferstack.local.emulator import Emulator, port_open
from inferstack.local.process import pid_alive
from inferstack.local.runner import Runner
from inferstack.local.sqs import succeeded_ids

REGION = "eu-west-1"
STANDINS = Path(__file__).parent / "local_standins"


def _zip_bytes() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.write(STANDINS / "standin_handler.py", "standin_handler.py")
    return buf.getvalue()


# ---------------------------------------------------------------------------- pure helpers


def test_routes_prefer_literal_paths() -> None:
    routes = (
        Route("a", "/{proxy+}", "ANY", False, "AWS_PROXY", "f", None),
        Route("b", "/predict", "POST", True, "AWS_PROXY", "f", None),
    )
    assert match_route(routes, "/predict", "POST")[0].resource_id == "b"  # type: ignore[index]
    route, params = match_route(routes, "/x/y", "GET")  # type: ignore[misc]
    assert (route.resource_id, params) == ("a", {"proxy": "x/y"})
    assert match_route(routes[1:], "/predict", "GET") is None


def test_required_request_parameters() -> None:
    route = Route("a", "/p", "POST", True, "AWS_PROXY", "f", None,
                  (("header", "Content-Type"), ("querystring", "top_k")))  # fmt: skip
    assert missing_parameters(route, {"Content-Type": "image/png"}, "top_k=2") == []
    assert missing_parameters(route, {}, "") == ["Content-Type", "top_k"]


def test_binary_media_types_match_wildcards() -> None:
    assert is_binary("image/jpeg", ("image/*",))
    assert is_binary("application/octet-stream; q=1", ("application/octet-stream",))
    assert is_binary("image/png", ("image~1png",))
    assert not is_binary("application/json", ("image/*", "application/octet-stream"))
    assert not is_binary("", ("*/*",))


def test_partial_batch_failures() -> None:
    records = [{"messageId": "a"}, {"messageId": "b"}]
    assert succeeded_ids(records, {"batchItemFailures": [{"itemIdentifier": "b"}]}, True) == {"a"}
    assert succeeded_ids(records, {"batchItemFailures": []}, True) == {"a", "b"}
    assert succeeded_ids(records, None, True) == {"a", "b"}
    # an identifier that is not in the batch fails the whole batch, as on AWS
    assert succeeded_ids(records, {"batchItemFailures": [{"itemIdentifier": "z"}]}, True) == set()
    assert succeeded_ids(records, {"batchItemFailures": [{"itemIdentifier": "b"}]}, False) == {
        "a",
        "b",
    }


def test_batch_parameters_and_retry_rules() -> None:
    assert substitute_parameters(["w", "--manifest", "Ref::manifest", "Ref::other"], {
        "manifest": "s3://b/m.json"
    }) == ["w", "--manifest", "s3://b/m.json", "Ref::other"]  # fmt: skip
    strategy = {
        "attempts": 3,
        "evaluateOnExit": [
            {"onExitCode": "65", "action": "EXIT"},
            {"onExitCode": "*", "action": "RETRY"},
        ],
    }
    assert retry_decision(75, "", strategy) is True
    assert retry_decision(65, "", strategy) is False
    assert retry_decision(1, "", {"attempts": 2}) is True


# ---------------------------------------------------------------------------- the stand-in stack


@pytest.fixture(scope="module")
def emulator() -> Any:
    with Emulator() as emu:
        yield emu


@pytest.fixture(scope="module")
def standin_stack(emulator: Emulator, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    url = emulator.url
    # A Lambda /tmp path: the runner maps it into the environment's private /tmp folder.
    out = f"/tmp/standin-{uuid.uuid4().hex}/sqs-records.jsonl"
    iam, lam, apigw = (client(s, url, REGION) for s in ("iam", "lambda", "apigateway"))
    sqs, batch, ec2 = (client(s, url, REGION) for s in ("sqs", "batch", "ec2"))
    role = iam.create_role(RoleName="standin", AssumeRolePolicyDocument="{}")["Role"]["Arn"]
    fn = lam.create_function(
        FunctionName="standin-fn",
        Runtime="python3.13",
        Role=role,
        Handler="standin_handler.lambda_handler",
        Code={"ZipFile": _zip_bytes()},
        Timeout=30,
        MemorySize=512,
        Environment={
            "Variables": {
                "STANDIN_SETTING": "from-emulator",
                "STANDIN_OUT": out,
                "MODEL_CACHE_DIR": "/tmp/model",
            }
        },
    )
    lam.create_alias(FunctionName="standin-fn", Name="live", FunctionVersion="$LATEST")
    slow = lam.create_function(
        FunctionName="standin-slow",
        Runtime="python3.13",
        Role=role,
        Handler="standin_handler.lambda_handler",
        Code={"ZipFile": _zip_bytes()},
        Timeout=1,
    )
    api = apigw.create_rest_api(name="standin-api", binaryMediaTypes=["image/*"])
    root = apigw.get_resources(restApiId=api["id"])["items"][0]["id"]
    uri = (
        f"arn:aws:apigateway:{REGION}:lambda:path/2015-03-31/functions/"
        f"{fn['FunctionArn']}:live/invocations"
    )
    slow_uri = uri.replace(f"{fn['FunctionArn']}:live", slow["FunctionArn"])
    for part, key_required in (
        ("predict", True),
        ("open", False),
        ("boom", False),
        ("sleep", False),
    ):
        res = apigw.create_resource(restApiId=api["id"], parentId=root, pathPart=part)
        apigw.put_method(
            restApiId=api["id"],
            resourceId=res["id"],
            httpMethod="POST",
            authorizationType="NONE",
            apiKeyRequired=key_required,
        )
        apigw.put_integration(
            restApiId=api["id"],
            resourceId=res["id"],
            httpMethod="POST",
            type="AWS_PROXY",
            integrationHttpMethod="POST",
            uri=slow_uri if part == "sleep" else uri,
        )
    apigw.create_deployment(restApiId=api["id"], stageName="v1")
    key = apigw.create_api_key(name="standin-key", enabled=True, value="standin-secret-key-0123")
    plan = apigw.create_usage_plan(name="p", apiStages=[{"apiId": api["id"], "stage": "v1"}])
    apigw.create_usage_plan_key(usagePlanId=plan["id"], keyId=key["id"], keyType="API_KEY")

    dlq = sqs.create_queue(QueueName="standin-dlq")["QueueUrl"]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    queue = sqs.create_queue(
        QueueName="standin-q",
        Attributes={
            "VisibilityTimeout": "1",
            "RedrivePolicy": json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": "2"}),
        },
    )["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    lam.create_event_source_mapping(
        EventSourceArn=queue_arn,
        FunctionName="standin-fn",
        BatchSize=5,
        FunctionResponseTypes=["ReportBatchItemFailures"],
    )

    vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
    subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.0.0.0/24")["Subnet"]["SubnetId"]
    sg = ec2.create_security_group(GroupName="g", Description="d", VpcId=vpc)["GroupId"]
    ce = batch.create_compute_environment(
        computeEnvironmentName="standin-ce",
        type="MANAGED",
        serviceRole=role,
        computeResources={
            "type": "FARGATE",
            "maxvCpus": 4,
            "subnets": [subnet],
            "securityGroupIds": [sg],
        },
    )
    batch.create_job_queue(
        jobQueueName="standin-jq",
        state="ENABLED",
        priority=1,
        computeEnvironmentOrder=[{"order": 1, "computeEnvironment": ce["computeEnvironmentArn"]}],
    )
    # Stand-in worker: records its environment; child 1 fails its first attempt (retried).
    script = (
        "import json, os, sys; d = sys.argv[1];"
        "i = os.environ.get('AWS_BATCH_JOB_ARRAY_INDEX', 'single');"
        "a = os.environ['AWS_BATCH_JOB_ATTEMPT'];"
        "open(os.path.join(d, f'{i}.{a}.json'), 'w').write(json.dumps({k: os.environ.get(k) "
        "for k in ('AWS_BATCH_JOB_ID', 'STANDIN_JOB_ENV', 'AWS_ENDPOINT_URL')} | "
        "{'cpus': len(os.sched_getaffinity(0)), 'arg': sys.argv[2]}));"
        "sys.exit(3 if (i == '1' and a == '1') or i == '2' else 0)"
    )
    batch_out = tmp_path_factory.mktemp("batch-out")
    batch.register_job_definition(
        jobDefinitionName="standin-jd",
        type="container",
        retryStrategy={"attempts": 2},
        parameters={"manifest": "default"},
        containerProperties={
            "image": "standin",
            "command": [sys.executable, "-c", script, str(batch_out), "Ref::manifest"],
            "environment": [{"name": "STANDIN_JOB_ENV", "value": "jd"}],
            "resourceRequirements": [
                {"type": "VCPU", "value": "1"},
                {"type": "MEMORY", "value": "2048"},
            ],
        },
    )
    return {"queue": queue, "dlq": dlq, "out": out, "batch_out": batch_out}


@pytest.fixture(scope="module")
def runner(
    emulator: Emulator, standin_stack: dict, tmp_path_factory: pytest.TempPathFactory
) -> Any:
    old = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(STANDINS), old]))
    state = tmp_path_factory.mktemp("local-state")
    run = Runner(emulator.url, REGION, state, sqs_wait_s=1, execution="venv")
    run.start()
    yield run
    run.stop()
    if old is None:
        os.environ.pop("PYTHONPATH", None)
    else:
        os.environ["PYTHONPATH"] = old


def _post(url: str, body: bytes, headers: dict[str, str]) -> tuple[int, bytes, dict]:
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, response.read(), dict(response.headers)
    except urllib.error.HTTPError as err:
        return err.code, err.read(), dict(err.headers)


def test_api_key_is_required_where_the_method_says(runner: Runner) -> None:
    base = runner.api_urls()["standin-api/v1"]
    assert _post(f"{base}/predict", b"x", {})[:2] == (403, b'{"message": "Forbidden"}')
    wrong = {"x-api-key": "nope"}
    assert _post(f"{base}/predict", b"x", wrong)[0] == 403
    assert _post(f"{base}/nothing", b"x", {})[1] == b'{"message": "Missing Authentication Token"}'
    status, body, _ = _post(f"{base}/open", b"{}", {"Content-Type": "application/json"})
    assert status == 200
    assert json.loads(body)["api_key"] is None


def test_proxy_event_and_context(runner: Runner) -> None:
    base = runner.api_urls()["standin-api/v1"]
    jpeg = bytes(range(256)) * 10
    headers = {"x-api-key": "standin-secret-key-0123", "Content-Type": "image/jpeg"}
    status, body, _ = _post(f"{base}/predict?top_k=3", jpeg, headers)
    assert status == 200, body
    first = json.loads(body)
    assert first["isBase64Encoded"] is True
    assert first["body_sha_len"] == len(jpeg)
    assert first["query"] == {"top_k": "3"}
    assert first["api_key"] == "standin-secret-key-0123"
    assert first["resource"] == "/predict"
    assert first["stage"] == "v1"
    assert first["function_name"] == "standin-fn"
    assert 0 < first["remaining_ms"] <= 30_000
    env = first["env"]
    assert env["STANDIN_SETTING"] == "from-emulator"
    assert env["AWS_ENDPOINT_URL"] == runner.endpoint_url
    assert env["_HANDLER"] == "standin_handler.lambda_handler"
    assert env["POWERTOOLS_TRACE_DISABLED"] == "true"
    # Lambda's /tmp is private to each environment: mapped into the runner's state folder
    assert env["MODEL_CACHE_DIR"] == str(
        runner.state_dir / "lambda" / "standin-fn" / "tmp" / "model"
    )
    # JSON is not a binary media type: delivered as text
    status, body, _ = _post(
        f"{base}/predict", b'{"a": 1}', {**headers, "Content-Type": "application/json"}
    )
    second = json.loads(body)
    assert second["isBase64Encoded"] is False
    # one execution environment: init once, then warm invocations
    assert second["init_pid"] == first["init_pid"]
    assert second["calls"] == first["calls"] + 1


def test_function_errors_become_502(runner: Runner) -> None:
    base = runner.api_urls()["standin-api/v1"]
    status, body, _ = _post(f"{base}/boom", b"", {})
    assert (status, json.loads(body)) == (502, {"message": "Internal server error"})


def test_a_timed_out_environment_is_replaced(runner: Runner) -> None:
    base = runner.api_urls()["standin-api/v1"]
    status, body, _ = _post(f"{base}/sleep?s=0", b"", {})
    assert status == 200
    first_pid = json.loads(body)["init_pid"]
    assert _post(f"{base}/sleep?s=3", b"", {})[0] == 502  # over the 1 s function timeout
    assert not pid_alive(first_pid)
    status, body, _ = _post(f"{base}/sleep?s=0", b"", {})
    assert status == 200
    answer = json.loads(body)
    assert answer["init_pid"] != first_pid
    assert answer["calls"] == 1  # a fresh environment: init ran again
    assert runner.environments["standin-slow"].cold_starts == 2


def test_sqs_partial_failures_are_retried_then_dead_lettered(
    runner: Runner, standin_stack: dict, emulator: Emulator
) -> None:
    sqs = client("sqs", emulator.url, REGION)
    for body in ("ok-1", "ok-2", "fail-1"):
        sqs.send_message(QueueUrl=standin_stack["queue"], MessageBody=body)
    deadline = time.monotonic() + 60
    moved: list[dict] = []
    while time.monotonic() < deadline and not moved:
        moved = sqs.receive_message(QueueUrl=standin_stack["dlq"], WaitTimeSeconds=1).get(
            "Messages", []
        )
    assert [m["Body"] for m in moved] == ["fail-1"]
    # the function's /tmp path, as the runner maps it into the environment's private /tmp
    out = runner.state_dir / "lambda" / "standin-fn" / "tmp"
    out = out / standin_stack["out"].removeprefix("/tmp/")
    seen = [json.loads(line) for line in out.read_text().splitlines()]
    bodies = [s["body"] for s in seen]
    assert bodies.count("ok-1") == 1 and bodies.count("ok-2") == 1
    assert bodies.count("fail-1") == 2  # maxReceiveCount 2, then the DLQ
    assert {s["count"] for s in seen if s["body"] == "fail-1"} == {"1", "2"}


def test_batch_array_job_runs_locally_and_reports_truthfully(
    runner: Runner, standin_stack: dict, emulator: Emulator
) -> None:
    batch = client("batch", emulator.url, REGION)
    job = batch.submit_job(
        jobName="standin-job",
        jobQueue="standin-jq",
        # an ARN without revision (the latest one), as AWS accepts and Terraform's arn_prefix
        jobDefinition=f"arn:aws:batch:{REGION}:123456789012:job-definition/standin-jd",
        arrayProperties={"size": 3},
        parameters={"manifest": "s3://bucket/manifests/x.json"},
    )
    job_id = job["jobId"]
    deadline = time.monotonic() + 120
    parent: dict = {}
    while time.monotonic() < deadline:
        parent = batch.describe_jobs(jobs=[job_id])["jobs"][0]
        if parent["status"] in ("SUCCEEDED", "FAILED"):
            break
        time.sleep(0.5)
    children = {
        j["jobId"]: j for j in batch.describe_jobs(jobs=[f"{job_id}:{i}" for i in range(3)])["jobs"]
    }
    assert children[f"{job_id}:0"]["status"] == "SUCCEEDED"
    assert len(children[f"{job_id}:0"]["attempts"]) == 1
    retried = children[f"{job_id}:1"]
    assert retried["status"] == "SUCCEEDED"
    assert [a["container"].get("exitCode") for a in retried["attempts"]] == [3, 0]
    failed = children[f"{job_id}:2"]
    assert failed["status"] == "FAILED"
    assert [a["container"].get("exitCode") for a in failed["attempts"]] == [3, 3]
    assert parent["status"] == "FAILED"
    assert parent["attempts"] == []  # an array parent never runs itself
    out = standin_stack["batch_out"]
    record = json.loads((out / "0.1.json").read_text())
    assert record["AWS_BATCH_JOB_ID"] == f"{job_id}:0"
    assert record["STANDIN_JOB_ENV"] == "jd"
    assert record["AWS_ENDPOINT_URL"] == emulator.url
    assert record["arg"] == "s3://bucket/manifests/x.json"
    assert record["cpus"] == 1  # a 1-vCPU task is pinned to one CPU
    assert sorted(p.name for p in out.glob("*.json")) == [
        "0.1.json", "1.1.json", "1.2.json", "2.1.json", "2.2.json"
    ]  # fmt: skip


def test_everything_stops(emulator: Emulator, standin_stack: dict, tmp_path: Path) -> None:
    old = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = str(STANDINS)
    try:
        run = Runner(emulator.url, REGION, tmp_path, sqs_wait_s=1, execution="venv")
        run.start()
        base = run.api_urls()["standin-api/v1"]
        assert _post(f"{base}/open", b"{}", {})[0] == 200
        pid = run.environments["standin-fn"].pid
        port = run.gateway.port
        assert pid and pid_alive(pid)
        run.stop()
        assert not pid_alive(pid)
        assert not port_open("127.0.0.1", port)
    finally:
        os.environ["PYTHONPATH"] = old or ""


def test_emulator_stops_on_exit() -> None:
    with Emulator() as emu:
        pid, port = emu.pid, emu.port
        assert pid and port_open("127.0.0.1", port)
    assert not pid_alive(pid)
    assert not port_open("127.0.0.1", port)
