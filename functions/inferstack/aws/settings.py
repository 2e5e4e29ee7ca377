"""What the root stack (terraform/) will deploy, as far as the pre-flight checks need it.

``StackSettings`` holds one value per setting; ``SOURCES`` says, for each, where a tfvars
file sets it and which Terraform variable gives its default. That table is the one place to
update when a variable of the root stack or of a module is renamed or gets a new default
(tests/unit/test_preflight.py reads the .tf files and fails when they disagree).

Values come from, in order: the defaults below, each ``--tfvars`` file (later files win, as
with ``terraform apply -var-file``), then explicit command-line flags.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from inferstack import __version__

ARCHITECTURES = ("arm64", "x86_64")

# The interface endpoints the root stack gives the VPC when network.interface_endpoints is null:
# those of the components running in it (terraform/main.tf, locals.vpc_components).
VPC_COMPONENT_ENDPOINTS = ("ecr.api", "ecr.dkr", "logs")


class SettingsError(ValueError):
    """A tfvars file or flag that cannot be read (reported as one line, exit status 2)."""


@dataclass(frozen=True)
class Source:
    """Where one setting comes from.

    ``tfvars``: the keys leading to it in a tfvars file (None: not an input of the root stack).
    ``default``: (file under the repository, variable, attribute of an ``optional()`` object
    type or None) whose default Terraform uses when the tfvars leave the setting out.
    """

    tfvars: tuple[str, ...] | None
    default: tuple[str, str, str | None]


ROOT = "terraform/variables.tf"
REALTIME = "modules/realtime_api/variables.tf"
BATCH = "modules/batch/variables.tf"
NETWORK = "modules/network/variables.tf"

SOURCES: dict[str, Source] = {
    "region": Source(("region",), (ROOT, "region", None)),
    "name_prefix": Source(("name_prefix",), (ROOT, "name_prefix", None)),
    "architecture": Source(("architecture",), (ROOT, "architecture", None)),
    "predict_memory_size": Source(("predict", "memory_size"), (REALTIME, "memory_size", None)),
    "predict_reserved_concurrency": Source(
        ("predict", "reserved_concurrency"), (REALTIME, "reserved_concurrency", None)
    ),
    "provisioned_concurrency": Source(
        ("provisioned_concurrency",), (ROOT, "provisioned_concurrency", None)
    ),
    "dispatcher_memory_size": Source(
        ("batch", "dispatcher", "memory_size"), (BATCH, "dispatcher", "memory_size")
    ),
    "dispatcher_reserved_concurrency": Source(
        ("batch", "dispatcher", "reserved_concurrency"),
        (BATCH, "dispatcher", "reserved_concurrency"),
    ),
    "batch_job_vcpu": Source(("batch", "job", "vcpu"), (BATCH, "job", "vcpu")),
    "batch_max_vcpus": Source(("batch", "compute", "max_vcpus"), (BATCH, "compute", "max_vcpus")),
    "batch_use_spot": Source(None, (BATCH, "compute", "use_spot")),
    "worker_image_tag": Source(("batch", "worker_image_tag"), (BATCH, "worker_image_tag", None)),
    "worker_image": Source(("batch", "worker_image"), (BATCH, "worker_image", None)),
    "create_api_gateway_account": Source(
        ("create_api_gateway_account",), (ROOT, "create_api_gateway_account", None)
    ),
    "create_vpc": Source(("network", "create_vpc"), (NETWORK, "create_vpc", None)),
    "az_count": Source(("network", "az_count"), (NETWORK, "az_count", None)),
    "availability_zone_ids": Source(
        ("network", "availability_zone_ids"), (NETWORK, "availability_zone_ids", None)
    ),
    "excluded_zone_ids": Source(
        ("network", "excluded_zone_ids"), (NETWORK, "excluded_zone_ids", None)
    ),
    "subnet_ids": Source(("network", "subnet_ids"), (NETWORK, "subnet_ids", None)),
    "create_vpc_endpoints": Source(
        ("network", "create_vpc_endpoints"), (NETWORK, "create_vpc_endpoints", None)
    ),
    "interface_endpoints": Source(
        ("network", "interface_endpoints"), (ROOT, "network", "interface_endpoints")
    ),
    "additional_interface_endpoints": Source(
        ("network", "additional_interface_endpoints"),
        (ROOT, "network", "additional_interface_endpoints"),
    ),
}


@dataclass(frozen=True)
class StackSettings:
    """The deployed values the checks compare with the account (defaults as in the .tf files)."""

    region: str = "eu-west-1"
    name_prefix: str = "inferstack"
    architecture: str = "arm64"
    predict_memory_size: int = 3008
    predict_reserved_concurrency: int = -1
    provisioned_concurrency: int = 0
    dispatcher_memory_size: int = 512
    dispatcher_reserved_concurrency: int = -1
    batch_job_vcpu: float = 2
    batch_max_vcpus: int = 64
    batch_use_spot: bool = False
    worker_image_tag: str | None = None  # None: the project's version (as the root stack does)
    worker_image: str | None = None  # None: <the stack's ECR repository>:<worker_image_tag>
    create_api_gateway_account: bool = True
    create_vpc: bool = True
    az_count: int = 2
    availability_zone_ids: tuple[str, ...] = ()
    excluded_zone_ids: tuple[str, ...] | None = None  # None: the network module's known list
    subnet_ids: tuple[str, ...] = ()
    create_vpc_endpoints: bool = True
    interface_endpoints: tuple[str, ...] | None = None  # None: what the VPC's components need
    additional_interface_endpoints: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.architecture not in ARCHITECTURES:
            raise SettingsError(f"architecture must be arm64 or x86_64, got {self.architecture!r}")

    @property
    def endpoint_services(self) -> tuple[str, ...]:
        """The interface endpoints the stack creates (before create_vpc_endpoints)."""
        if self.interface_endpoints is not None:
            return self.interface_endpoints
        return tuple(
            dict.fromkeys((*VPC_COMPONENT_ENDPOINTS, *self.additional_interface_endpoints))
        )

    @property
    def predict_function_name(self) -> str:
        return f"{self.name_prefix}-predict"

    @property
    def dispatcher_function_name(self) -> str:
        return f"{self.name_prefix}-dispatcher"

    @property
    def worker_repository_name(self) -> str:
        return f"{self.name_prefix}-worker"

    def worker_image_uri(self, account_id: str) -> str:
        """The image the job definition names: worker_image, or the stack's repository and tag.

        The root stack tags it with the project's version (pyproject.toml) by default, which
        is this package's ``__version__``.
        """
        if self.worker_image:
            return self.worker_image
        registry = f"{account_id}.dkr.ecr.{self.region}.amazonaws.com"
        tag = self.worker_image_tag or __version__
        return f"{registry}/{self.worker_repository_name}:{tag}"

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def load(
        cls, tfvars: Iterable[Path] = (), overrides: Mapping[str, Any] | None = None
    ) -> StackSettings:
        """Defaults, then each tfvars file in order, then the non-None ``overrides``."""
        values: dict[str, Any] = {}
        for path in tfvars:
            values.update(settings_from_tfvars(read_tfvars(path), source=str(path)))
        values.update({k: v for k, v in (overrides or {}).items() if v is not None})
        return cls(**values)


_DEFAULTS = {f.name: f.default for f in dataclasses.fields(StackSettings)}


def read_tfvars(path: Path) -> dict[str, Any]:
    """A tfvars file as plain Python values (strings unquoted, no comments)."""
    try:
        import hcl2  # noqa: PLC0415  (only this command needs it)
        from hcl2.utils import SerializationOptions  # noqa: PLC0415
    except ImportError as exc:
        raise SettingsError(
            f"reading --tfvars needs python-hcl2 ({exc}): pip install 'inferstack[aws]'"
        ) from exc
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise SettingsError(f"cannot read {path}: {exc.strerror or exc}") from exc
    options = SerializationOptions(
        with_comments=False,
        strip_string_quotes=True,
        explicit_blocks=False,
        preserve_heredocs=False,
    )
    try:
        data = hcl2.loads(text, serialization_options=options)
    except Exception as exc:  # lark raises several unrelated exception types
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise SettingsError(f"{path} is not a valid tfvars file: {first_line}") from exc
    return dict(data)


def settings_from_tfvars(data: Mapping[str, Any], *, source: str = "tfvars") -> dict[str, Any]:
    """The StackSettings fields that ``data`` (a parsed tfvars file) sets, typed."""
    found: dict[str, Any] = {}
    for name, where in SOURCES.items():
        if where.tfvars is None:
            continue
        value: Any = data
        for key in where.tfvars:
            value = value.get(key) if isinstance(value, Mapping) else None
        if value is not None:
            label = f"{source}: {'.'.join(where.tfvars)}"
            found[name] = _coerce(label, value, _DEFAULTS[name])
    return found


def _coerce(label: str, value: Any, default: Any) -> Any:
    """``value`` as the type of the field's default (HCL numbers may come as float)."""
    if isinstance(value, str) and value.startswith("${"):
        raise SettingsError(f"{label}: expressions are not supported in tfvars, got {value}")
    if isinstance(default, bool):
        if not isinstance(value, bool):
            raise SettingsError(f"{label} must be true or false, got {value!r}")
        return value
    if isinstance(default, int | float):
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise SettingsError(f"{label} must be a number, got {value!r}")
        if isinstance(default, int) and float(value).is_integer():
            return int(value)
        return value
    if isinstance(default, tuple) or isinstance(value, list):
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise SettingsError(f"{label} must be a list of strings, got {value!r}")
        return tuple(value)
    if not isinstance(value, str):
        raise SettingsError(f"{label} must be a string, got {value!r}")
    return value
