"""What is deployed, read from the emulator through the AWS APIs (never from Terraform files).

The local runner serves exactly what `terraform apply` created: if a route, key, variable or
mapping is missing in the emulator, it is missing locally too.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import boto3

from inferstack.local.iam import admin_keys

# arn:aws:apigateway:<region>:lambda:path/2015-03-31/functions/<function arn>/invocations
_INTEGRATION_URI = re.compile(r"functions/(arn:[^/]+)/invocations")


def client(service: str, endpoint_url: str, region: str) -> Any:
    """A client with the emulator's admin keys (the fixed emulator keys where IAM is not
    enforced): the local cloud's own reads, the CLI and the tests, never a component."""
    return boto3.client(
        service,
        endpoint_url=endpoint_url,
        region_name=region,
        **admin_keys(endpoint_url).client_kwargs(),
    )


@dataclass(frozen=True)
class FunctionConfig:
    name: str
    arn: str
    handler: str
    runtime: str
    memory_mb: int
    timeout_s: int
    environment: dict[str, str]
    layers: tuple[str, ...]
    code_sha256: str
    architectures: tuple[str, ...] = ("x86_64",)
    role: str = ""  # the execution role's ARN: the environment runs with its credentials
    version: str = "$LATEST"  # a published version's number: its own immutable configuration


@dataclass(frozen=True)
class Alias:
    """A function alias: the version it serves and the weights of additional versions
    (RoutingConfig.AdditionalVersionWeights, each in [0, 1); the primary gets the rest)."""

    name: str
    function_version: str
    weights: tuple[tuple[str, float], ...] = ()


@dataclass(frozen=True)
class Route:
    resource_id: str
    resource_path: str  # e.g. /predict or /{proxy+}
    method: str  # GET, POST, ... or ANY
    api_key_required: bool
    integration_type: str  # AWS_PROXY for Lambda proxy
    function_name: str | None
    qualifier: str | None  # alias or version the integration invokes
    # request parameters a validator requires, e.g. ("header", "Content-Type")
    required_parameters: tuple[tuple[str, str], ...] = ()
    authorization_type: str = "NONE"  # NONE, AWS_IAM, CUSTOM, COGNITO_USER_POOLS


@dataclass(frozen=True)
class ApiKey:
    id: str
    value: str
    enabled: bool


@dataclass(frozen=True)
class RestApi:
    id: str
    name: str
    stages: tuple[str, ...]
    binary_media_types: tuple[str, ...]
    routes: tuple[Route, ...]
    # per stage: the keys of the usage plans attached to (api, stage)
    stage_keys: dict[str, tuple[ApiKey, ...]] = field(default_factory=dict)


@dataclass(frozen=True)
class QueueMapping:
    uuid: str
    function_name: str
    qualifier: str | None
    queue_arn: str
    queue_url: str
    batch_size: int
    batching_window_s: int
    report_batch_item_failures: bool
    enabled: bool


@dataclass(frozen=True)
class Stack:
    region: str
    functions: dict[str, FunctionConfig]
    apis: tuple[RestApi, ...]
    queue_mappings: tuple[QueueMapping, ...]
    job_queues: tuple[str, ...]  # ARNs
    # function -> alias name -> Alias; function -> version -> that version's configuration
    aliases: dict[str, dict[str, Alias]] = field(default_factory=dict)
    versions: dict[str, dict[str, FunctionConfig]] = field(default_factory=dict)


def split_function_arn(arn: str) -> tuple[str, str | None]:
    """arn:aws:lambda:r:acct:function:name[:qualifier] -> (name, qualifier)."""
    parts = arn.split(":")
    if len(parts) >= 7 and parts[5] == "function":
        return parts[6], (parts[7] if len(parts) > 7 else None)
    return arn, None


def function_config(cfg: dict[str, Any]) -> FunctionConfig:
    """GetFunctionConfiguration's answer (of $LATEST or of a published version)."""
    return FunctionConfig(
        name=cfg["FunctionName"],
        arn=cfg["FunctionArn"],
        handler=cfg.get("Handler", ""),
        runtime=cfg.get("Runtime", ""),
        memory_mb=int(cfg.get("MemorySize", 128)),
        timeout_s=int(cfg.get("Timeout", 3)),
        environment=dict(cfg.get("Environment", {}).get("Variables", {})),
        layers=tuple(layer["Arn"] for layer in cfg.get("Layers", [])),
        code_sha256=cfg.get("CodeSha256", ""),
        architectures=tuple(cfg.get("Architectures", ["x86_64"])),
        role=cfg.get("Role", ""),
        version=str(cfg.get("Version") or "$LATEST"),
    )


def read_functions(lam: Any) -> dict[str, FunctionConfig]:
    functions: dict[str, FunctionConfig] = {}
    for page in lam.get_paginator("list_functions").paginate():
        for summary in page["Functions"]:
            cfg = lam.get_function_configuration(FunctionName=summary["FunctionName"])
            functions[cfg["FunctionName"]] = function_config(cfg)
    return functions


def read_aliases(lam: Any, function_name: str) -> dict[str, Alias]:
    """The function's aliases with their routing configuration (ListAliases)."""
    aliases: dict[str, Alias] = {}
    for page in lam.get_paginator("list_aliases").paginate(FunctionName=function_name):
        for alias in page["Aliases"]:
            weights = (alias.get("RoutingConfig") or {}).get("AdditionalVersionWeights") or {}
            aliases[alias["Name"]] = Alias(
                name=alias["Name"],
                function_version=str(alias["FunctionVersion"]),
                weights=tuple(sorted((str(v), float(w)) for v, w in weights.items())),
            )
    return aliases


def read_version(lam: Any, function_name: str, version: str) -> FunctionConfig:
    """A published version's configuration (GetFunctionConfiguration with Qualifier):
    versions are immutable, so what is read once stays true."""
    cfg = lam.get_function_configuration(FunctionName=function_name, Qualifier=version)
    return function_config(cfg)


def read_alias_versions(
    lam: Any,
    functions: dict[str, FunctionConfig],
    known: dict[str, dict[str, FunctionConfig]] | None = None,
) -> tuple[dict[str, dict[str, Alias]], dict[str, dict[str, FunctionConfig]]]:
    """Every function's aliases and the configuration of each version they route to
    (versions already in `known` are not read again)."""
    aliases: dict[str, dict[str, Alias]] = {}
    versions: dict[str, dict[str, FunctionConfig]] = {}
    for name in functions:
        aliases[name] = read_aliases(lam, name)
        versions[name] = dict((known or {}).get(name, {}))
        for alias in aliases[name].values():
            for version in (alias.function_version, *(v for v, _ in alias.weights)):
                if version != "$LATEST" and version not in versions[name]:
                    versions[name][version] = read_version(lam, name, version)
    return aliases, versions


def _required_parameters(apigw: Any, api_id: str, method: dict) -> tuple[tuple[str, str], ...]:
    """Parameters without which API Gateway rejects a request (a parameter validator)."""
    validator_id = method.get("requestValidatorId")
    if not validator_id:
        return ()
    validator = apigw.get_request_validator(restApiId=api_id, requestValidatorId=validator_id)
    if not validator.get("validateRequestParameters"):
        return ()
    required = []
    for name, is_required in (method.get("requestParameters") or {}).items():
        parts = name.split(".", 3)  # method.request.<header|querystring|path>.<name>
        if is_required and len(parts) == 4:
            required.append((parts[2], parts[3]))
    return tuple(sorted(required))


def _routes(apigw: Any, api_id: str) -> tuple[Route, ...]:
    routes: list[Route] = []
    for page in apigw.get_paginator("get_resources").paginate(restApiId=api_id):
        for resource in page["items"]:
            for method in resource.get("resourceMethods", {}) or {}:
                detail = apigw.get_method(
                    restApiId=api_id, resourceId=resource["id"], httpMethod=method
                )
                integration = detail.get("methodIntegration") or {}
                function_name = qualifier = None
                match = _INTEGRATION_URI.search(integration.get("uri", ""))
                if match:
                    function_name, qualifier = split_function_arn(match.group(1))
                routes.append(
                    Route(
                        resource_id=resource["id"],
                        resource_path=resource["path"],
                        method=method,
                        api_key_required=bool(detail.get("apiKeyRequired", False)),
                        integration_type=integration.get("type", ""),
                        function_name=function_name,
                        qualifier=qualifier,
                        required_parameters=_required_parameters(apigw, api_id, detail),
                        authorization_type=detail.get("authorizationType") or "NONE",
                    )
                )
    return tuple(routes)


def _stage_keys(apigw: Any, api_id: str, stages: tuple[str, ...]) -> dict[str, tuple[ApiKey, ...]]:
    keys: dict[str, dict[str, ApiKey]] = {stage: {} for stage in stages}
    for plan in apigw.get_usage_plans().get("items", []):
        attached = [s["stage"] for s in plan.get("apiStages", []) if s.get("apiId") == api_id]
        if not attached:
            continue
        for plan_key in apigw.get_usage_plan_keys(usagePlanId=plan["id"]).get("items", []):
            key = apigw.get_api_key(apiKey=plan_key["id"], includeValue=True)
            api_key = ApiKey(id=key["id"], value=key.get("value", ""), enabled=key["enabled"])
            for stage in attached:
                keys.setdefault(stage, {})[api_key.id] = api_key
    return {stage: tuple(found.values()) for stage, found in keys.items()}


def read_apis(apigw: Any) -> tuple[RestApi, ...]:
    apis: list[RestApi] = []
    for api in apigw.get_rest_apis().get("items", []):
        stages = tuple(s["stageName"] for s in apigw.get_stages(restApiId=api["id"])["item"])
        apis.append(
            RestApi(
                id=api["id"],
                name=api.get("name", ""),
                stages=stages,
                binary_media_types=tuple(api.get("binaryMediaTypes", []) or []),
                routes=_routes(apigw, api["id"]),
                stage_keys=_stage_keys(apigw, api["id"], stages),
            )
        )
    return tuple(apis)


def read_queue_mappings(lam: Any, sqs: Any) -> tuple[QueueMapping, ...]:
    mappings: list[QueueMapping] = []
    for page in lam.get_paginator("list_event_source_mappings").paginate():
        for esm in page["EventSourceMappings"]:
            source = esm.get("EventSourceArn", "")
            if ":sqs:" not in source:
                continue
            account, name = source.split(":")[4], source.split(":")[5]
            url = sqs.get_queue_url(QueueName=name, QueueOwnerAWSAccountId=account)["QueueUrl"]
            function_name, qualifier = split_function_arn(esm["FunctionArn"])
            mappings.append(
                QueueMapping(
                    uuid=esm["UUID"],
                    function_name=function_name,
                    qualifier=qualifier,
                    queue_arn=source,
                    queue_url=url,
                    batch_size=int(esm.get("BatchSize", 10)),
                    batching_window_s=int(esm.get("MaximumBatchingWindowInSeconds", 0)),
                    report_batch_item_failures="ReportBatchItemFailures"
                    in (esm.get("FunctionResponseTypes") or []),
                    enabled=esm.get("State", "Enabled") in ("Enabled", "Enabling", "Creating"),
                )
            )
    return tuple(mappings)


def read_job_queues(batch: Any) -> tuple[str, ...]:
    return tuple(q["jobQueueArn"] for q in batch.describe_job_queues().get("jobQueues", []))


def discover(endpoint_url: str, region: str) -> Stack:
    lam = client("lambda", endpoint_url, region)
    functions = read_functions(lam)
    aliases, versions = read_alias_versions(lam, functions)
    return Stack(
        region=region,
        functions=functions,
        apis=read_apis(client("apigateway", endpoint_url, region)),
        queue_mappings=read_queue_mappings(lam, client("sqs", endpoint_url, region)),
        job_queues=read_job_queues(client("batch", endpoint_url, region)),
        aliases=aliases,
        versions=versions,
    )
