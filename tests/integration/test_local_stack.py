"""The whole stack on the local cloud: terraform/ applied to moto, code run by the local runner.

One stack for the module (the apply takes minutes). The last test tears it down and checks
that nothing is left running; the fixture's finalizer tears down too if a test failed.
"""

from __future__ import annotations

import base64
import contextlib
import io
import json
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from inferstack.local import leastpriv, stack
from inferstack.local.discovery import client
from inferstack.local.emulator import port_open
from inferstack.local.process import pid_alive
from local_stack_support import local_stack
from metric_contract import emitted_metrics, unemitted, unknown_resources, watched_metrics
from PIL import Image
from skimage import data

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
TOP_K_KEYS = {"label", "index", "probability"}


def _photo(name: str) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(getattr(data, name)()).convert("RGB").save(buf, "JPEG", quality=90)
    return buf.getvalue()


@pytest.fixture(scope="module")
def local_state(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("local-cloud")


@pytest.fixture(scope="module")
def endpoints(local_state: Path) -> Iterator[dict[str, Any]]:
    with local_stack(local_state) as found:
        yield found


def _post(url: str, body: bytes, headers: dict[str, str]) -> tuple[int, dict[str, Any]]:
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=120) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read() or b"{}")


def _check_prediction_schema(answer: dict[str, Any], top_k: int) -> None:
    assert len(answer["predictions"]) == top_k
    for prediction in answer["predictions"]:
        assert set(prediction) == TOP_K_KEYS
        assert 0 <= prediction["index"] < 1000
        assert 0.0 <= prediction["probability"] <= 1.0
    probabilities = [p["probability"] for p in answer["predictions"]]
    assert probabilities == sorted(probabilities, reverse=True)
    assert {"name", "version"} <= set(answer["model"])


def test_plan_after_apply_shows_no_changes(endpoints: dict[str, Any], local_state: Path) -> None:
    paths = stack.Paths(REPO, local_state)
    model = Path(endpoints["model_bundle_dir"])
    assert stack.terraform_plan_changes(paths, endpoints["emulator_url"], model) == 0


def test_predict_refuses_requests_without_the_api_key(endpoints: dict[str, Any]) -> None:
    jpeg = _photo("chelsea")
    status, body = _post(endpoints["api_url"], jpeg, {"Content-Type": "image/jpeg"})
    assert (status, body) == (403, {"message": "Forbidden"})
    wrong = {"Content-Type": "image/jpeg", "x-api-key": "not-the-key"}
    assert _post(endpoints["api_url"], jpeg, wrong)[0] == 403


def test_predict_answers_with_the_api_key(endpoints: dict[str, Any]) -> None:
    headers = {"x-api-key": endpoints["api_key"]}
    status, answer = _post(
        endpoints["api_url"], _photo("chelsea"), {**headers, "Content-Type": "image/jpeg"}
    )
    assert status == 200, answer
    _check_prediction_schema(answer, 5)
    assert answer["request_id"]
    # JSON body with a base64 image, and top_k in the query string
    body = json.dumps({"image": base64.b64encode(_photo("coffee")).decode()}).encode()
    status, answer = _post(
        endpoints["api_url"] + "?top_k=3", body, {**headers, "Content-Type": "application/json"}
    )
    assert status == 200, answer
    _check_prediction_schema(answer, 3)
    # client errors are 4xx with the error schema, never 5xx
    status, answer = _post(
        endpoints["api_url"], b"not an image", {**headers, "Content-Type": "image/jpeg"}
    )
    assert status == 400
    assert answer["error"]["code"] == "invalid_image"


def _wait_for(s3: Any, bucket: str, keys: list[str], timeout: float) -> dict[str, dict]:
    found: dict[str, dict] = {}
    deadline = time.monotonic() + timeout
    while len(found) < len(keys) and time.monotonic() < deadline:
        for key in keys:
            if key not in found:
                with contextlib.suppress(s3.exceptions.NoSuchKey):
                    found[key] = json.loads(s3.get_object(Bucket=bucket, Key=key)["Body"].read())
        time.sleep(1)
    return found


def test_uploaded_images_get_one_output_each(endpoints: dict[str, Any]) -> None:
    s3 = client("s3", endpoints["emulator_url"], endpoints["region"])
    bucket = endpoints["data_bucket"]
    run = uuid.uuid4().hex[:8]
    images = {f"input/itest-{run}/{name}.jpg": _photo(name) for name in ("astronaut", "rocket")}
    corrupt = f"input/itest-{run}/corrupt.jpg"
    images[corrupt] = _photo("coffee")[:2000]  # a truncated JPEG
    for key, body in images.items():
        s3.put_object(Bucket=bucket, Key=key, Body=body)
    wanted = {"output/" + key.removeprefix("input/") + ".json": key for key in images}
    records = _wait_for(s3, bucket, list(wanted), timeout=400)
    assert set(records) == set(wanted), f"missing outputs: {set(wanted) - set(records)}"
    for out_key, record in records.items():
        in_key = wanted[out_key]
        assert record["input"]["bucket"] == bucket
        assert record["input"]["key"] == in_key
        assert record["input"]["etag"]
        assert {"name", "version", "sha256"} <= set(record["model"])
        if in_key == corrupt:
            assert "predictions" not in record
            assert record["error"]["code"] == "invalid_image"
        else:
            assert "error" not in record
            _check_prediction_schema(record, 5)


def test_batch_jobs_report_what_ran(endpoints: dict[str, Any]) -> None:
    batch = client("batch", endpoints["emulator_url"], endpoints["region"])
    every = [{"name": "JOB_NAME", "values": ["*"]}]
    summaries = batch.list_jobs(jobQueue=endpoints["job_queue"], filters=every)["jobSummaryList"]
    parents = [j["jobId"] for j in summaries if ":" not in j["jobId"]]
    assert parents, "the dispatcher submitted no job"
    # A job's last outputs land a moment before its children write their summaries and exit.
    deadline = time.monotonic() + 60
    jobs = batch.describe_jobs(jobs=parents)["jobs"]
    while any(j["status"] not in ("SUCCEEDED", "FAILED") for j in jobs):
        assert time.monotonic() < deadline, [(j["jobId"], j["status"]) for j in jobs]
        time.sleep(0.5)
        jobs = batch.describe_jobs(jobs=parents)["jobs"]
    for job in jobs:
        assert job["status"] == "SUCCEEDED", job
        children = job.get("arrayProperties", {}).get("size")
        if not children:  # a plain job ran exactly once, with exit code 0
            assert [a["container"]["exitCode"] for a in job["attempts"]] == [0]


def test_every_alarm_and_graph_watches_a_metric_that_is_emitted(
    endpoints: dict[str, Any],
) -> None:
    """The monitoring of the applied stack against what the real handler, dispatcher and worker
    printed while the tests above ran (their EMF lines, as CloudWatch Logs would extract them).

    A metric named with a service, namespace or metric name the code does not use would never
    get a data point: the alarm would stay silent and the graph empty. AWS's own metrics
    (AWS/Lambda, AWS/ApiGateway, AWS/SQS) are not emitted locally; for them, the resources
    they name must exist.
    """
    region, url = endpoints["region"], endpoints["emulator_url"]
    watchers = watched_metrics(client("cloudwatch", url, region))
    assert {w.kind for w in watchers} == {"alarm", "dashboard"}, watchers
    emitted = emitted_metrics(Path(endpoints["logs"]))
    own = {w.metric.namespace for w in watchers if not w.metric.namespace.startswith("AWS/")}
    assert own == {"Inferstack"}, own
    never_emitted = unemitted(watchers, emitted, "Inferstack")
    assert not never_emitted, "never emitted:\n" + "\n".join(never_emitted)
    # The three emitters all reached the logs: without them the check above would be vacuous.
    services = {dict(m.dimensions).get("service") for m in emitted}
    assert {"inferstack-predict", "inferstack-dispatcher", "inferstack-batch-worker"} <= services

    apigw = client("apigateway", url, region)
    apis = apigw.get_rest_apis()["items"]
    stages = {s["stageName"] for a in apis for s in apigw.get_stages(restApiId=a["id"])["item"]}
    queues = client("sqs", url, region).list_queues().get("QueueUrls", [])
    known = {
        "FunctionName": {
            f["FunctionName"] for f in client("lambda", url, region).list_functions()["Functions"]
        },
        "ApiName": {a["name"] for a in apis},
        "Stage": stages,
        "QueueName": {q.rsplit("/", 1)[1] for q in queues},
    }
    missing = unknown_resources(watchers, known)
    assert not missing, "\n".join(missing)


LEASTPRIV_OUT = REPO / "build" / "leastpriv"
COMPONENT_POLICIES = ("inferstack-predict", "inferstack-dispatcher", "inferstack-worker-job")


def test_every_call_a_component_made_is_allowed_by_its_role_policy(
    endpoints: dict[str, Any],
) -> None:
    """The least-privilege report over every call the functions and workers made in the tests
    above, each with its own role's credentials (build/leastpriv/report.md): no call outside
    the policies as Terraform wrote them, every grant no call used explained in the module's
    iam_unused_grants.json. Runs after the traffic and before the permission test below."""
    report = leastpriv.report_for_emulator(
        endpoints["emulator_url"], endpoints["region"], LEASTPRIV_OUT
    )
    called = {p for role in report["roles"].values() if role["calls"] for p in role["policies"]}
    # each component called AWS as its own role: without that the report proves nothing
    assert set(COMPONENT_POLICIES) <= called, report["roles"].keys()
    assert not report["outside_policies"], json.dumps(report["outside_policies"], indent=1)
    assert not report["unexplained_grants"], json.dumps(report["unexplained_grants"], indent=1)
    assert report["ok"]


def _job_role_policy(iam: Any) -> tuple[str, dict[str, Any]]:
    for role in leastpriv.component_roles(iam):
        if "inferstack-worker-job" in role.policies:
            return role.name, role.policies["inferstack-worker-job"]
    raise AssertionError("no role holds the worker's job policy")


def test_a_permission_removed_from_the_worker_role_fails_the_batch_path(
    endpoints: dict[str, Any],
) -> None:
    """Enforced IAM: the job role without s3:PutObject on output/ (as a statement that grants
    the wrong prefix would leave it) makes the worker's writes under output/ AccessDenied, the
    worker exits for a retry (75) until the attempts run out, and the job fails, where the old
    local cloud (admin keys, nothing evaluated) would have succeeded."""
    url, region = endpoints["emulator_url"], endpoints["region"]
    iam, s3 = client("iam", url, region), client("s3", url, region)
    batch = client("batch", url, region)
    role, policy = _job_role_policy(iam)
    edited = json.loads(json.dumps(policy))
    (output,) = [st for st in edited["Statement"] if st.get("Sid") == "ReadWriteOutput"]
    output["Action"] = [a for a in output["Action"] if a != "s3:PutObject"] or "s3:GetObject"
    every = [{"name": "JOB_NAME", "values": ["*"]}]
    before = {j["jobId"] for j in batch.list_jobs(jobQueue=endpoints["job_queue"],
                                                   filters=every)["jobSummaryList"]}  # fmt: skip
    key = f"input/iam-{uuid.uuid4().hex[:8]}/denied.jpg"
    iam.put_role_policy(RoleName=role, PolicyName="inferstack-worker-job",
                        PolicyDocument=json.dumps(edited))  # fmt: skip
    try:
        s3.put_object(Bucket=endpoints["data_bucket"], Key=key, Body=_photo("rocket"))
        deadline, job = time.monotonic() + 300, None
        while time.monotonic() < deadline:
            summaries = batch.list_jobs(jobQueue=endpoints["job_queue"], filters=every)
            new = [j["jobId"] for j in summaries["jobSummaryList"]
                   if j["jobId"] not in before and ":" not in j["jobId"]]  # fmt: skip
            if new:
                job = batch.describe_jobs(jobs=new)["jobs"][0]
                if job["status"] in ("SUCCEEDED", "FAILED"):
                    break
            time.sleep(1)
        assert job is not None and job["status"] == "FAILED", job
    finally:
        iam.put_role_policy(RoleName=role, PolicyName="inferstack-worker-job",
                            PolicyDocument=json.dumps(policy))  # fmt: skip
    out_key = "output/" + key.removeprefix("input/") + ".json"
    with pytest.raises(s3.exceptions.ClientError):
        s3.head_object(Bucket=endpoints["data_bucket"], Key=out_key)
    denied = [c for c in leastpriv.recorded_calls(url)
              if c["decision"] == "deny" and c["action"] == "s3:PutObject"
              and c["principal"].split("/")[1] == role]  # fmt: skip
    # the worker's first write under output/ (its in-flight marker or a result) was refused
    output_arn = f"arn:aws:s3:::{endpoints['data_bucket']}/output/"
    assert any(r.startswith(output_arn) for c in denied for r in c["resources"]), denied
    logs = Path(endpoints["logs"]) / "batch"
    assert any("AccessDenied" in p.read_text(errors="replace") for p in logs.glob("*.log"))


def test_down_leaves_nothing_running(endpoints: dict[str, Any], local_state: Path) -> None:
    paths = stack.Paths(REPO, local_state)
    processes = stack.read_processes(paths)
    info = stack.runner_info(paths)
    pids = [processes["emulator"], processes["runner"]]
    pids += [f["pid"] for f in info.get("functions", {}).values() if f.get("pid")]
    assert all(pid_alive(p) for p in pids)
    emulator_port = int(endpoints["emulator_url"].rsplit(":", 1)[1])
    api_port = int(info["api_port"])
    stack.down(root=REPO, state_dir=local_state)
    assert not [p for p in pids if pid_alive(p)]
    assert not port_open("127.0.0.1", emulator_port)
    assert not port_open("127.0.0.1", api_port)
    assert not local_state.exists()
    # no process anywhere still pointed at this emulator (functions, workers)
    marker = f"AWS_ENDPOINT_URL={endpoints['emulator_url']}".encode()
    stray = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                if marker in (proc / "environ").read_bytes().split(b"\0"):
                    stray.append(int(proc.name))
            except OSError:
                continue
    assert stray == []
