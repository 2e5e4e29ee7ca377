"""A canary rollout of a model on the local cloud: terraform/ applied to moto with
`canary = { bundle_dir, weight }`, the live alias' versions run by the local runner.

One stack for the module, deployed with small models (the two MobileNetV2 fixtures, imported
as bundles of one name, versions 1 and 2) so a thousand requests take seconds. The primary
is applied first without a canary, then the candidate at weight 0.3 under a steady load of
two clients (no request may fail during the apply): the split over 1,000 requests must lie
in the binomial 99% interval and every answer must name the model of the version whose
execution environment served it (the runner's log names the version of each request id).
Then a candidate whose model cannot be loaded (model.json and its sha256 are
valid, the .tflite is not a model, so the plan passes): its requests get 503
model_unavailable, the primary keeps answering every request, `inferstack model rollout
status` shows the candidate and its alarms, and the alarm's own metric math, evaluated over
the EMF metrics the function logged, breaches (moto does not evaluate CloudWatch alarms, see
the test).
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import os
import re
import shutil
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from inferstack.local import stack
from inferstack.local.discovery import client
from inferstack.local.iam import identities
from local_stack_support import local_stack
from metric_contract import emf_documents, emitted_metrics, unemitted, watched_metrics
from PIL import Image

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
FIXTURES = REPO.parent / "shared" / "fixtures" / "imagenet"
FUNCTION_LOG_LINE = re.compile(r"lambda (?P<function>[\w-]+):(?P<version>\d+): (?P<id>[\w-]+) took")
MODEL_NAME = "mobilenet-v2-canary"
WEIGHT = 0.3
REQUESTS = 1000
CLIENTS = 8


# ------------------------------------------------------------------------------- bundles


def _import_bundle(out: Path, version: str, tflite: str, preprocess: str) -> Path:
    from inferstack.cli import main  # noqa: PLC0415

    status = main(
        ["model", "import",
         "--tflite", str(FIXTURES / tflite),
         "--labels", str(FIXTURES / "imagenet_labels.txt"),
         "--preprocess", preprocess, "--name", MODEL_NAME, "--version", version,
         "--out", str(out)]
    )  # fmt: skip
    assert status == 0
    return out


def _broken_copy(bundle: Path, out: Path, version: str) -> Path:
    """The bundle with a .tflite that is not a model, its model.json consistent with it
    (sha256 of the new file, another version): the plan and the upload pass, loading fails."""
    shutil.copytree(bundle, out)
    garbage = b"this is not a TFLite flatbuffer\n" * 4096
    (out / "model.tflite").write_bytes(garbage)
    meta = json.loads((out / "model.json").read_text())
    meta["version"] = version
    meta["sha256"] = hashlib.sha256(garbage).hexdigest()
    (out / "model.json").write_text(json.dumps(meta, indent=2))
    return out


@pytest.fixture(scope="module")
def bundles(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    if not (FIXTURES / "tf2_mobilenet_v2_1.0_224_ptq.tflite").is_file():
        pytest.skip(f"pretrained fixtures not found at {FIXTURES}")
    root = tmp_path_factory.mktemp("canary-bundles")
    # Two different MobileNetV2 quantisations: the candidate must be another model (sha256).
    primary = _import_bundle(root / "primary", "1", "mobilenet_v2_1.0_224_quant.tflite", "raw")
    candidate = _import_bundle(root / "candidate", "2", "tf2_mobilenet_v2_1.0_224_ptq.tflite", "tf")
    return {
        "primary": primary,
        "candidate": candidate,
        "broken": _broken_copy(candidate, root / "broken", "3-broken"),
    }


def _sha(bundle: Path) -> str:
    return str(json.loads((bundle / "model.json").read_text())["sha256"])


# --------------------------------------------------------------------------------- stack


@pytest.fixture(scope="module")
def local(bundles: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    state = tmp_path_factory.mktemp("canary-cloud")
    started = time.monotonic()
    with local_stack(state, model_dir=bundles["primary"]) as endpoints:
        print(f"\nup with the primary: {time.monotonic() - started:.0f} s", flush=True)
        yield {"endpoints": endpoints, "paths": stack.Paths(REPO, state)}


def apply_rollout(
    local: dict, primary: Path, canary: Path | None = None, weight: float = WEIGHT
) -> float:
    """terraform apply with `primary` as the model bundle and `canary = { bundle_dir, weight }`
    (None: no canary); seconds."""
    endpoints = local["endpoints"]
    spec = "null" if canary is None else f'{{bundle_dir="{canary}", weight={weight}}}'
    started = time.monotonic()
    stack.terraform_apply(
        local["paths"], endpoints["emulator_url"], primary, (f"-var=canary={spec}",)
    )
    return time.monotonic() - started


def live_alias(local: dict) -> dict[str, Any]:
    endpoints = local["endpoints"]
    lam = client("lambda", endpoints["emulator_url"], endpoints["region"])
    return lam.get_alias(FunctionName=predict_function(local), Name="live")


def alias_weights(alias: dict[str, Any]) -> dict[str, float]:
    """The additional versions an alias routes to, with their weights ({} without routing)."""
    return (alias.get("RoutingConfig") or {}).get("AdditionalVersionWeights") or {}


def predict_function(local: dict) -> str:
    return str(local["endpoints"]["predict_function_name"])


def version_environment(local: dict, version: str) -> dict[str, str]:
    endpoints = local["endpoints"]
    lam = client("lambda", endpoints["emulator_url"], endpoints["region"])
    cfg = lam.get_function_configuration(FunctionName=predict_function(local), Qualifier=version)
    assert cfg["Version"] == version
    return dict(cfg["Environment"]["Variables"])


def wait_for_runner(local: dict, weights: dict[str, float], version: str) -> None:
    """Until the runner routes the live alias as the emulator has it (re-read every second)."""
    deadline = time.monotonic() + 30
    function = predict_function(local)
    while time.monotonic() < deadline:
        seen = stack.runner_info(local["paths"]).get("aliases", {}).get(function, {})
        live = seen.get("live", {})
        if live.get("version") == version and live.get("weights") == weights:
            return
        time.sleep(0.5)
    raise AssertionError(f"the runner does not route live as {version} + {weights}: {seen}")


# ------------------------------------------------------------------------------ requests


def _small_jpeg(seed: int) -> bytes:
    image = Image.new("RGB", (48, 48), ((seed * 37) % 256, (seed * 11) % 256, 90))
    buf = io.BytesIO()
    image.save(buf, "JPEG", quality=80)
    return buf.getvalue()


JPEGS = [_small_jpeg(i) for i in range(16)]


def post(endpoints: dict[str, Any], i: int, body: bytes | None = None) -> dict[str, Any]:
    request = urllib.request.Request(
        endpoints["api_url"],
        data=JPEGS[i % len(JPEGS)] if body is None else body,
        headers={"Content-Type": "image/jpeg", "x-api-key": endpoints["api_key"]},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            status, headers, raw = response.status, response.headers, response.read()
    except urllib.error.HTTPError as err:
        status, headers, raw = err.code, err.headers, err.read()
    return {
        "status": status,
        "request_id": headers.get("x-amzn-RequestId"),
        "model": headers.get("X-Inferstack-Model"),
        "body": json.loads(raw or b"{}"),
    }


def send(endpoints: dict[str, Any], count: int) -> list[dict[str, Any]]:
    with ThreadPoolExecutor(CLIENTS) as pool:
        return list(pool.map(lambda i: post(endpoints, i), range(count)))


class SteadyLoad:
    """`clients` threads posting back to back while the block runs (at most `limit_s`)."""

    def __init__(self, endpoints: dict[str, Any], clients: int = 2, limit_s: float = 180) -> None:
        self.endpoints = endpoints
        self.answers: list[dict[str, Any]] = []
        self._stop = threading.Event()
        self._deadline = time.monotonic() + limit_s
        self._threads = [threading.Thread(target=self._run, args=(i,)) for i in range(clients)]

    def _run(self, seed: int) -> None:
        i = seed
        while not self._stop.is_set() and time.monotonic() < self._deadline:
            self.answers.append(post(self.endpoints, i))  # list.append is atomic
            i += len(self._threads)

    def __enter__(self) -> SteadyLoad:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=90)


class BundleWatch:
    """While a change is applied: every version the live alias routes to must find its model
    bundle in S3. A version whose files are deleted while it still gets traffic fails on its
    next cold start, which warm environments under a steady load would not reveal."""

    def __init__(self, local: dict) -> None:
        endpoints = local["endpoints"]
        self._lambda = client("lambda", endpoints["emulator_url"], endpoints["region"])
        self._s3 = client("s3", endpoints["emulator_url"], endpoints["region"])
        self._function = predict_function(local)
        self.missing: list[str] = []
        self.checks = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run)

    def _routed(self) -> set[str]:
        alias = self._lambda.get_alias(FunctionName=self._function, Name="live")
        weights = alias_weights(alias)
        return {alias["FunctionVersion"], *(v for v, w in weights.items() if w > 0)}

    def _check(self) -> None:
        for version in sorted(self._routed()):
            cfg = self._lambda.get_function_configuration(
                FunctionName=self._function, Qualifier=version
            )
            bucket, _, prefix = cfg["Environment"]["Variables"]["MODEL_URI"][5:].partition("/")
            for name in ("model.json", "model.tflite"):
                try:
                    self._s3.head_object(Bucket=bucket, Key=prefix + name)
                except self._s3.exceptions.ClientError:
                    if version in self._routed():  # not a read racing the alias' move
                        self.missing.append(f"v{version}: s3://{bucket}/{prefix}{name}")
        self.checks += 1

    def _run(self) -> None:
        while not self._stop.is_set():
            self._check()
            self._stop.wait(0.2)

    def __enter__(self) -> BundleWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=30)
        self._check()  # and once more on the state the change left


def change_under_load(local: dict, what: str, apply: Callable[[], float]) -> dict[str, Any]:
    """Apply a change while two clients post back to back and the bundles of the routed
    versions are watched; no request may fail and no routed version may lose its bundle.
    Returns the live alias after the change, once the runner routes as it says."""
    with SteadyLoad(local["endpoints"]) as load, BundleWatch(local) as bundles:
        seconds = apply()
        alias = live_alias(local)
        weights = alias_weights(alias)
        wait_for_runner(local, weights, alias["FunctionVersion"])
    failed = [a for a in load.answers if a["status"] != 200]
    print(
        f"\n{what}: applied in {seconds:.0f} s under load, {len(load.answers)} requests served "
        f"during the change, {len(failed)} failed; {bundles.checks} bundle checks",
        flush=True,
    )
    assert load.answers and failed == [], failed[:3]
    assert bundles.missing == [], bundles.missing
    return alias


def served_versions(local: dict) -> dict[str, str]:
    """Request id -> the version of the predict function whose environment served it, from
    the runner's log (`lambda <function>:<version>: <request id> took ...`)."""
    function = predict_function(local)
    found: dict[str, str] = {}
    log = (local["paths"].logs / "runner.log").read_text(errors="replace")
    for match in FUNCTION_LOG_LINE.finditer(log):
        if match["function"] == function:
            found[match["id"]] = match["version"]
    return found


def binomial_interval(n: int, p: float, confidence: float = 0.99) -> tuple[int, int]:
    """The central interval [lo, hi] holding at least `confidence` of Binomial(n, p)."""
    pmf = [math.comb(n, k) * p**k * (1 - p) ** (n - k) for k in range(n + 1)]
    tail = (1 - confidence) / 2
    lo, acc = 0, 0.0
    while acc + pmf[lo] <= tail:
        acc += pmf[lo]
        lo += 1
    hi, acc = n, 0.0
    while acc + pmf[hi] <= tail:
        acc += pmf[hi]
        hi -= 1
    return lo, hi


def test_binomial_interval() -> None:
    assert binomial_interval(1000, 0.3) == (263, 338)  # scipy.stats.binom.interval(0.99, ...)
    lo, hi = binomial_interval(100, 0.5)
    assert (lo, hi) == (100 - hi, hi) and 60 <= hi <= 64


# --------------------------------------------------------------------------------- tests


def test_weight_0_3_splits_1000_requests_and_each_answer_names_its_version(
    local: dict, bundles: dict[str, Path]
) -> None:
    endpoints = local["endpoints"]
    primary_version = live_alias(local)["FunctionVersion"]
    alias = change_under_load(
        local,
        "candidate at weight 0.3",
        lambda: apply_rollout(local, bundles["primary"], bundles["candidate"]),
    )
    weights = alias["RoutingConfig"]["AdditionalVersionWeights"]
    assert alias["FunctionVersion"] == primary_version  # the alias did not move
    assert list(weights.values()) == [WEIGHT]
    (candidate_version,) = weights

    started = time.monotonic()
    answers = send(endpoints, REQUESTS)
    elapsed = time.monotonic() - started
    assert [a for a in answers if a["status"] != 200] == []
    by_id = served_versions(local)
    expected = {}  # version -> the X-Inferstack-Model its environment must answer with
    for version, bundle in ((primary_version, "primary"), (candidate_version, "candidate")):
        env = version_environment(local, version)
        assert env["MODEL_SHA256"] == _sha(bundles[bundle])
        expected[version] = model_header(bundles[bundle])
    served = Counter(by_id[a["request_id"]] for a in answers)
    for answer in answers:
        version = by_id[answer["request_id"]]
        assert answer["model"] == expected[version], answer
        assert answer["body"]["model"]["version"] == expected[version].split("/")[1]
    lo, hi = binomial_interval(REQUESTS, WEIGHT)
    print(
        f"\n{REQUESTS} requests in {elapsed:.1f} s: "
        f"primary v{primary_version} {served[primary_version]}, candidate "
        f"v{candidate_version} {served[candidate_version]} (99% interval {lo}-{hi})",
        flush=True,
    )
    assert set(served) == {primary_version, candidate_version}
    assert lo <= served[candidate_version] <= hi

    # The candidate's alarms and the dashboard's canary row watch, by ModelSha256, metrics
    # the two versions emitted: errors too (40 bodies that are not images reach both
    # versions but with probability 0.7**40 + 0.3**40).
    with ThreadPoolExecutor(CLIENTS) as pool:
        bad = list(pool.map(lambda i: post(endpoints, i, b"not an image"), range(40)))
    assert {a["status"] for a in bad} == {400}
    watchers = [
        w
        for w in watched_metrics(
            client("cloudwatch", endpoints["emulator_url"], endpoints["region"])
        )
        if "ModelSha256" in dict(w.metric.dimensions)
    ]
    assert {w.kind for w in watchers} == {"alarm", "dashboard"}, watchers
    assert unemitted(watchers, emitted_metrics(local["paths"].logs), "Inferstack") == []


def test_weight_change_rollback_and_promotion_under_load_fail_no_request(
    local: dict, bundles: dict[str, Path]
) -> None:
    alias = live_alias(local)
    primary_version = alias["FunctionVersion"]
    (candidate_version,) = alias["RoutingConfig"]["AdditionalVersionWeights"]
    primary, candidate = bundles["primary"], bundles["candidate"]

    alias = change_under_load(
        local, "weight 0.3 -> 0.6", lambda: apply_rollout(local, primary, candidate, 0.6)
    )
    assert alias["FunctionVersion"] == primary_version
    assert alias["RoutingConfig"]["AdditionalVersionWeights"] == {candidate_version: 0.6}

    # Rollback: weight 0 keeps the candidate published and sends it nothing.
    alias = change_under_load(
        local, "rollback (weight 0)", lambda: apply_rollout(local, primary, candidate, 0)
    )
    assert alias["FunctionVersion"] == primary_version
    assert alias_weights(alias) == {}
    assert models_answering(local, 50) == {model_header(primary)}

    # Promotion: the candidate becomes the primary bundle and the canary goes, in one apply.
    alias = change_under_load(local, "promotion", lambda: apply_rollout(local, candidate))
    assert alias_weights(alias) == {}
    promoted = version_environment(local, alias["FunctionVersion"])
    assert promoted["MODEL_SHA256"] == _sha(candidate)
    print(
        f"\npromoted: live serves v{alias['FunctionVersion']} (the candidate was "
        f"v{candidate_version})",
        flush=True,
    )
    assert models_answering(local, 50) == {model_header(candidate)}


def model_header(bundle: Path) -> str:
    """The X-Inferstack-Model a bundle's answers carry: <name>/<version>/<sha256[:12]>."""
    meta = json.loads((bundle / "model.json").read_text())
    return f"{meta['name']}/{meta['version']}/{meta['sha256'][:12]}"


def models_answering(local: dict, count: int) -> set[str]:
    answers = send(local["endpoints"], count)
    assert {a["status"] for a in answers} == {200}, answers[:3]
    return {a["model"] for a in answers}


def test_a_candidate_that_cannot_load_gets_503_and_the_primary_keeps_serving(
    local: dict, bundles: dict[str, Path]
) -> None:
    endpoints = local["endpoints"]
    primary_version = live_alias(local)["FunctionVersion"]
    # The candidate promoted by the test before is the primary now.
    seconds = apply_rollout(local, bundles["candidate"], bundles["broken"])
    alias = live_alias(local)
    assert alias["FunctionVersion"] == primary_version
    weights = alias["RoutingConfig"]["AdditionalVersionWeights"]
    (broken_version,) = weights
    assert version_environment(local, broken_version)["MODEL_SHA256"] == _sha(bundles["broken"])
    wait_for_runner(local, weights, primary_version)

    answers = send(endpoints, 200)
    by_id = served_versions(local)
    to_primary = [a for a in answers if by_id[a["request_id"]] == primary_version]
    to_broken = [a for a in answers if by_id[a["request_id"]] == broken_version]
    assert len(to_primary) + len(to_broken) == len(answers)
    assert to_broken, "no request reached the candidate"
    print(
        f"\nbroken candidate applied in {seconds:.0f} s; of 200 requests "
        f"{len(to_primary)} primary (all 200), {len(to_broken)} candidate (all 503)",
        flush=True,
    )
    assert {a["status"] for a in to_primary} == {200}
    for answer in to_broken:
        assert answer["status"] == 503, answer
        assert answer["body"]["error"]["code"] in ("model_unavailable", "invalid_bundle"), answer
        assert answer["model"].endswith("/" + _sha(bundles["broken"])[:12]), answer

    # `inferstack model rollout status` against the emulator: the split and the candidate.
    status = rollout_status(local)
    assert status["state"] == "canary"
    assert status["candidate"]["version"] == broken_version
    assert status["candidate"]["weight"] == WEIGHT
    assert status["candidate"]["model_sha256"] == _sha(bundles["broken"])
    alarms = {a["name"]: a for a in status["alarms"]}
    init_alarm = next(name for name in alarms if name.endswith("-canary-init-failures"))
    assert alarms[init_alarm]["state"] != "MISSING"
    # moto keeps an alarm in the state it was created in (it never evaluates metrics, and the
    # function's EMF metrics stay in its log file: there is no CloudWatch Logs ingestion
    # locally), so the status cannot show it firing here; nothing sets it by hand. What is
    # checked instead: the alarm's own metrics, read from its definition in the emulator,
    # summed over the EMF documents the function logged, breach its expression (the candidate
    # answered errors and no prediction) and do not for the primary's model.
    cloudwatch = client("cloudwatch", endpoints["emulator_url"], endpoints["region"])
    (alarm,) = cloudwatch.describe_alarms(AlarmNames=[init_alarm])["MetricAlarms"]
    log = local["paths"].logs / f"{predict_function(local)}.log"
    documents = list(emf_documents(log.read_text(errors="replace").splitlines()))
    sums = alarm_metric_sums(alarm, documents)
    assert sums["ce"] > 0 and sums["cp"] == 0, sums  # IF(ce > 0 AND cp == 0, 1, 0) = 1 > 0
    primary_sha = _sha(bundles["primary"])[:12]
    primary_sums = alarm_metric_sums(alarm, documents, model=primary_sha)
    assert primary_sums["cp"] > 0, primary_sums  # the same math over the primary: 0


def alarm_metric_sums(
    alarm: dict[str, Any], documents: list[dict[str, Any]], model: str | None = None
) -> dict[str, float]:
    """Sum of each metric query of a metric-math alarm over EMF documents (its namespace,
    metric and dimensions; `model` replaces the ModelSha256 dimension's value)."""
    sums: dict[str, float] = {}
    for query in alarm["Metrics"]:
        if "MetricStat" not in query:
            continue
        metric = query["MetricStat"]["Metric"]
        dims = {d["Name"]: d["Value"] for d in metric.get("Dimensions", [])}
        if model is not None:
            dims["ModelSha256"] = model
        total = 0.0
        for doc in documents:
            for directive in doc["_aws"].get("CloudWatchMetrics", []):
                if directive["Namespace"] != metric["Namespace"]:
                    continue
                if sorted(dims) not in [sorted(s) for s in directive.get("Dimensions", [])]:
                    continue
                if any(str(doc.get(k)) != v for k, v in dims.items()):
                    continue
                if metric["MetricName"] in {m["Name"] for m in directive.get("Metrics", [])}:
                    value = doc.get(metric["MetricName"], 0)
                    total += sum(value) if isinstance(value, list) else float(value)
        sums[query["Id"]] = total
    assert "ce" in sums and "cp" in sums, alarm["Metrics"]
    return sums


def rollout_status(local: dict) -> dict[str, Any]:
    endpoints = local["endpoints"]
    found = identities(endpoints["emulator_url"])
    assert found is not None
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("AWS_")},
        **found.admin.environment(),
        "AWS_ENDPOINT_URL": endpoints["emulator_url"],
    }
    result = subprocess.run(
        [sys.executable, "-m", "inferstack.cli", "model", "rollout", "status", "--json",
         "--tfvars", str(REPO / "terraform" / "environments" / "local.tfvars"),
         "--function-name", predict_function(local)],
        capture_output=True, text=True, env=env, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode in (0, 1), result.stderr
    return json.loads(result.stdout)
