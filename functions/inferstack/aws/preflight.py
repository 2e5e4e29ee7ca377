"""``inferstack aws preflight``: what a first ``terraform apply`` would hit in this account.

Read-only calls with the caller's credentials, one small function per check. Each returns a
CheckResult (PASS/WARN/FAIL, what was found, what to do); a call that is refused or fails
makes its check a WARN saying so instead of stopping the others. ``CHECKS`` lists the IAM
actions every check calls (the README's pre-flight section lists the same).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from inferstack.aws.ecrimage import (
    DOCKER_ARCHITECTURE,
    Fetch,
    ImageNotFoundError,
    fetch_https,
    image_platforms,
    parse_image_uri,
)
from inferstack.aws.report import CheckResult, Report, Status
from inferstack.aws.settings import StackSettings

# Lambda keeps this much of the account's concurrency unreserved: "You can reserve up to the
# Unreserved account concurrency value minus 100" (Lambda developer guide, reserved concurrency).
MIN_UNRESERVED_CONCURRENCY = 100
# New accounts get reduced Lambda quotas, memory capped at 3008 MB among them; no API reports
# the memory cap, the default concurrency quota of an established account is 1,000.
NEW_ACCOUNT_MAX_MEMORY_MB = 3008
DEFAULT_CONCURRENT_EXECUTIONS = 1000
LAMBDA_CONCURRENCY_QUOTA = "L-B99A9384"  # Lambda "Concurrent executions"
FARGATE_ON_DEMAND_VCPU_QUOTA = "L-3032A538"  # "Fargate On-Demand vCPU resource count"
FARGATE_SPOT_VCPU_QUOTA = "L-36FBB829"  # "Fargate Spot vCPU resource count"

# Error codes of a refused call (IAM, SCP, or an unauthorised operation in EC2's words).
ACCESS_DENIED_CODES = ("AccessDenied", "UnauthorizedOperation")

ClientFactory = Callable[..., Any]  # (service, region=None) -> boto3 client


class PreflightError(RuntimeError):
    """The checks cannot start at all (no credentials, expired token): one line, exit 2."""


class SessionClients:
    """boto3 clients of one session (profile, region), created once per service and region."""

    def __init__(self, session: Any) -> None:
        self.session = session
        self._clients: dict[tuple[str, str | None], Any] = {}

    def __call__(self, service: str, region: str | None = None) -> Any:
        from botocore.config import Config  # noqa: PLC0415

        key = (service, region)
        if key not in self._clients:
            config = Config(retries={"mode": "standard", "total_max_attempts": 4})
            self._clients[key] = self.session.client(service, region_name=region, config=config)
        return self._clients[key]


@dataclass
class Context:
    """What every check reads: the stack's settings, the account, clients, cached answers."""

    settings: StackSettings
    account_id: str
    clients: ClientFactory
    fetch: Fetch = fetch_https
    _cache: dict[str, Any] = field(default_factory=dict)

    def lambda_limits(self) -> dict[str, int]:
        if "lambda" not in self._cache:
            settings = self.clients("lambda").get_account_settings()
            self._cache["lambda"] = dict(settings["AccountLimit"])
        return dict(self._cache["lambda"])


# ----------------------------------------------------------------------------- Lambda


def _pool_demand(reserved: int, provisioned: int) -> int:
    """Concurrency a function takes out of the account's unreserved pool.

    Reserved concurrency (>= 0) is taken whole; without a reservation (-1), provisioned
    concurrency comes out of the unreserved pool and the same minimum applies.
    """
    return reserved if reserved >= 0 else max(provisioned, 0)


def _current_reservation(ctx: Context, function_name: str) -> int:
    """The function's reserved concurrency if it exists already (a re-run after an apply)."""
    client = ctx.clients("lambda")
    try:
        response = client.get_function_concurrency(FunctionName=function_name)
    except client.exceptions.ResourceNotFoundException:
        return 0
    return int(response.get("ReservedConcurrentExecutions") or 0)


def check_lambda_concurrency(ctx: Context) -> CheckResult:
    s = ctx.settings
    limits = ctx.lambda_limits()
    total = int(limits["ConcurrentExecutions"])
    unreserved = int(limits["UnreservedConcurrentExecutions"])
    wanted = {
        s.predict_function_name: _pool_demand(
            s.predict_reserved_concurrency, s.provisioned_concurrency
        ),
        s.dispatcher_function_name: _pool_demand(s.dispatcher_reserved_concurrency, 0),
    }
    demand = sum(wanted.values())
    # Reservations the stack already holds are counted in `unreserved` and come back first.
    held = sum(_current_reservation(ctx, name) for name, n in wanted.items() if n > 0)
    left = unreserved + held - demand
    data = {
        "concurrent_executions": total,
        "unreserved_concurrent_executions": unreserved,
        "stack_reserves": wanted,
        "stack_holds_already": held,
        "unreserved_after_apply": left,
    }
    detail = (
        f"account limit {total}, unreserved {unreserved}; the stack reserves {demand} "
        f"(predict {wanted[s.predict_function_name]}, dispatcher "
        f"{wanted[s.dispatcher_function_name]}), leaving {left} unreserved"
    )
    if demand == 0 or left >= MIN_UNRESERVED_CONCURRENCY:
        return CheckResult("lambda-concurrency", Status.PASS, detail, data=data)
    needed = total + (MIN_UNRESERVED_CONCURRENCY - left)
    remedies = [
        text
        for text, value in (
            ("predict = { reserved_concurrency = -1 }", s.predict_reserved_concurrency),
            ("provisioned_concurrency = 0", s.provisioned_concurrency),
            (
                "the batch module's dispatcher.reserved_concurrency = -1",
                s.dispatcher_reserved_concurrency,
            ),
        )
        if value > 0
    ]
    fix = (
        f"Reserve nothing ({', '.join(remedies)}), or ask for 'Concurrent executions' >= "
        f"{needed}: aws service-quotas request-service-quota-increase --service-code lambda "
        f"--quota-code {LAMBDA_CONCURRENCY_QUOTA} --desired-value {needed} --region {s.region}"
    )
    return CheckResult(
        "lambda-concurrency",
        Status.FAIL,
        detail + f" (Lambda requires {MIN_UNRESERVED_CONCURRENCY})",
        fix,
        data,
    )


def check_lambda_memory(ctx: Context) -> CheckResult:
    s = ctx.settings
    sizes = {"predict": s.predict_memory_size, "dispatcher": s.dispatcher_memory_size}
    name, biggest = max(sizes.items(), key=lambda item: item[1])
    if biggest <= NEW_ACCOUNT_MAX_MEMORY_MB:
        detail = (
            f"largest function memory {biggest} MB ({name}): within the "
            f"{NEW_ACCOUNT_MAX_MEMORY_MB} MB every account may set"
        )
        return CheckResult("lambda-memory", Status.PASS, detail, data={"memory_mb": sizes})
    total = int(ctx.lambda_limits()["ConcurrentExecutions"])
    data = {"memory_mb": sizes, "concurrent_executions": total}
    fix = (
        f"Set {name}.memory_size = {NEW_ACCOUNT_MAX_MEMORY_MB} (or less) until AWS raises the "
        "account's Lambda quotas (it does so with use, or on a support request); the apply "
        f"error reads \"'MemorySize' ... less than or equal to {NEW_ACCOUNT_MAX_MEMORY_MB}\""
    )
    if total < DEFAULT_CONCURRENT_EXECUTIONS:
        detail = (
            f"{name} asks for {biggest} MB, but this account has the reduced Lambda quotas of "
            f"a new account (concurrency limit {total} < {DEFAULT_CONCURRENT_EXECUTIONS}), "
            f"which cap memory at {NEW_ACCOUNT_MAX_MEMORY_MB} MB"
        )
        return CheckResult("lambda-memory", Status.FAIL, detail, fix, data)
    detail = (
        f"{name} asks for {biggest} MB; no API reports the account's memory cap (3008 MB in "
        "new accounts); the concurrency limit looks like an established account's"
    )
    return CheckResult("lambda-memory", Status.WARN, detail, fix, data)


# ----------------------------------------------------------------------------- Fargate


def _service_quota(ctx: Context, service: str, code: str) -> dict[str, Any]:
    """The applied quota, or AWS's default when the account has no applied value recorded."""
    client = ctx.clients("service-quotas")
    try:
        return dict(client.get_service_quota(ServiceCode=service, QuotaCode=code)["Quota"])
    except client.exceptions.NoSuchResourceException:
        return dict(
            client.get_aws_default_service_quota(ServiceCode=service, QuotaCode=code)["Quota"]
        )


def check_fargate_vcpu(ctx: Context) -> CheckResult:
    s = ctx.settings
    code = FARGATE_SPOT_VCPU_QUOTA if s.batch_use_spot else FARGATE_ON_DEMAND_VCPU_QUOTA
    quota = _service_quota(ctx, "fargate", code)
    value = float(quota["Value"])
    name = quota.get("QuotaName") or code
    data = {
        "quota_code": code,
        "quota": value,
        "max_vcpus": s.batch_max_vcpus,
        "job_vcpu": s.batch_job_vcpu,
    }
    detail = f"{name} ({code}) is {value:g}; batch.compute.max_vcpus is {s.batch_max_vcpus}"
    increase = (
        f"aws service-quotas request-service-quota-increase --service-code fargate "
        f"--quota-code {code} --desired-value {s.batch_max_vcpus} --region {s.region}"
    )
    if value < s.batch_job_vcpu:
        detail += f": not one child ({s.batch_job_vcpu:g} vCPU) can start"
        return CheckResult("fargate-vcpu", Status.FAIL, detail, f"Ask for more: {increase}", data)
    if value < s.batch_max_vcpus:
        children = math.floor(value / s.batch_job_vcpu)
        detail += (
            f": at most {children} children of {s.batch_job_vcpu:g} vCPU run at once (the quota "
            "is shared with every Fargate task of the account); the rest wait in RUNNABLE"
        )
        fix = f"Set batch.compute.max_vcpus = {value:g}, or ask for more: {increase}"
        return CheckResult("fargate-vcpu", Status.WARN, detail, fix, data)
    return CheckResult("fargate-vcpu", Status.PASS, detail, data=data)


# ----------------------------------------------------------------------------- API Gateway


def check_apigateway_logs_role(ctx: Context) -> CheckResult:
    s = ctx.settings
    role = ctx.clients("apigateway").get_account().get("cloudwatchRoleArn")
    data = {"cloudwatch_role_arn": role, "stack_sets_role": s.create_api_gateway_account}
    switch = "create_api_gateway_account"
    if role and s.create_api_gateway_account:
        detail = (
            f"the region's API Gateway CloudWatch Logs role is already {role}; with "
            f"{switch} = true the stack replaces this account-wide setting, which every REST API "
            "of the region uses"
        )
        fix = f"Set {switch} = false to keep the existing role"
        return CheckResult("apigateway-logs-role", Status.WARN, detail, fix, data)
    if role:
        detail = f"the region's API Gateway CloudWatch Logs role is {role}"
        return CheckResult("apigateway-logs-role", Status.PASS, detail, data=data)
    if s.create_api_gateway_account:
        detail = f"no API Gateway CloudWatch Logs role in {s.region}; the stack sets one"
        return CheckResult("apigateway-logs-role", Status.PASS, detail, data=data)
    detail = (
        f"no API Gateway CloudWatch Logs role in {s.region} and {switch} = false: creating the "
        "stage fails ('CloudWatch Logs role ARN must be set in account settings')"
    )
    fix = (
        f"Set {switch} = true, or set a role once for the region: aws apigateway update-account "
        "--patch-operations op=replace,path=/cloudwatchRoleArn,value=ROLE_ARN "
        f"--region {s.region} (a role trusting apigateway.amazonaws.com with the managed policy "
        "AmazonAPIGatewayPushToCloudWatchLogs)"
    )
    return CheckResult("apigateway-logs-role", Status.FAIL, detail, fix, data)


# ----------------------------------------------------------------------------- zones

# Zone IDs where AWS documents a service the stack runs in the VPC as unavailable, as the
# network module excludes them by default (modules/network/main.tf, known_unsupported_zone_ids).
KNOWN_UNSUPPORTED_ZONE_IDS: dict[str, tuple[str, ...]] = {
    "us-east-1": ("use1-az3",),
    "us-west-1": ("usw1-az2",),
    "ap-northeast-1": ("apne1-az3",),
}


def _zone_number(zone_id: str) -> int:
    return int(zone_id.rsplit("-az", 1)[1])


def _endpoint_zone_ids(ec2: Any, services: list[str], ids_by_name: dict[str, str]) -> dict:
    """Zone IDs each interface endpoint service is offered in (None: service not offered)."""
    offered: dict[str, set[str] | None] = dict.fromkeys(services)
    paginator = ec2.get_paginator("describe_vpc_endpoint_services")
    for service in services:
        try:
            pages = list(paginator.paginate(ServiceNames=[service]))
        except ec2.exceptions.ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "InvalidServiceName":
                continue
            raise
        for page in pages:
            for detail in page.get("ServiceDetails", []):
                types = {t.get("ServiceType") for t in detail.get("ServiceType", [])}
                if detail.get("ServiceName") != service or "Interface" not in types:
                    continue
                zone_ids = detail.get("AvailabilityZoneIds") or [
                    ids_by_name[n] for n in detail.get("AvailabilityZones", []) if n in ids_by_name
                ]
                offered[service] = (offered[service] or set()) | set(zone_ids)
    return offered


def check_availability_zones(ctx: Context) -> CheckResult:
    """The zone IDs the network module would choose, or why it cannot choose enough."""
    s = ctx.settings
    ec2 = ctx.clients("ec2")
    zones = [
        z
        for z in ec2.describe_availability_zones()["AvailabilityZones"]
        if z.get("State") == "available"
        and z.get("ZoneType", "availability-zone") == "availability-zone"
    ]
    ids_by_name = {z["ZoneName"]: z["ZoneId"] for z in zones}
    all_ids = sorted(ids_by_name.values(), key=_zone_number)
    excluded = (
        s.excluded_zone_ids
        if s.excluded_zone_ids is not None
        else KNOWN_UNSUPPORTED_ZONE_IDS.get(s.region, ())
    )
    endpoints = list(s.endpoint_services) if s.create_vpc_endpoints else []
    services = [f"com.amazonaws.{s.region}.{name}" for name in endpoints]
    offered = _endpoint_zone_ids(ec2, services, ids_by_name) if services else {}
    eligible = [
        z
        for z in all_ids
        if z not in excluded and all(z in (ids or set()) for ids in offered.values())
    ]
    data: dict[str, Any] = {
        "zone_ids": all_ids,
        "zone_names": ids_by_name,
        "excluded_zone_ids": list(excluded),
        "endpoint_zone_ids": {k: sorted(v) if v is not None else None for k, v in offered.items()},
        "eligible_zone_ids": eligible,
    }
    missing = [name for name, zone_ids in offered.items() if zone_ids is None]
    if missing:
        detail = f"interface endpoint service(s) not offered in {s.region}: {', '.join(missing)}"
        fix = "Remove them from network.interface_endpoints (or deploy in another region)"
        return CheckResult("availability-zones", Status.FAIL, detail, fix, data)
    what = f"every interface endpoint ({', '.join(endpoints)})" if endpoints else "the stack"
    if not s.create_vpc:
        return _check_subnet_zones(ctx, set(eligible), set(excluded), what, data)
    chosen = list(s.availability_zone_ids) or eligible[: s.az_count]
    data["chosen_zone_ids"] = chosen
    detail = (
        f"zones {', '.join(all_ids)}"
        + (f" ({', '.join(excluded)} excluded)" if excluded else "")
        + f"; {len(eligible)} offer {what}; the VPC's subnets go to {', '.join(chosen) or 'none'}"
    )
    wrong = [z for z in s.availability_zone_ids if z not in eligible]
    if wrong:
        fix = f"Choose network.availability_zone_ids among {', '.join(eligible) or '(none)'}"
        detail += f": {', '.join(wrong)} not eligible"
        return CheckResult("availability-zones", Status.FAIL, detail, fix, data)
    if len(chosen) >= s.az_count:
        return CheckResult("availability-zones", Status.PASS, detail, data=data)
    fix = (
        f"Set network.az_count = {len(eligible)}, or remove from network.interface_endpoints "
        "the services offered in fewer zones (see --json: endpoint_zone_ids)"
    )
    detail += f", fewer than network.az_count = {s.az_count}"
    return CheckResult("availability-zones", Status.FAIL, detail, fix, data)


def _check_subnet_zones(
    ctx: Context, eligible: set[str], excluded: set[str], what: str, data: dict[str, Any]
) -> CheckResult:
    """Bring-your-own subnets: none in an excluded zone; a zone without an endpoint warns."""
    subnet_ids = list(ctx.settings.subnet_ids)
    if not subnet_ids:
        detail = "network.create_vpc = false but no network.subnet_ids to check"
        return CheckResult("availability-zones", Status.WARN, detail, "Set network.subnet_ids")
    subnets = ctx.clients("ec2").describe_subnets(SubnetIds=subnet_ids)["Subnets"]
    zone_of = {sn["SubnetId"]: sn["AvailabilityZoneId"] for sn in subnets}
    data["subnet_zone_ids"] = zone_of
    detail = "subnets in zones " + ", ".join(f"{k} ({v})" for k, v in sorted(zone_of.items()))
    unsupported = sorted(sid for sid, zone in zone_of.items() if zone in excluded)
    if unsupported:
        detail += (
            f": {', '.join(unsupported)} lie(s) in a zone where Fargate or Lambda is not offered"
        )
        fix = f"Use subnets in other zones than {', '.join(sorted(excluded))}"
        return CheckResult("availability-zones", Status.FAIL, detail, fix, data)
    lacking = sorted(sid for sid, zone in zone_of.items() if zone not in eligible)
    if lacking:
        detail += (
            f": the zone(s) of {', '.join(lacking)} lack {what}; their traffic to those "
            "endpoints crosses zones"
        )
        fix = f"Prefer subnets in {', '.join(sorted(eligible)) or '(no zone offers them all)'}"
        return CheckResult("availability-zones", Status.WARN, detail, fix, data)
    detail += f": each offers {what}"
    return CheckResult("availability-zones", Status.PASS, detail, data=data)


# ----------------------------------------------------------------------------- worker image


def check_worker_image(ctx: Context) -> CheckResult:
    s = ctx.settings
    uri = s.worker_image_uri(ctx.account_id)
    platform = f"linux/{DOCKER_ARCHITECTURE[s.architecture]}"
    data: dict[str, Any] = {"image": uri, "wanted_platform": platform}
    push = (
        "Build and push it: the commands of `terraform output -raw worker_image_push_commands`"
        if s.worker_image is None
        else f"Build and push it for {platform}: docker build --platform {platform} "
        f"-f functions/inferstack_worker/Dockerfile -t {uri} . && docker push {uri}"
    )
    image = parse_image_uri(uri)
    if image is None:
        detail = f"{uri} is not in a private ECR registry; its platform is not checked"
        fix = f"Make sure it offers {platform} (docker buildx imagetools inspect {uri})"
        return CheckResult("worker-image", Status.WARN, detail, fix, data)
    try:
        found = image_platforms(ctx.clients("ecr", image.region), image, ctx.fetch)
    except ImageNotFoundError as exc:
        if exc.missing == "repository" and s.worker_image is None:
            detail = (
                f"repository {image.repository} does not exist yet; the stack creates it and "
                "every batch child fails to start until the image is pushed"
            )
            return CheckResult("worker-image", Status.WARN, detail, f"After apply: {push}", data)
        return CheckResult("worker-image", Status.FAIL, f"{uri}: {exc}", push, data)
    data.update(digest=found.digest, media_type=found.media_type, platforms=list(found.platforms))
    offered = ", ".join(found.platforms) or "no platform"
    if any(p == platform or p.startswith(f"{platform}/") for p in found.platforms):
        detail = f"{uri} ({found.digest[:19]}) offers {offered}"
        return CheckResult("worker-image", Status.PASS, detail, data=data)
    detail = (
        f"{uri} is built for {offered}, but the job definition asks Fargate for {s.architecture}: "
        "every child would fail with 'exec format error'"
    )
    fix = f"{push} (or set architecture to the image's)"
    return CheckResult("worker-image", Status.FAIL, detail, fix, data)


# ----------------------------------------------------------------------------- running


@dataclass(frozen=True)
class Check:
    name: str
    run: Callable[[Context], CheckResult]
    actions: tuple[str, ...]  # IAM actions the check calls


CHECKS: tuple[Check, ...] = (
    Check(
        "lambda-concurrency",
        check_lambda_concurrency,
        ("lambda:GetAccountSettings", "lambda:GetFunctionConcurrency"),
    ),
    Check("lambda-memory", check_lambda_memory, ("lambda:GetAccountSettings",)),
    Check(
        "fargate-vcpu",
        check_fargate_vcpu,
        ("servicequotas:GetServiceQuota", "servicequotas:GetAWSDefaultServiceQuota"),
    ),
    Check("apigateway-logs-role", check_apigateway_logs_role, ("apigateway:GET",)),
    Check(
        "availability-zones",
        check_availability_zones,
        (
            "ec2:DescribeAvailabilityZones",
            "ec2:DescribeVpcEndpointServices",
            "ec2:DescribeSubnets",
        ),
    ),
    Check("worker-image", check_worker_image, ("ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer")),
)


def _not_checked(check: Check, exc: Exception) -> CheckResult:
    """A refused or failed call: the check says so instead of stopping the others."""
    response = getattr(exc, "response", None)
    code = ""
    if isinstance(response, dict):
        error = response.get("Error", {})
        code = str(error.get("Code", "error"))
        operation = getattr(exc, "operation_name", "call")
        reason = f"{code} on {operation}: {error.get('Message', '')}".strip()
    else:
        reason = f"{type(exc).__name__}: {exc}"
    detail = f"not checked: {reason.rstrip(': ')}"
    if code.startswith(ACCESS_DENIED_CODES):
        fix = f"Allow {', '.join(check.actions)} to the caller, or check by hand"
    else:
        fix = "Run it again later, or check by hand"
    return CheckResult(check.name, Status.WARN, detail, fix, {"error": reason})


def caller_account(clients: ClientFactory) -> str:
    """The caller's account id; PreflightError when there are no usable credentials."""
    from botocore.exceptions import BotoCoreError, ClientError  # noqa: PLC0415

    try:
        return str(clients("sts").get_caller_identity()["Account"])
    except ClientError as exc:
        error = exc.response.get("Error", {})
        raise PreflightError(
            f"AWS credentials rejected ({error.get('Code')}): {error.get('Message', '')}"
        ) from exc
    except BotoCoreError as exc:
        raise PreflightError(f"no usable AWS credentials: {exc}") from exc


def run_preflight(
    settings: StackSettings,
    clients: ClientFactory,
    *,
    fetch: Fetch = fetch_https,
    checks: tuple[Check, ...] = CHECKS,
) -> Report:
    account_id = caller_account(clients)
    ctx = Context(settings=settings, account_id=account_id, clients=clients, fetch=fetch)
    results = []
    for check in checks:
        try:
            results.append(check.run(ctx))
        except Exception as exc:  # refused, throttled, unreachable, unexpected: one line each
            results.append(_not_checked(check, exc))
    return Report(
        account_id=account_id,
        region=settings.region,
        results=tuple(results),
        settings=settings.to_dict(),
    )
