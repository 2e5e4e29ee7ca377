"""``inferstack aws preflight``: stack settings from tfvars, each check, the command.

What moto implements runs against moto in-process (API Gateway GetAccount, EC2 zones,
endpoint services and subnets, ECR BatchGetImage, STS). What it does not (Lambda
GetAccountSettings, Service Quotas for fargate, ECR GetDownloadUrlForLayer) is answered by a
botocore Stubber: those tests say "stubbed" in their names.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import boto3
import hcl2
import pytest
from botocore.stub import Stubber
from hcl2.utils import SerializationOptions
from inferstack import __version__
from inferstack.aws.ecrimage import parse_image_uri
from inferstack.aws.preflight import (
    CHECKS,
    KNOWN_UNSUPPORTED_ZONE_IDS,
    Context,
    check_apigateway_logs_role,
    check_availability_zones,
    check_fargate_vcpu,
    check_lambda_concurrency,
    check_lambda_memory,
    check_worker_image,
    run_preflight,
)
from inferstack.aws.report import CheckResult, Status
from inferstack.aws.settings import SOURCES, SettingsError, StackSettings
from inferstack.cli import main
from moto import mock_aws

REGION = "eu-west-1"
ACCOUNT = "123456789012"  # moto's
REPO_ROOT = Path(__file__).resolve().parents[2]
HCL = SerializationOptions(
    with_comments=False, strip_string_quotes=True, explicit_blocks=False, preserve_heredocs=False
)

OCI_INDEX = "application/vnd.oci.image.index.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": REGION,
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    with mock_aws():
        yield


class Clients:
    """The check's client factory: stubbed clients where given, moto's otherwise."""

    def __init__(self, region: str = REGION, **stubbed: Any) -> None:
        self.region = region
        self.stubbed = {name.replace("_", "-"): client for name, client in stubbed.items()}
        self.made: dict[tuple[str, str | None], Any] = {}

    def __call__(self, service: str, region: str | None = None) -> Any:
        if service in self.stubbed:
            return self.stubbed[service]
        key = (service, region)
        if key not in self.made:
            self.made[key] = boto3.client(service, region_name=region or self.region)
        return self.made[key]


def context(
    clients: Clients | None = None,
    fetch: Callable[[str], bytes] | None = None,
    **settings: Any,
) -> Context:
    ctx = Context(
        settings=StackSettings(**settings),
        account_id=ACCOUNT,
        clients=clients or Clients(settings.get("region", REGION)),
    )
    if fetch is not None:
        ctx.fetch = fetch
    return ctx


def stubbed(service: str) -> tuple[Any, Stubber]:
    client = boto3.client(service, region_name=REGION)
    return client, Stubber(client)


def account_settings(total: int, unreserved: int) -> dict[str, Any]:
    return {
        "AccountLimit": {
            "TotalCodeSize": 80530636800,
            "CodeSizeUnzipped": 262144000,
            "CodeSizeZipped": 52428800,
            "ConcurrentExecutions": total,
            "UnreservedConcurrentExecutions": unreserved,
        },
        "AccountUsage": {"TotalCodeSize": 0, "FunctionCount": 0},
    }


def lambda_stub(total: int, unreserved: int, held: dict[str, int] | None = None) -> Any:
    """Lambda answering GetAccountSettings, then GetFunctionConcurrency per stack function."""
    client, stub = stubbed("lambda")
    stub.add_response("get_account_settings", account_settings(total, unreserved), {})
    for name in ("inferstack-predict", "inferstack-dispatcher"):
        if held is None:
            continue
        if name in held:
            response = {"ReservedConcurrentExecutions": held[name]}
            stub.add_response("get_function_concurrency", response, {"FunctionName": name})
        else:
            stub.add_client_error(
                "get_function_concurrency",
                service_error_code="ResourceNotFoundException",
                http_status_code=404,
                expected_params={"FunctionName": name},
            )
    stub.activate()
    return client


# ----------------------------------------------------------------------------- settings


def _tf_variables(relative: str) -> dict[str, dict[str, Any]]:
    data = hcl2.loads((REPO_ROOT / relative).read_text(encoding="utf-8"), serialization_options=HCL)
    return {name: body for block in data["variable"] for name, body in block.items()}


def _optional_default(type_expr: str, attribute: str) -> Any:
    """The default of ``attribute = optional(type[, default])`` inside an object type."""
    kind = r"(?:\w+\(\w+\)|\w+)"  # number, list(string), ...
    pattern = rf"\b{attribute}\s*=\s*optional\(\s*{kind}\s*(?:,\s*([^()]+?))?\s*\)"
    match = re.search(pattern, type_expr)
    assert match, f"no optional() attribute {attribute} in {type_expr}"
    literal = match.group(1)
    value = None if literal in (None, "null") else json.loads(literal)
    return tuple(value) if isinstance(value, list) else value


def terraform_default(file: str, variable: str, attribute: str | None) -> Any:
    body = _tf_variables(file)[variable]
    if attribute is None:
        value = body.get("default")
        return tuple(value) if isinstance(value, list) else value
    return _optional_default(body["type"], attribute)


def test_every_setting_names_its_source() -> None:
    assert set(SOURCES) == {f.name for f in dataclasses.fields(StackSettings)}


@pytest.mark.parametrize("name", sorted(SOURCES))
def test_setting_defaults_are_terraforms(name: str) -> None:
    """A default changed in a .tf file (or a variable renamed) fails here until synced."""
    expected = terraform_default(*SOURCES[name].default)
    assert getattr(StackSettings(), name) == expected


@pytest.mark.parametrize("name", sorted(n for n, s in SOURCES.items() if s.tfvars))
def test_tfvars_paths_are_inputs_of_the_root_stack(name: str) -> None:
    path = SOURCES[name].tfvars
    assert path is not None
    root = _tf_variables("terraform/variables.tf")
    assert path[0] in root, f"{path[0]} is not a variable of terraform/"
    type_expr = root[path[0]].get("type", "")
    for attribute in path[1:]:
        assert re.search(rf"\b{attribute}\s*=", type_expr), f"{'.'.join(path)} not in the type"


def test_default_worker_tag_is_the_version_the_root_stack_reads() -> None:
    """terraform/main.tf tags the worker image with pyproject.toml's version by default."""
    pyproject = (REPO_ROOT / "pyproject.toml").read_text(encoding="utf-8")
    match = re.search(r'(?m)^version\s*=\s*"([^"]+)"', pyproject)
    assert match and match.group(1) == __version__
    uri = StackSettings().worker_image_uri(ACCOUNT)
    assert uri == f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com/inferstack-worker:{__version__}"


def _locals(relative: str, name: str) -> Any:
    text = (REPO_ROOT / relative).read_text(encoding="utf-8")
    blocks = hcl2.loads(text, serialization_options=HCL)["locals"]
    return next(b[name] for b in blocks if name in b)


def test_default_endpoints_are_those_of_the_root_stacks_vpc_components() -> None:
    components = _locals("terraform/main.tf", "vpc_components").values()
    needed = [e for c in components if c["in_vpc"] for e in c["endpoints"]]
    assert StackSettings().endpoint_services == tuple(dict.fromkeys(needed))
    more = StackSettings(additional_interface_endpoints=("sts", "logs"))
    assert more.endpoint_services == (*dict.fromkeys(needed), "sts")
    assert StackSettings(interface_endpoints=("kms",)).endpoint_services == ("kms",)


def test_excluded_zones_are_the_network_modules() -> None:
    known = _locals("modules/network/main.tf", "known_unsupported_zone_ids")
    assert {k: tuple(v) for k, v in known.items()} == KNOWN_UNSUPPORTED_ZONE_IDS


def test_tfvars_then_flags_override_the_defaults(tmp_path: Path) -> None:
    first = tmp_path / "a.tfvars"
    first.write_text(
        'region = "us-east-1" # comment\n'
        'architecture = "x86_64"\n'
        "predict = {\n  memory_size = 3008\n  reserved_concurrency = -1\n}\n"
        "batch = {\n  compute = { max_vcpus = 16 }\n  job = { vcpu = 0.5, memory = 1024 }\n}\n"
        'network = { az_count = 3, interface_endpoints = ["ecr.api", "ecr.dkr"] }\n'
        "provisioned_concurrency = 0\n",
        encoding="utf-8",
    )
    second = tmp_path / "b.tfvars"
    second.write_text('region = "eu-central-1"\nname_prefix = "ml"\n', encoding="utf-8")

    settings = StackSettings.load([first, second], {"batch_max_vcpus": 8, "worker_image": None})

    assert settings.region == "eu-central-1"  # the later file wins
    assert settings.name_prefix == "ml"
    assert settings.architecture == "x86_64"
    assert settings.predict_memory_size == 3008
    assert settings.predict_reserved_concurrency == -1
    assert settings.provisioned_concurrency == 0
    assert settings.batch_max_vcpus == 8  # the flag wins
    assert settings.batch_job_vcpu == 0.5
    assert settings.az_count == 3
    assert settings.interface_endpoints == ("ecr.api", "ecr.dkr")
    assert (
        settings.dispatcher_reserved_concurrency == StackSettings().dispatcher_reserved_concurrency
    )


@pytest.mark.parametrize("name", ["local.tfvars", "localstack.tfvars", "aws.example.tfvars"])
def test_the_projects_tfvars_files_parse(name: str) -> None:
    StackSettings.load([REPO_ROOT / "terraform" / "environments" / name])


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("predict = {\n  memory_size = \n}\n", "not a valid tfvars file"),
        ('predict = { memory_size = "big" }\n', "predict.memory_size must be a number"),
        ('architecture = "sparc"\n', "architecture must be arm64 or x86_64"),
    ],
)
def test_bad_tfvars_are_a_settings_error(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "bad.tfvars"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(SettingsError, match=message):
        StackSettings.load([path])


# ----------------------------------------------------------------------------- Lambda


RESERVING = {
    "predict_reserved_concurrency": 20,
    "provisioned_concurrency": 1,
    "dispatcher_reserved_concurrency": 5,
}
RESERVING_NOTHING = {
    "predict_reserved_concurrency": -1,
    "provisioned_concurrency": 0,
    "dispatcher_reserved_concurrency": -1,
}


def test_lambda_concurrency_passes_with_the_default_quota_stubbed(aws: None) -> None:
    clients = Clients(**{"lambda": lambda_stub(1000, 1000, {})})
    result = check_lambda_concurrency(context(clients, **RESERVING))
    assert result.status is Status.PASS
    assert result.data["unreserved_after_apply"] == 1000 - 20 - 5


def test_lambda_concurrency_fails_in_a_new_account_stubbed(aws: None) -> None:
    clients = Clients(**{"lambda": lambda_stub(10, 10, {})})
    result = check_lambda_concurrency(context(clients, **RESERVING))
    assert result.status is Status.FAIL
    assert "reserved_concurrency = -1" in result.fix
    assert "L-B99A9384" in result.fix
    assert "--desired-value 125" in result.fix  # 25 reserved + 100 kept unreserved


def test_lambda_concurrency_counts_what_the_stack_already_reserves_stubbed(aws: None) -> None:
    """A re-run after an apply: the stack's 25 are already out of the unreserved 115."""
    held = {"inferstack-predict": 20, "inferstack-dispatcher": 5}
    clients = Clients(**{"lambda": lambda_stub(140, 115, held)})
    result = check_lambda_concurrency(context(clients, **RESERVING))
    assert result.status is Status.PASS, result.detail
    assert result.data["unreserved_after_apply"] == 115


def test_lambda_concurrency_without_reservations_passes_a_new_account_stubbed(aws: None) -> None:
    clients = Clients(**{"lambda": lambda_stub(10, 10)})
    assert check_lambda_concurrency(context(clients, **RESERVING_NOTHING)).status is Status.PASS


def test_the_defaults_pass_both_lambda_checks_in_a_new_account_stubbed(aws: None) -> None:
    """A fresh account (concurrency 10, all unreserved): the stack's defaults must deploy."""
    clients = Clients(**{"lambda": lambda_stub(10, 10)})
    assert check_lambda_concurrency(context(clients)).status is Status.PASS
    assert check_lambda_memory(context(clients)).status is Status.PASS


def test_lambda_concurrency_counts_provisioned_without_reservation_stubbed(aws: None) -> None:
    clients = Clients(**{"lambda": lambda_stub(10, 10, {})})
    ctx = context(clients, **{**RESERVING_NOTHING, "provisioned_concurrency": 1})
    assert check_lambda_concurrency(ctx).status is Status.FAIL


def test_lambda_memory_over_3008_fails_in_a_new_account_stubbed(aws: None) -> None:
    ctx = context(Clients(**{"lambda": lambda_stub(10, 10)}), predict_memory_size=3538)
    result = check_lambda_memory(ctx)
    assert result.status is Status.FAIL
    assert "memory_size = 3008" in result.fix


def test_lambda_memory_over_3008_is_a_warning_in_an_established_account_stubbed(
    aws: None,
) -> None:
    ctx = context(Clients(**{"lambda": lambda_stub(1000, 1000)}), predict_memory_size=3538)
    assert check_lambda_memory(ctx).status is Status.WARN


def test_lambda_memory_within_3008_passes_without_asking(aws: None) -> None:
    client, stub = stubbed("lambda")
    stub.activate()  # no response queued: any call would raise
    ctx = context(Clients(**{"lambda": client}), predict_memory_size=3008)
    assert check_lambda_memory(ctx).status is Status.PASS
    stub.assert_no_pending_responses()


# ----------------------------------------------------------------------------- Fargate


def quota(code: str, value: float) -> dict[str, Any]:
    return {
        "Quota": {
            "ServiceCode": "fargate",
            "ServiceName": "AWS Fargate",
            "QuotaCode": code,
            "QuotaName": "Fargate On-Demand vCPU resource count",
            "Value": value,
            "Adjustable": True,
            "GlobalQuota": False,
        }
    }


def quotas_stub(value: float, code: str = "L-3032A538", *, applied: bool = True) -> Any:
    client, stub = stubbed("service-quotas")
    params = {"ServiceCode": "fargate", "QuotaCode": code}
    if applied:
        stub.add_response("get_service_quota", quota(code, value), params)
    else:
        stub.add_client_error(
            "get_service_quota", "NoSuchResourceException", expected_params=params
        )
        stub.add_response("get_aws_default_service_quota", quota(code, value), params)
    stub.activate()
    return client


def test_fargate_quota_above_max_vcpus_passes_stubbed(aws: None) -> None:
    ctx = context(Clients(service_quotas=quotas_stub(4000)))
    assert check_fargate_vcpu(ctx).status is Status.PASS


def test_fargate_quota_below_max_vcpus_warns_stubbed(aws: None) -> None:
    result = check_fargate_vcpu(context(Clients(service_quotas=quotas_stub(6))))
    assert result.status is Status.WARN
    assert "at most 3 children" in result.detail
    assert "max_vcpus = 6" in result.fix and "L-3032A538" in result.fix


def test_fargate_quota_below_one_child_fails_stubbed(aws: None) -> None:
    result = check_fargate_vcpu(context(Clients(service_quotas=quotas_stub(1))))
    assert result.status is Status.FAIL


def test_fargate_quota_falls_back_to_the_aws_default_stubbed(aws: None) -> None:
    clients = Clients(service_quotas=quotas_stub(4000, applied=False))
    assert check_fargate_vcpu(context(clients)).data["quota"] == 4000


def test_fargate_spot_reads_the_spot_quota_stubbed(aws: None) -> None:
    clients = Clients(service_quotas=quotas_stub(4000, "L-36FBB829"))
    assert check_fargate_vcpu(context(clients, batch_use_spot=True)).status is Status.PASS


# ----------------------------------------------------------------------------- API Gateway


def set_logs_role(arn: str) -> None:
    boto3.client("apigateway", region_name=REGION).update_account(
        patchOperations=[{"op": "replace", "path": "/cloudwatchRoleArn", "value": arn}]
    )


def test_apigateway_role_missing_fails_when_the_stack_does_not_set_it(aws: None) -> None:
    result = check_apigateway_logs_role(context(create_api_gateway_account=False))
    assert result.status is Status.FAIL
    assert "update-account" in result.fix


def test_apigateway_role_missing_passes_when_the_stack_sets_it(aws: None) -> None:
    assert check_apigateway_logs_role(context()).status is Status.PASS


def test_apigateway_role_present_passes(aws: None) -> None:
    set_logs_role(f"arn:aws:iam::{ACCOUNT}:role/apigw-logs")
    result = check_apigateway_logs_role(context(create_api_gateway_account=False))
    assert result.status is Status.PASS
    assert result.data["cloudwatch_role_arn"].endswith("role/apigw-logs")


def test_apigateway_role_present_warns_that_the_stack_would_replace_it(aws: None) -> None:
    set_logs_role(f"arn:aws:iam::{ACCOUNT}:role/apigw-logs")
    result = check_apigateway_logs_role(context())
    assert result.status is Status.WARN
    assert "create_api_gateway_account = false" in result.fix


# ----------------------------------------------------------------------------- zones


def test_zones_report_ids_and_pass_when_every_endpoint_is_offered(aws: None) -> None:
    result = check_availability_zones(context())
    assert result.status is Status.PASS
    assert result.data["zone_ids"] == ["euw1-az1", "euw1-az2", "euw1-az3"]
    assert result.data["zone_names"]["eu-west-1a"] == "euw1-az3"  # moto's mapping
    assert result.data["eligible_zone_ids"] == ["euw1-az1", "euw1-az2", "euw1-az3"]
    assert result.data["chosen_zone_ids"] == ["euw1-az1", "euw1-az2"]  # lowest numbers first


def test_zones_fail_when_fewer_than_az_count(aws: None) -> None:
    result = check_availability_zones(context(az_count=4))
    assert result.status is Status.FAIL
    assert "az_count = 3" in result.fix


def _endpoint_service(name: str, zones: list[str]) -> dict[str, Any]:
    return {
        "ServiceName": name,
        "ServiceId": "vpce-svc-0123456789abcdef0",
        "ServiceType": [{"ServiceType": "Interface"}],
        "AvailabilityZones": zones,
        "Owner": "amazon",
    }


def test_zones_fail_when_an_endpoint_lacks_a_zone_stubbed(aws: None) -> None:
    """Zones from moto's EC2 answer, endpoint services from a stub: ecr.dkr in 1 zone only."""
    moto_ec2 = boto3.client("ec2", region_name=REGION)
    ec2, stub = stubbed("ec2")
    stub.add_response("describe_availability_zones", moto_ec2.describe_availability_zones(), {})
    names = {"ecr.api": ["eu-west-1a", "eu-west-1b"], "ecr.dkr": ["eu-west-1a"]}
    for short, zones in names.items():
        service = f"com.amazonaws.{REGION}.{short}"
        stub.add_response(
            "describe_vpc_endpoint_services",
            {"ServiceNames": [service], "ServiceDetails": [_endpoint_service(service, zones)]},
            {"ServiceNames": [service]},
        )
    stub.activate()
    ctx = context(Clients(ec2=ec2), interface_endpoints=("ecr.api", "ecr.dkr"))
    result = check_availability_zones(ctx)
    assert result.status is Status.FAIL
    assert result.data["eligible_zone_ids"] == ["euw1-az3"]  # eu-west-1a in moto's account
    assert result.data["endpoint_zone_ids"][f"com.amazonaws.{REGION}.ecr.dkr"] == ["euw1-az3"]


def test_zones_fail_for_an_endpoint_service_the_region_lacks_stubbed(aws: None) -> None:
    moto_ec2 = boto3.client("ec2", region_name=REGION)
    ec2, stub = stubbed("ec2")
    stub.add_response("describe_availability_zones", moto_ec2.describe_availability_zones(), {})
    service = f"com.amazonaws.{REGION}.xray"
    stub.add_client_error(
        "describe_vpc_endpoint_services",
        "InvalidServiceName",
        expected_params={"ServiceNames": [service]},
    )
    stub.activate()
    result = check_availability_zones(context(Clients(ec2=ec2), interface_endpoints=("xray",)))
    assert result.status is Status.FAIL
    assert service in result.detail


def test_zones_leave_out_the_known_unsupported_zone(aws: None) -> None:
    result = check_availability_zones(context(region="us-east-1", az_count=6))
    assert "use1-az3" in result.data["zone_ids"]
    assert "use1-az3" not in result.data["eligible_zone_ids"]
    assert result.status is Status.FAIL  # 5 eligible zones for 6 subnets
    assert "az_count = 5" in result.fix


def test_zones_given_by_id_must_be_eligible(aws: None) -> None:
    ctx = context(region="us-east-1", availability_zone_ids=("use1-az1", "use1-az3"))
    result = check_availability_zones(ctx)
    assert result.status is Status.FAIL
    assert "use1-az3 not eligible" in result.detail


def test_bring_your_own_subnet_in_an_unsupported_zone_fails(aws: None) -> None:
    ec2 = boto3.client("ec2", region_name="us-east-1")
    vpc = ec2.create_vpc(CidrBlock="10.9.0.0/16")["Vpc"]["VpcId"]
    subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.9.0.0/24", AvailabilityZone="us-east-1e")
    ctx = context(
        Clients(ec2=ec2),
        region="us-east-1",
        create_vpc=False,
        subnet_ids=(subnet["Subnet"]["SubnetId"],),
    )
    result = check_availability_zones(ctx)
    assert result.status is Status.FAIL  # us-east-1e is use1-az3 in moto's account
    assert "use1-az3" in result.fix


def test_zones_of_bring_your_own_subnets(aws: None) -> None:
    ec2 = boto3.client("ec2", region_name=REGION)
    vpc = ec2.create_vpc(CidrBlock="10.9.0.0/16")["Vpc"]["VpcId"]
    subnets = [
        ec2.create_subnet(VpcId=vpc, CidrBlock=f"10.9.{i}.0/24", AvailabilityZone=zone)["Subnet"][
            "SubnetId"
        ]
        for i, zone in enumerate(["eu-west-1a", "eu-west-1b"])
    ]
    result = check_availability_zones(context(create_vpc=False, subnet_ids=tuple(subnets)))
    assert result.status is Status.PASS
    assert sorted(result.data["subnet_zone_ids"].values()) == ["euw1-az1", "euw1-az3"]


# ----------------------------------------------------------------------------- worker image


def oci_index(*architectures: str) -> str:
    manifests: list[dict[str, Any]] = [
        {
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": "sha256:" + hashlib.sha256(arch.encode()).hexdigest(),
            "size": 1000,
            "platform": {"architecture": arch, "os": "linux"},
        }
        for arch in architectures
    ]
    manifests.append(  # what docker buildx adds by default: a provenance attestation
        {
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": "sha256:" + "a" * 64,
            "size": 500,
            "annotations": {"vnd.docker.reference.type": "attestation-manifest"},
            "platform": {"architecture": "unknown", "os": "unknown"},
        }
    )
    return json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": manifests})


def push(manifest: str, media_type: str, tag: str = __version__) -> None:
    ecr = boto3.client("ecr", region_name=REGION)
    with contextlib.suppress(ecr.exceptions.RepositoryAlreadyExistsException):
        ecr.create_repository(repositoryName="inferstack-worker")
    ecr.put_image(
        repositoryName="inferstack-worker",
        imageManifest=manifest,
        imageManifestMediaType=media_type,
        imageTag=tag,
    )


def test_worker_image_index_with_the_right_architecture_passes(aws: None) -> None:
    push(oci_index("arm64"), OCI_INDEX)
    result = check_worker_image(context())
    assert result.status is Status.PASS, result.detail
    assert result.data["platforms"] == ["linux/arm64"]


def test_worker_image_for_the_wrong_architecture_fails(aws: None) -> None:
    push(oci_index("arm64"), OCI_INDEX)
    result = check_worker_image(context(architecture="x86_64"))
    assert result.status is Status.FAIL
    assert "built for linux/arm64" in result.detail
    assert "worker_image_push_commands" in result.fix


def test_worker_image_tag_missing_fails(aws: None) -> None:
    push(oci_index("arm64"), OCI_INDEX, tag="0.0.1")
    result = check_worker_image(context())  # the stack's default tag is the version
    assert result.status is Status.FAIL
    assert "worker_image_push_commands" in result.fix


def test_worker_repository_the_stack_will_create_is_a_warning(aws: None) -> None:
    result = check_worker_image(context())
    assert result.status is Status.WARN
    assert "After apply" in result.fix


def test_worker_image_in_a_missing_repository_of_your_own_fails(aws: None) -> None:
    image = f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com/elsewhere:1.0.0"
    result = check_worker_image(context(worker_image=image))
    assert result.status is Status.FAIL
    assert (
        f"docker build --platform linux/arm64 -f functions/inferstack_worker/Dockerfile -t {image}"
        in result.fix
    )


def test_worker_image_outside_ecr_is_not_checked() -> None:
    result = check_worker_image(context(worker_image="docker.io/library/python:3.12"))
    assert result.status is Status.WARN


def single_platform_stub(config: bytes, *, digest: str | None = None) -> tuple[Any, str]:
    """ECR answering BatchGetImage with a one-platform manifest and a download URL for it."""
    digest = digest or "sha256:" + hashlib.sha256(config).hexdigest()
    manifest = {
        "schemaVersion": 2,
        "mediaType": DOCKER_MANIFEST,
        "config": {
            "mediaType": "application/vnd.docker.container.image.v1+json",
            "size": len(config),
            "digest": digest,
        },
        "layers": [],
    }
    ecr, stub = stubbed("ecr")
    image = {
        "registryId": ACCOUNT,
        "repositoryName": "inferstack-worker",
        "imageId": {"imageDigest": "sha256:" + "b" * 64, "imageTag": __version__},
        "imageManifest": json.dumps(manifest),
        "imageManifestMediaType": DOCKER_MANIFEST,
    }
    stub.add_response("batch_get_image", {"images": [image], "failures": []})
    url = "https://prod-eu-west-1-starport-layer-bucket.s3.eu-west-1.amazonaws.com/config"
    stub.add_response(
        "get_download_url_for_layer",
        {"downloadUrl": url, "layerDigest": digest},
        {"registryId": ACCOUNT, "repositoryName": "inferstack-worker", "layerDigest": digest},
    )
    stub.activate()
    return ecr, url


@pytest.mark.parametrize(("architecture", "status"), [("x86_64", "PASS"), ("arm64", "FAIL")])
def test_worker_image_single_platform_reads_the_config_blob_stubbed(
    aws: None, architecture: str, status: str
) -> None:
    """An amd64 image pushed by a plain `docker build`: passes on x86_64, fails on arm64."""
    config = json.dumps({"architecture": "amd64", "os": "linux", "config": {}}).encode()
    ecr, url = single_platform_stub(config)
    fetched: list[str] = []

    def fetch(requested: str) -> bytes:
        fetched.append(requested)
        return config

    result = check_worker_image(context(Clients(ecr=ecr), fetch, architecture=architecture))
    assert result.status is Status(status), result.detail
    assert result.data["platforms"] == ["linux/amd64"]
    assert fetched == [url]


def test_worker_image_config_that_does_not_match_its_digest_is_refused_stubbed(
    aws: None,
) -> None:
    config = json.dumps({"architecture": "arm64", "os": "linux"}).encode()
    ecr, _ = single_platform_stub(config, digest="sha256:" + "c" * 64)
    report = run_preflight(
        StackSettings(),
        Clients(ecr=ecr),
        fetch=lambda url: config,
        checks=tuple(c for c in CHECKS if c.name == "worker-image"),
    )
    (result,) = report.results
    assert result.status is Status.WARN
    assert "does not match its digest" in result.detail


@pytest.mark.parametrize(
    ("uri", "expected"),
    [
        (
            f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com/team/worker:1.2.3",
            (ACCOUNT, REGION, "team/worker", "1.2.3", None),
        ),
        (
            f"{ACCOUNT}.dkr.ecr.us-east-2.amazonaws.com/worker@sha256:{'d' * 64}",
            (ACCOUNT, "us-east-2", "worker", None, f"sha256:{'d' * 64}"),
        ),
        (f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com/w", (ACCOUNT, REGION, "w", None, None)),
        ("public.ecr.aws/lambda/python:3.12", None),
        ("python:3.12", None),
    ],
)
def test_parse_image_uri(uri: str, expected: tuple[str, ...] | None) -> None:
    image = parse_image_uri(uri)
    got = None if image is None else dataclasses.astuple(image)
    assert got == expected


# ----------------------------------------------------------------------------- the run


def test_a_refused_call_is_a_warning_and_the_other_checks_still_run_stubbed(aws: None) -> None:
    client, stub = stubbed("lambda")
    stub.add_client_error(
        "get_account_settings", "AccessDeniedException", "not authorized", http_status_code=403
    )
    stub.activate()
    report = run_preflight(StackSettings(), Clients(**{"lambda": client}))
    by_name = {r.check: r for r in report.results}
    assert [r.check for r in report.results] == [c.name for c in CHECKS]
    concurrency = by_name["lambda-concurrency"]
    assert concurrency.status is Status.WARN
    assert "AccessDeniedException on GetAccountSettings" in concurrency.detail
    assert "Allow lambda:GetAccountSettings" in concurrency.fix
    assert by_name["availability-zones"].status is Status.PASS
    assert report.account_id == ACCOUNT


def test_report_table_shows_the_fix_under_a_failure() -> None:
    from inferstack.aws.report import Report  # noqa: PLC0415

    report = Report(
        ACCOUNT,
        REGION,
        (
            CheckResult("one", Status.PASS, "fine", "never shown"),
            CheckResult("two", Status.FAIL, "broken", "do this"),
        ),
    )
    table = report.to_table()
    assert "PASS  one  fine" in table and "never shown" not in table
    assert "FAIL  two  broken" in table and "> do this" in table
    assert report.failed and report.to_dict()["counts"] == {"PASS": 1, "WARN": 0, "FAIL": 1}


# ----------------------------------------------------------------------------- the command


@pytest.mark.parametrize("command", [["aws"], ["aws", "preflight"]])
def test_help(command: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main([*command, "--help"])
    assert info.value.code == 0
    assert capsys.readouterr().out.startswith(f"usage: inferstack {' '.join(command)}")


def test_cli_exits_1_on_a_failure_and_prints_the_table(
    aws: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    tfvars = tmp_path / "aws.tfvars"
    tfvars.write_text("create_api_gateway_account = false\n", encoding="utf-8")
    assert main(["aws", "preflight", "--tfvars", str(tfvars)]) == 1
    out = capsys.readouterr().out
    assert re.search(r"^FAIL  apigateway-logs-role ", out, re.MULTILINE)
    assert f"account {ACCOUNT}, region {REGION}" in out


def test_cli_json(aws: None, capsys: pytest.CaptureFixture[str]) -> None:
    status = main(["aws", "preflight", "--json", "--architecture", "x86_64", "--max-vcpus", "8"])
    report = json.loads(capsys.readouterr().out)
    assert [c["check"] for c in report["checks"]] == [c.name for c in CHECKS]
    assert report["settings"]["architecture"] == "x86_64"
    assert report["settings"]["batch_max_vcpus"] == 8
    assert status == (1 if not report["ok"] else 0)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--profile", "no-such-profile"], "no-such-profile"),
        ([], "no usable AWS credentials"),
        (["--tfvars", "/nonexistent.tfvars"], "cannot read /nonexistent.tfvars"),
    ],
)
def test_cli_errors_are_one_line(
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    argv: list[str],
    message: str,
) -> None:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("AWS_CONTAINER_CREDENTIALS_FULL_URI", "")
    monkeypatch.setenv("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "")
    assert main(["aws", "preflight", *argv]) == 2
    captured = capsys.readouterr()
    err_lines = captured.err.strip().splitlines()
    assert len(err_lines) == 1 and err_lines[0].startswith("inferstack: error: ")
    assert message in err_lines[0]
    assert "Traceback" not in captured.err and captured.out == ""


def test_readme_lists_every_action_the_checks_call() -> None:
    readme = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("### Pre-flight check", 1)[1].split("\n## ", 1)[0]
    for check in CHECKS:
        assert f"`{check.name}`" in section
        for action in check.actions:
            assert action in section, action


def test_the_dispatchers_settings_are_read_from_tfvars(tmp_path: Path) -> None:
    """The root stack passes batch.dispatcher through to the batch module."""
    tfvars = tmp_path / "aws.tfvars"
    tfvars.write_text(
        "batch = { dispatcher = { reserved_concurrency = 10, memory_size = 1024 } }\n",
        encoding="utf-8",
    )
    settings = StackSettings.load([tfvars])
    assert (settings.dispatcher_reserved_concurrency, settings.dispatcher_memory_size) == (10, 1024)
