"""moto server with truthful AWS Batch job states: `python -m inferstack.local.motoserver`.

Why this exists: with `{"batch": {"use_docker": false}}` moto (5.2.x, moto/batch_simple)
marks every submitted job and array child SUCCEEDED inside `SubmitJob` itself, before
anything ran; the Docker-backed alternative needs a Docker daemon (none here) and marks the
job FAILED when it cannot reach one. Neither tells the truth about work the local runner
does. This launcher starts the same moto server (same CLI as `python -m moto.server`) with
two small changes, both local-only:

1. submitted jobs stay SUBMITTED (moto's job state machine is set to manual progression, so
   reading a job does not advance it either) until someone reports progress;
2. `POST /moto-api/inferstack/batch-job-status` with {"jobId", "status", "exitCode"?,
   "reason"?, "attempt"? (false for array parents)} records the progress the local Batch
   runner observes: RUNNABLE, STARTING, RUNNING (a new attempt), SUCCEEDED/FAILED (attempt
   end, exit code, stoppedAt).

So `describe_jobs`/`list_jobs` answer what actually happened.

moto itself also "runs" SQS event source mappings: on SendMessage it invokes the mapped
function (with Lambda's use_docker false, a canned answer that runs nothing) and deletes
the messages, so they would never reach the local runner, which is the event source mapping
here. That delivery is switched off; messages wait in the queue as on AWS until polled.

One moto gap is also closed, because it changes what the runner serves and makes Terraform
see a perpetual diff: moto 5.2.5 drops `binaryMediaTypes` on CreateRestApi and appends ""
for the value-less `add /binaryMediaTypes/<type>` patch that AWS (and the Terraform
provider) use. Here both keep the media types, as API Gateway does.

SubmitJob with a job definition ARN without revision (`.../job-definition/<name>`, the
Terraform `arn_prefix`, "the latest active revision") is accepted, as AWS does; moto only
knew name, name:revision and the full ARN.

And one that makes Terraform see a perpetual diff: moto drops the description of a
security group rule that targets a prefix list (the S3 gateway endpoint rule); kept here.

SetQueueAttributes changes only the attributes it is given, as SQS does; moto reset the
queue policy on every write without one (a redrive policy written after it erased it).

Everything else is moto as shipped. The patch is checked against moto's structure at
start-up and refuses to start (rather than silently lying) when moto changed.

Serving: moto's own `python -m moto.server` runs werkzeug's development server, which closes
the connection after every response (a new TCP connection and server thread per request) and
resolves the backend of every request by listing moto's package folder. Measured on 2 vCPUs,
an S3 GET plus a PUT cost ~6.5 ms of emulator CPU and ~4.5 ms of client CPU that way. Here
the same moto WSGI application is served by cheroot (HTTP/1.1 keep-alive, a thread pool)
and the host -> backend lookup is memoised: ~2.8 ms and ~3.1 ms. The emulator shares the
machine with the code under test, so this is CPU given back to it. `--http-server werkzeug`
serves with moto's own server instead.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import signal
import sys
import threading
from collections.abc import Callable
from datetime import datetime
from typing import Any
from urllib.parse import parse_qs

# This module is the emulator process itself: moto is its whole purpose.
from moto.apigateway.models import RestAPI
from moto.apigateway.responses import APIGatewayResponse
from moto.batch.models import BatchBackend, Job, batch_backends
from moto.batch_simple.models import BatchSimpleBackend
from moto.core.utils import unix_time
from moto.ec2.models.security_groups import SecurityGroupRule
from moto.iam.access_control import IAMPolicyStatement, IAMRequestBase
from moto.moto_api import state_manager
from moto.moto_api._internal import urls
from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app
from moto.server import main as moto_main
from moto.sqs.models import Queue, SQSBackend

STATUS_PATH = "/moto-api/inferstack/batch-job-status"
CALLS_PATH = "/moto-api/inferstack/calls"
# Principals whose authorised calls are recorded (the components' role sessions).
RECORDED_PRINCIPAL = ":assumed-role/"
SERVICE_USER_PREFIX = "inferstack-local-service-"  # = inferstack.local.iam.SERVICE_USER_PREFIX
JOB_MODEL = "batch::job"
# Never advance a job on read: only the local runner moves it.
MANUAL_FOREVER = {"progression": "manual", "times": 2**62}
RUNNER_STATUSES = ("RUNNABLE", "STARTING", "RUNNING", "SUCCEEDED", "FAILED")


def _keep_submitted(self: Any, include_start_attempt: bool, job: Any) -> None:
    """Replacement for BatchSimpleBackend._mark_job_as_finished: register, do not finish."""
    del include_start_attempt  # attempts start when the runner reports RUNNING
    self.backend._jobs[job.job_id] = job


def _find_job(job_id: str) -> Any | None:
    for _account, regions in batch_backends.items():
        for region in regions:
            job = regions[region]._jobs.get(job_id)
            if job is not None:
                return job
    return None


def _millis(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def apply_status(
    job: Any, status: str, exit_code: int | None, reason: str | None, *, attempt: bool = True
) -> None:
    """Move one job (or array child) to `status`, keeping attempts like Batch does.

    attempt=False for array parents: they change state with their children but never run.
    """
    now = datetime.now()
    if status == "RUNNING" and not attempt:
        job.job_started_at = now
    elif status == "RUNNING":
        if not job.attempts:
            job.job_started_at = now
        job.log_stream_name = job._stream_name
        job._start_attempt()
        job.latest_attempt["startedAt"] = _millis(now)
    elif (
        status in ("SUCCEEDED", "FAILED", "RUNNABLE")
        and job.latest_attempt is not None
        and "stoppedAt" not in job.latest_attempt
    ):
        # RUNNABLE after RUNNING = the attempt failed and Batch retries it.
        job.latest_attempt["stoppedAt"] = _millis(now)
        if exit_code is not None:
            job.latest_attempt["container"]["exitCode"] = exit_code
        if reason:
            job.latest_attempt["statusReason"] = reason
    if status in ("SUCCEEDED", "FAILED"):
        job.exit_code = exit_code
        if reason:
            job.job_stopped_reason = reason
        job._mark_stopped(success=status == "SUCCEEDED")
    else:
        job.status = status


def _status_handler(request: Any, full_url: str, headers: Any) -> tuple[int, dict, bytes]:
    del full_url
    size = int(headers.get("Content-Length") or 0)
    body = json.loads(request.environ["wsgi.input"].read(size) or b"{}")
    out_headers = {"Content-Type": "application/json"}
    status = body.get("status")
    if status not in RUNNER_STATUSES:
        return 400, out_headers, json.dumps({"message": f"bad status {status!r}"}).encode()
    job = _find_job(str(body.get("jobId")))
    if job is None:
        return 404, out_headers, json.dumps({"message": "job not found"}).encode()
    with _SUBMIT_LOCK:
        apply_status(
            job,
            status,
            body.get("exitCode"),
            body.get("reason"),
            attempt=bool(body.get("attempt", True)),
        )
        answer = job.describe_short()
    return 200, out_headers, json.dumps(answer, default=str).encode()


# SubmitJob registers the parent, then its children, then links them: a ListJobs or
# DescribeJobs in between would see half an array job. One lock makes submission atomic.
_SUBMIT_LOCK = threading.RLock()


def _atomic(method: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(method)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        with _SUBMIT_LOCK:
            return method(*args, **kwargs)

    return wrapper


def _unescape_pointer(part: str) -> str:
    return part.replace("~1", "/").replace("~0", "~")


def _install_binary_media_types() -> None:
    create = APIGatewayResponse.create_rest_api
    patch = RestAPI.apply_patch_operations

    def create_rest_api(self: Any) -> Any:
        status, headers, body = create(self)
        types = self._get_param("binaryMediaTypes")
        if status == 200 and types and not self._get_param("body"):
            rest_api = self.backend.get_rest_api(json.loads(body)["id"])
            rest_api.binaryMediaTypes = list(types)
            body = json.dumps(rest_api.to_dict())
        return status, headers, body

    def apply_patch_operations(self: Any, patch_operations: list[dict[str, Any]]) -> None:
        fixed = []
        for op in patch_operations:
            path = op.get("path", "")
            if path.startswith("/binaryMediaTypes/") and op.get("op") in ("add", "remove"):
                media_type = _unescape_pointer(path.split("/", 2)[2])
                if op["op"] == "add" and media_type not in self.binaryMediaTypes:
                    self.binaryMediaTypes.append(media_type)
                elif op["op"] == "remove" and media_type in self.binaryMediaTypes:
                    self.binaryMediaTypes.remove(media_type)
                continue
            fixed.append(op)
        patch(self, fixed)

    APIGatewayResponse.create_rest_api = create_rest_api  # type: ignore[method-assign]
    RestAPI.apply_patch_operations = apply_patch_operations  # type: ignore[method-assign]


class _NoDelivery(dict):
    """A queue's mapping registry that stays empty: moto never delivers to Lambda itself."""

    def __setitem__(self, key: Any, value: Any) -> None:
        del key, value


def _install_no_sqs_delivery() -> None:
    Queue.lambda_event_source_mappings = property(  # type: ignore[assignment]
        lambda self: _NoDelivery(), lambda self, value: None
    )


def _message_within_retention(self: Any, queue_name: str, message: Any) -> bool:
    """moto's check, reading the queue's retention period directly: moto reads it through
    get_queue_attributes, which counts every message of the queue, for each message it
    returns, so a receive from a queue thousands deep took about a second."""
    retention = int(self.get_queue(queue_name).message_retention_period)
    return retention + message.sent_timestamp / 1000 > unix_time()


def _install_cheap_sqs_retention_check() -> None:
    if not hasattr(SQSBackend, "is_message_valid_based_on_retention_period"):
        raise RuntimeError("moto changed: SQSBackend.is_message_valid_based_on_retention_period")
    SQSBackend.is_message_valid_based_on_retention_period = _message_within_retention  # type: ignore[method-assign]


def _install_sqs_set_attributes_keeps_policy() -> None:
    """SetQueueAttributes changes only the attributes it is given, as on AWS
    (https://docs.aws.amazon.com/AWSSimpleQueueService/latest/APIReference/API_SetQueueAttributes.html);
    moto 5.2.5 resets the queue policy on every call without "Policy" (Queue._set_attributes
    assigns attributes.get("Policy")), so writing a queue's RedrivePolicy erased its Policy.
    Terraform's aws_sqs_queue_policy then waits in vain for its policy to read back, and a
    stack had to order the two writes one after the other (two 25 s waits instead of one)."""
    if not hasattr(Queue, "_set_attributes"):
        raise RuntimeError("moto changed: sqs Queue._set_attributes is missing")
    set_attributes = Queue._set_attributes

    def _set_attributes(self: Any, attributes: dict[str, Any], now: float | None = None) -> None:
        if "Policy" in attributes:  # CreateQueue (moto adds the default) or a policy write
            set_attributes(self, attributes, now)
            return
        kept = self._policy_json
        set_attributes(self, attributes, now)
        self._policy_json = kept

    Queue._set_attributes = _set_attributes  # type: ignore[method-assign]


def _install_prefix_list_rule_descriptions() -> None:
    init = SecurityGroupRule.__init__

    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:  # noqa: N807
        init(self, *args, **kwargs)
        # positional: backend, protocol, group, from, to, ip_range, source_group, prefix_list
        prefix_list = kwargs.get("prefix_list_id", args[7] if len(args) > 7 else None)
        self._prefix_list_description = (prefix_list or {}).get("Description")

    def description(self: Any) -> str | None:
        return (
            self.ip_range.get("Description")
            or self.source_group.get("Description")
            or getattr(self, "_prefix_list_description", None)
        )

    SecurityGroupRule.__init__ = __init__  # type: ignore[method-assign]
    SecurityGroupRule.description = property(description)  # type: ignore[assignment,method-assign]


def _install_job_definition_arn_prefix() -> None:
    lookup = BatchBackend.get_job_definition

    def get_job_definition(self: Any, identifier: str) -> Any:
        found = lookup(self, identifier)
        if found is None and identifier.startswith("arn:") and ":job-definition/" in identifier:
            name = identifier.rsplit("/", 1)[1]
            if ":" not in name:  # no revision: the latest active one
                found = self.get_job_definition_by_name(name)
        return found

    BatchBackend.get_job_definition = get_job_definition  # type: ignore[method-assign]


def _install_backend_lookup_cache() -> None:
    """Memoise moto's host -> backend lookup (a folder listing and ~300 regexes per request).

    The answer depends only on the host and on the installed moto, so caching is exact.
    """
    lookup = DomainDispatcherApplication.get_backend_for_host
    cache: dict[str | None, Any] = {}

    def get_backend_for_host(self: Any, host: str | None) -> Any:
        if host not in cache:
            cache[host] = lookup(self, host)
        return cache[host]

    DomainDispatcherApplication.get_backend_for_host = get_backend_for_host  # type: ignore[method-assign]


# ------------------------------------------------------------------ enforced IAM
# With INITIAL_NO_AUTH_ACTION_COUNT set, moto authorises each request against the caller's
# policies (moto/iam/access_control.py). Three of its gaps would refuse calls AWS allows, so
# they are closed here; what it does not evaluate at all is listed in the local README and
# checked by inferstack.local.leastpriv from the calls recorded here.


def _as_list(value: Any) -> list[str]:
    return [value] if isinstance(value, str) else list(value or [])


def _check_principal(self: Any, principal: str) -> bool:
    """Trust-policy principals: AWS ARNs as moto does, and service principals.

    moto 5.2.5 raises TypeError on a statement without an "AWS" principal ("Service"): a
    role only a service may assume could not be assumed at all. Here the local user
    inferstack-local-service-<name> stands for <name>.amazonaws.com, so the runner (which plays
    Lambda and ECS) assumes exactly the roles that trust that service.
    """
    expected = self._statement.get("Principal")
    if not expected or expected == "*":
        return True
    if isinstance(expected, str):
        return principal == expected
    aws = _as_list(expected.get("AWS"))
    if "*" in aws or principal in aws:
        return True
    user = principal.rsplit(":user/", 1)[-1] if ":user/" in principal else ""
    if user.startswith(SERVICE_USER_PREFIX):
        service = f"{user.removeprefix(SERVICE_USER_PREFIX)}.amazonaws.com"
        return service in _as_list(expected.get("Service"))
    return False


def _install_case_insensitive_actions() -> None:
    """IAM action names are case-insensitive; moto matches them case-sensitively, and its
    Batch handler names actions from the lower-case URL (batch:submitjob, batch:listjobs)."""
    matches = IAMPolicyStatement._check_element_matches

    def check_element_matches(self: Any, element: str, value: str) -> bool:
        if element in ("Action", "NotAction"):
            lowered = IAMPolicyStatement(
                {element: [a.lower() for a in _as_list(self._statement[element])]}
            )
            return matches(lowered, element, value.lower())
        return matches(self, element, value)

    IAMPolicyStatement._check_element_matches = check_element_matches  # type: ignore[method-assign]


def _request_params(request: Any) -> dict[str, Any]:
    """The request's parameters for the call log: its query string, a form (query protocol)
    or JSON body. Never its headers (moto's data falls back to them: credentials)."""
    params: dict[str, Any] = {}
    query = request._path.partition("?")[2]
    form = ""
    if "x-www-form-urlencoded" in str(request._headers.get("Content-Type", "")):
        form = (
            request._body.decode() if isinstance(request._body, bytes) else str(request._body or "")
        )
        if not form:  # werkzeug consumed the form: moto's data is the parsed form
            params.update(
                {
                    k: v[0] if isinstance(v, list) and len(v) == 1 else v
                    for k, v in (request._data or {}).items()
                }
            )
    for key, values in parse_qs(
        "&".join(p for p in (query, form) if p), keep_blank_values=True
    ).items():
        params[key] = values[0] if len(values) == 1 else values
    body = request._body
    if body and len(body) < 65536 and body[:1] in (b"{", "{"):
        try:
            decoded = json.loads(body)
        except ValueError:
            decoded = None
        if isinstance(decoded, dict):
            params.update(
                {k: v for k, v in decoded.items() if isinstance(v, (str, int, float, bool))}
            )
    return params


def _install_signed_payload() -> None:
    """SigV4 signs the request's payload. moto recomputes the signature over its parsed
    parameters when the body is empty, and those are the request's headers when there is no
    query and no body (moto/core/responses.py setup_class): every GET without a query string
    (GetRestApi, GetFunction, GetLayerVersion, ...) failed with SignatureDoesNotMatch. The
    payload of a request without a body is empty; a form moto parsed stays as moto signs it."""
    create = IAMRequestBase._create_aws_request

    def create_aws_request(self: Any) -> Any:
        request = create(self)
        is_form = "x-www-form-urlencoded" in str(self._headers.get("Content-Type", ""))
        if not self._body and not is_form:
            request.data = b""
        return request

    IAMRequestBase._create_aws_request = create_aws_request  # type: ignore[method-assign]


def _batch_resources(request: Any, params: dict[str, Any]) -> list[str] | None:
    """The resources AWS authorises batch:SubmitJob on: the job queue and the job definition
    (moto passes "*", which no statement naming a resource matches)."""
    if request._action.lower() != "batch:submitjob":
        return None
    backend = batch_backends[request.account_id][request._region]
    queue = backend.get_job_queue(str(params.get("jobQueue", "")))
    definition = backend.get_job_definition(str(params.get("jobDefinition", "")))
    if queue is None or definition is None:
        return None  # moto answers the missing resource itself
    return [queue.arn, definition.arn]


CALLS: list[dict[str, Any]] = []
_CALLS_LOCK = threading.Lock()


# SQS's batch APIs have no IAM action of their own: each is authorised as its single-message
# action (https://docs.aws.amazon.com/AWSSimpleQueueService/latest/SQSDeveloperGuide/sqs-api-permissions-reference.html);
# moto asks for sqs:DeleteMessageBatch etc., which no policy grants.
AUTHORIZED_AS = {
    "sqs:deletemessagebatch": "sqs:DeleteMessage",
    "sqs:sendmessagebatch": "sqs:SendMessage",
    "sqs:changemessagevisibilitybatch": "sqs:ChangeMessageVisibility",
}


def _install_call_log() -> None:
    """Resources for SubmitJob; batch APIs as their IAM action; every authorisation of a role
    session recorded."""
    check = IAMRequestBase.check_action_permitted

    def check_action_permitted(self: Any, resource: str) -> None:
        operation = self._action
        self._action = AUTHORIZED_AS.get(operation.lower(), operation)
        params = _request_params(self)
        resources = _batch_resources(self, params) or [resource]
        principal = getattr(self._access_key, "arn", "")
        decision = "allow"
        try:
            for one in resources:
                check(self, one)
        except Exception:
            decision = "deny"
            raise
        finally:
            if RECORDED_PRINCIPAL in principal:
                with _CALLS_LOCK:
                    CALLS.append({
                        "time": datetime.now().timestamp(),
                        "principal": principal,
                        "access_key": self._access_key._access_key_id,
                        "action": self._action,
                        "operation": operation,
                        "resources": resources,
                        "region": self._region,
                        "params": params,
                        "decision": decision,
                    })  # fmt: skip

    IAMRequestBase.check_action_permitted = check_action_permitted  # type: ignore[method-assign]


def _calls_handler(request: Any, full_url: str, headers: Any) -> tuple[int, dict, bytes]:
    del request, full_url, headers
    with _CALLS_LOCK:
        body = json.dumps(CALLS).encode()
    return 200, {"Content-Type": "application/json"}, body


def _install_enforced_iam() -> None:
    for cls, name in ((IAMPolicyStatement, "_check_principal"),
                      (IAMPolicyStatement, "_check_element_matches"),
                      (IAMRequestBase, "check_action_permitted"),
                      (IAMRequestBase, "_create_aws_request")):  # fmt: skip
        if not hasattr(cls, name):
            raise RuntimeError(f"moto changed: {cls.__name__}.{name} is missing")
    IAMPolicyStatement._check_principal = _check_principal  # type: ignore[method-assign]
    _install_signed_payload()
    _install_case_insensitive_actions()
    _install_call_log()
    urls.url_paths["{0}" + CALLS_PATH + "$"] = _calls_handler


def install() -> None:
    """Patch moto in this process; raise if moto's internals are not what this expects."""
    for name in ("_start_attempt", "_mark_stopped"):
        if not hasattr(Job, name):
            raise RuntimeError(f"moto changed: Job.{name} is missing; cannot track Batch jobs")
    if not hasattr(BatchSimpleBackend, "_mark_job_as_finished"):
        raise RuntimeError("moto changed: BatchSimpleBackend._mark_job_as_finished is missing")
    BatchSimpleBackend._mark_job_as_finished = _keep_submitted  # type: ignore[method-assign]
    BatchSimpleBackend.submit_job = _atomic(BatchSimpleBackend.submit_job)  # type: ignore[method-assign]
    for name in ("list_jobs", "describe_jobs"):
        setattr(BatchBackend, name, _atomic(getattr(BatchBackend, name)))
    state_manager.set_transition(JOB_MODEL, MANUAL_FOREVER)
    urls.url_paths["{0}" + STATUS_PATH + "$"] = _status_handler
    _install_binary_media_types()
    _install_no_sqs_delivery()
    _install_cheap_sqs_retention_check()
    _install_sqs_set_attributes_keeps_policy()
    _install_prefix_list_rule_descriptions()
    _install_job_definition_arn_prefix()
    _install_backend_lookup_cache()
    _install_enforced_iam()


def _moto_gateway() -> type:
    """cheroot's WSGI 1.0 gateway plus the two things moto's own request handler adds.

    - RAW_URI: moto matches S3 keys against the undecoded path (an encoded "/" in a key,
      "%2F", must not become a path separator); werkzeug's server passes it as RAW_URI,
      cheroot as REQUEST_URI.
    - the original spelling of header names with "_" (S3 metadata such as x-amz-meta-a_b),
      which WSGI folds into "-" otherwise.
    """
    from cheroot.wsgi import Gateway_10  # noqa: PLC0415
    from moto.core.request import (  # noqa: PLC0415
        PRESERVED_HEADER_NAMES_ENVIRON_KEY,
        environ_key_for_header,
        should_preserve_original_header_name,
    )

    class MotoGateway(Gateway_10):
        def get_environ(self) -> dict[str, Any]:
            environ = super().get_environ()
            environ["RAW_URI"] = environ["REQUEST_URI"]
            names = (key.decode("latin-1") for key in self.req.inheaders)
            environ[PRESERVED_HEADER_NAMES_ENVIRON_KEY] = {
                environ_key_for_header(name): name
                for name in names
                if should_preserve_original_header_name(name)
            }
            return environ

    return MotoGateway


def serve(host: str, port: int, threads: int) -> None:
    """Serve moto's application with cheroot until SIGTERM or SIGINT."""
    from cheroot.wsgi import Server  # noqa: PLC0415

    app = DomainDispatcherApplication(create_backend_app)
    # A connection idle for `timeout` seconds is closed; clients reconnect transparently.
    server = Server((host, port), app, numthreads=threads, request_queue_size=64, timeout=60)
    server.gateway = _moto_gateway()

    def stop(signum: int, frame: Any) -> None:
        del signum, frame
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    print(f"moto (inferstack launcher, cheroot) serving on http://{host}:{port}", flush=True)
    try:
        server.safe_start()
    finally:
        server.stop()


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m inferstack.local.motoserver",
        description="moto server with truthful Batch job states (see the module docstring)",
    )
    parser.add_argument("-H", "--host", default="127.0.0.1", help="address to bind")
    parser.add_argument(
        "-p", "--port", type=int, default=int(os.environ.get("MOTO_PORT", "5000")), help="port"
    )
    parser.add_argument(
        "--http-server",
        choices=("cheroot", "werkzeug"),
        default="cheroot",
        help="cheroot (keep-alive, thread pool; default) or moto's own werkzeug server",
    )
    parser.add_argument("--threads", type=int, default=10, help="cheroot worker threads")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv if argv is not None else sys.argv[1:])
    install()
    # moto builds URLs that point back at itself (SQS queue URLs, ...) from MOTO_PORT.
    os.environ.setdefault("MOTO_PORT", str(args.port))
    if args.http_server == "werkzeug":
        moto_main(["-H", args.host, "-p", str(args.port)])
    else:
        serve(args.host, args.port, max(1, args.threads))


if __name__ == "__main__":
    main()
