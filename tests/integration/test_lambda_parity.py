"""Lambda-parity execution: deployed zips run in the python3.13 root file system via awslambdaric.

Tiny stand-in zips (a function, a layer) are deployed to a moto server with boto3 and run by
the local runner in its default (parity) mode: the function's code must come from its
deployed zip at /var/task, the layer's from /opt, on python3.13, through the Runtime API; a
function importing a package its layer lacks fails as on AWS (Runtime.ImportModuleError, 502,
the error in its log) even though this test's own interpreter has that package; timeouts and
crashes replace the environment. The root file system is built once (build/rootfs) and reused.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import textwrap
import urllib.error
import urllib.request
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from inferstack.local.discovery import client
from inferstack.local.emulator import Emulator
from inferstack.local.execenv import InvocationError
from inferstack.local.lambdaenv import ArtifactError, resolve_artifacts
from inferstack.local.process import pid_alive
from inferstack.local.runner import Runner
from inferstack.local.sandbox import ensure_lambda_runtime, host_mounts_under

pytestmark = pytest.mark.integration

REGION = "eu-west-1"

PROBE = textwrap.dedent(
    """
    import os, sys, time
    import layermod

    INIT_PID = os.getpid()
    CALLS = {"n": 0}

    def handler(event, context):
        CALLS["n"] += 1
        if event.get("sleep"):
            time.sleep(event["sleep"])
        if event.get("exit") is not None:
            os._exit(event["exit"])
        if event.get("raise"):
            raise ValueError("asked to fail")
        try:
            open("/var/task/written", "w")
            task_writable = True
        except OSError:
            task_writable = False
        with open("/tmp/probe", "a") as fh:
            fh.write("x")
        return {
            "version": list(sys.version_info[:2]),
            "executable": sys.executable,
            "file": __file__,
            "layer_file": layermod.__file__,
            "layer_site": layermod.SITE_FILE,
            "sys_path": sys.path,
            "cwd": os.getcwd(),
            "uid": os.getuid(),
            "init_pid": INIT_PID,
            "calls": CALLS["n"],
            "request_id": context.aws_request_id,
            "remaining_ms": context.get_remaining_time_in_millis(),
            "function_name": context.function_name,
            "task_writable": task_writable,
            "tmp_probe": open("/tmp/probe").read(),
            "env": {k: os.environ.get(k) for k in (
                "LAMBDA_TASK_ROOT", "LAMBDA_RUNTIME_DIR", "PYTHONPATH", "_HANDLER", "TZ",
                "AWS_LAMBDA_FUNCTION_NAME", "AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "PROBE_SETTING",
                "AWS_LAMBDA_RUNTIME_API")},
            "runtime_client": sys.modules["awslambdaric"].__file__,
        }
    """
)
LAYER_MODULE = "import sitemod\nSITE_FILE = sitemod.__file__\n"
# Pillow is installed where this test runs, but not in the deployed layer.
BROKEN = "import PIL  # the layer lacks it\n\ndef handler(event, context):\n    return 1\n"


def _zip(path: Path, files: dict[str, str]) -> Path:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as archive:
        for name, text in files.items():
            archive.writestr(name, text)
    path.write_bytes(buf.getvalue())
    return path


@pytest.fixture(scope="module")
def rootfs() -> Path:
    if os.geteuid() != 0 or shutil.which("unshare") is None:
        pytest.skip("parity execution needs root (chroot, mount namespaces)")
    return ensure_lambda_runtime()


@pytest.fixture(scope="module")
def emulator() -> Iterator[Emulator]:
    with Emulator() as emu:
        yield emu


@pytest.fixture(scope="module")
def dist(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    _zip(out / "probe.zip", {"probe.py": PROBE})
    _zip(out / "broken.zip", {"broken.py": BROKEN})
    _zip(
        out / "layer.zip",
        {
            "python/layermod.py": LAYER_MODULE,
            "python/lib/python3.13/site-packages/sitemod.py": "",
        },
    )
    return out


@pytest.fixture(scope="module")
def deployed(emulator: Emulator, dist: Path) -> dict[str, Any]:
    iam, lam = client("iam", emulator.url, REGION), client("lambda", emulator.url, REGION)
    apigw = client("apigateway", emulator.url, REGION)
    role = iam.create_role(RoleName="parity", AssumeRolePolicyDocument="{}")["Role"]["Arn"]
    layer = lam.publish_layer_version(
        LayerName="parity-layer",
        Content={"ZipFile": (dist / "layer.zip").read_bytes()},
        CompatibleRuntimes=["python3.13"],
    )["LayerVersionArn"]
    functions = {}
    for name, handler, zip_name, timeout in (
        ("parity-probe", "probe.handler", "probe.zip", 2),
        ("parity-broken", "broken.handler", "broken.zip", 3),
    ):
        functions[name] = lam.create_function(
            FunctionName=name,
            Runtime="python3.13",
            Role=role,
            Handler=handler,
            Code={"ZipFile": (dist / zip_name).read_bytes()},
            Timeout=timeout,
            MemorySize=256,
            Layers=[layer],
            Environment={"Variables": {"PROBE_SETTING": "from-emulator"}},
        )
    api = apigw.create_rest_api(name="parity-api")
    root = apigw.get_resources(restApiId=api["id"])["items"][0]["id"]
    for part, name in (("probe", "parity-probe"), ("broken", "parity-broken")):
        resource = apigw.create_resource(restApiId=api["id"], parentId=root, pathPart=part)
        apigw.put_method(restApiId=api["id"], resourceId=resource["id"], httpMethod="POST",
                         authorizationType="NONE")  # fmt: skip
        uri = (
            f"arn:aws:apigateway:{REGION}:lambda:path/2015-03-31/functions/"
            f"{functions[name]['FunctionArn']}/invocations"
        )
        apigw.put_integration(restApiId=api["id"], resourceId=resource["id"], httpMethod="POST",
                              type="AWS_PROXY", integrationHttpMethod="POST", uri=uri)  # fmt: skip
    apigw.create_deployment(restApiId=api["id"], stageName="v1")
    return {"layer": layer}


@pytest.fixture(scope="module")
def runner(
    rootfs: Path, deployed: dict, emulator: Emulator, dist: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Runner]:  # fmt: skip
    del rootfs, deployed
    run = Runner(emulator.url, REGION, tmp_path_factory.mktemp("state"), dist=dist, sqs_wait_s=1)
    assert run.execution == "parity"  # the default
    run.start()
    yield run
    run.stop()


def _post(url: str, body: dict) -> tuple[int, Any]:
    request = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST",
                                     headers={"Content-Type": "application/json"})  # fmt: skip
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read() or b"{}")


def _probe(runner: Runner, event: dict | None = None) -> dict[str, Any]:
    return runner.invoke("parity-probe", None, event or {}, request_id=os.urandom(8).hex())


def test_handler_runs_on_python313_from_the_deployed_artifacts(runner: Runner) -> None:
    answer = _probe(runner)
    assert answer["version"] == [3, 13]
    assert answer["executable"] == "/usr/bin/python3.13"
    assert answer["file"] == "/var/task/probe.py"
    assert answer["layer_file"] == "/opt/python/layermod.py"
    assert answer["layer_site"] == "/opt/python/lib/python3.13/site-packages/sitemod.py"
    assert answer["runtime_client"] == "/var/runtime/awslambdaric/__init__.py"
    # the managed runtime's search order: code, layer site-packages, layer, runtime
    path = [p for p in answer["sys_path"] if p.startswith(("/var", "/opt"))]
    assert list(dict.fromkeys(path))[:4] == [
        "/var/task", "/opt/python/lib/python3.13/site-packages", "/opt/python", "/var/runtime"
    ]  # fmt: skip
    # nothing from the host's interpreter or virtualenv is importable
    assert not [p for p in answer["sys_path"] if "site-packages" in p and not p.startswith("/opt")]
    assert answer["cwd"] == "/var/task"
    assert answer["uid"] != 0
    assert answer["task_writable"] is False  # /var/task is read-only, as on Lambda
    env = answer["env"]
    assert env["LAMBDA_TASK_ROOT"] == "/var/task"
    assert env["LAMBDA_RUNTIME_DIR"] == "/var/runtime"
    assert env["_HANDLER"] == "probe.handler"
    assert env["TZ"] == ":UTC"
    assert env["PROBE_SETTING"] == "from-emulator"
    assert env["AWS_LAMBDA_FUNCTION_MEMORY_SIZE"] == "256"
    assert env["AWS_LAMBDA_RUNTIME_API"].startswith("127.0.0.1:")
    assert 0 < answer["remaining_ms"] <= 2000
    # the private /tmp lives in the runner's state, and nothing stays mounted on the host
    assert (runner.state_dir / "lambda" / "parity-probe" / "tmp" / "probe").is_file()
    assert host_mounts_under(ensure_lambda_runtime()) == []
    # warm: the same environment answers the next invocation
    again = _probe(runner)
    assert (again["init_pid"], again["calls"]) == (answer["init_pid"], answer["calls"] + 1)


def test_a_package_missing_from_the_layer_is_an_init_error(runner: Runner) -> None:
    base = runner.api_urls()["parity-api/v1"]
    assert _post(f"{base}/broken", {}) == (502, {"message": "Internal server error"})
    with pytest.raises(InvocationError) as failure:
        runner.invoke("parity-broken", None, {}, request_id="second-try")
    assert failure.value.error_type == "Runtime.ImportModuleError"
    assert failure.value.message == "Unable to import module 'broken': No module named 'PIL'"
    # each invocation initialised again (no environment kept after an init error)
    assert runner.environments["parity-broken"].cold_starts == 2
    assert runner.environments["parity-broken"].pid is None
    log = (runner.state_dir / "logs" / "parity-broken.log").read_text()
    assert log.count("Runtime.ImportModuleError: Unable to import module 'broken'") == 2
    assert "No module named 'PIL'" in log


def test_function_errors_keep_the_environment(runner: Runner) -> None:
    first = _probe(runner)
    with pytest.raises(InvocationError) as failure:
        _probe(runner, {"raise": True})
    assert (failure.value.error_type, failure.value.message) == ("ValueError", "asked to fail")
    assert _probe(runner)["init_pid"] == first["init_pid"]


def test_timeout_replaces_the_environment(runner: Runner) -> None:
    first = _probe(runner)
    with pytest.raises(InvocationError) as failure:
        _probe(runner, {"sleep": 4})
    assert failure.value.error_type == "Sandbox.Timedout"
    assert failure.value.message.endswith("Task timed out after 2.00 seconds")
    assert not pid_alive(first["init_pid"] + 0) or runner.environments["parity-probe"].pid is None
    after = _probe(runner)
    assert after["calls"] == 1  # a fresh environment: init ran again
    assert after["tmp_probe"] == "x"  # with an empty /tmp
    log = (runner.state_dir / "logs" / "parity-probe.log").read_text()
    assert "Task timed out after 2.00 seconds" in log


def test_a_crashed_runtime_is_replaced(runner: Runner) -> None:
    before = runner.environments["parity-probe"].cold_starts if runner.environments else 0
    _probe(runner)
    with pytest.raises(InvocationError) as failure:
        _probe(runner, {"exit": 3})
    assert failure.value.error_type == "Runtime.ExitError"
    assert "Runtime exited with error: exit status 3" in failure.value.message
    assert _probe(runner)["calls"] == 1
    assert runner.environments["parity-probe"].cold_starts >= before + 1


def test_stopping_leaves_no_process_and_no_mount(
    rootfs: Path, deployed: dict, emulator: Emulator, dist: Path, tmp_path: Path
) -> None:
    del deployed
    run = Runner(emulator.url, REGION, tmp_path, dist=dist, sqs_wait_s=1)
    run.start()
    pid = None
    try:
        _probe(run)
        pid = run.environments["parity-probe"].pid
        assert pid and pid_alive(pid)
    finally:
        run.stop()
    assert pid and not pid_alive(pid)
    assert host_mounts_under(rootfs) == []


def test_code_that_is_not_the_deployed_zip_is_refused(
    deployed: dict, emulator: Emulator, dist: Path, tmp_path: Path
) -> None:
    del deployed
    changed = tmp_path / "dist"
    changed.mkdir()
    shutil.copy(dist / "layer.zip", changed / "layer.zip")
    _zip(changed / "probe.zip", {"probe.py": PROBE + "\n# edited after the apply\n"})
    lam = client("lambda", emulator.url, REGION)
    from inferstack.local.discovery import read_functions  # noqa: PLC0415

    probe = read_functions(lam)["parity-probe"]
    assert resolve_artifacts(probe, lam, [dist]).code == dist / "probe.zip"
    with pytest.raises(ArtifactError, match="not the current build"):
        resolve_artifacts(probe, lam, [changed])
