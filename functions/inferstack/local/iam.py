"""Identities of the local cloud under enforced IAM: who calls the emulator with which keys.

The emulator (moto server) is started with ``INITIAL_NO_AUTH_ACTION_COUNT``: its first
`BOOTSTRAP_CALLS` requests are not authorised, and they create the admin user that Terraform,
the CLI and the tests use (`bootstrap`). After them every request is authorised against the
caller's IAM policies, and unknown keys are refused.

The admin then creates one IAM user per AWS service principal the stack's roles trust
(``lambda.amazonaws.com``, ``ecs-tasks.amazonaws.com``): the local runner plays those services,
and the emulator's trust-policy check (patched in `inferstack.local.motoserver`) lets the user
``inferstack-local-service-<service>`` assume exactly the roles whose trust policy names
``<service>.amazonaws.com``, as the service would. Admin keys cannot assume them (as on AWS).

Every function environment and every Batch worker gets the credentials of
``sts:AssumeRole`` on its own execution or job role (`role_environment`), as Lambda and ECS
give them; never the admin's.

Where the identities come from, in order: this process's registry (`register`, set by
whoever started the emulator), the environment variable `IDENTITIES_ENV` (a JSON object, set
for the runner process), the file ``build/local/identities.json`` of a stack left up by
``inferstack local up``. None of them: the emulator does not enforce IAM and the fixed
emulator keys (`FAKE_CREDENTIALS`) are used, as before.
"""

from __future__ import annotations

import json
import os
import re
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import boto3
import botocore.session
from botocore.credentials import CredentialProvider, RefreshableCredentials

FAKE_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
}
ADMIN_USER = "inferstack-local-admin"
SERVICE_USER_PREFIX = "inferstack-local-service-"
# The service principals the stack's roles trust, played by the local runner.
SERVICES = ("lambda", "ecs-tasks")
# create_user, put_user_policy, create_access_key: the requests moto lets through unsigned.
BOOTSTRAP_CALLS = 3
IDENTITIES_ENV = "INFERSTACK_EMULATOR_IDENTITIES"
DEFAULT_IDENTITIES_FILE = (
    Path(__file__).resolve().parents[3] / "build" / "local" / "identities.json"
)
# sts:AssumeRole's default and the role's default maximum session (MaxSessionDuration 3600).
# moto does not expire credentials; they are refreshed this long before their expiry anyway.
SESSION_SECONDS = 3600
REFRESH_MARGIN_S = 300

_ALLOW_ALL = {
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}],
}
_ASSUME_ANY_ROLE = {
    "Version": "2012-10-17",
    "Statement": [
        {"Effect": "Allow", "Action": "sts:AssumeRole", "Resource": "arn:*:iam::*:role/*"}
    ],
}


@dataclass(frozen=True)
class Keys:
    access_key_id: str
    secret_access_key: str
    session_token: str | None = None

    def environment(self) -> dict[str, str]:
        env = {
            "AWS_ACCESS_KEY_ID": self.access_key_id,
            "AWS_SECRET_ACCESS_KEY": self.secret_access_key,
        }
        if self.session_token:
            env["AWS_SESSION_TOKEN"] = self.session_token
        return env

    def client_kwargs(self) -> dict[str, Any]:
        return {
            "aws_access_key_id": self.access_key_id,
            "aws_secret_access_key": self.secret_access_key,
            "aws_session_token": self.session_token,
        }


FAKE_KEYS = Keys(*FAKE_CREDENTIALS.values())


@dataclass(frozen=True)
class Identities:
    """The emulator's admin and service-principal keys (enforced IAM)."""

    endpoint_url: str
    admin: Keys
    services: Mapping[str, Keys]

    def to_json(self) -> dict[str, Any]:
        return {
            "endpoint_url": self.endpoint_url,
            "admin": self.admin.__dict__,
            "services": {name: keys.__dict__ for name, keys in self.services.items()},
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Identities:
        return cls(
            data["endpoint_url"],
            Keys(**data["admin"]),
            {name: Keys(**keys) for name, keys in data["services"].items()},
        )


_REGISTRY: dict[str, Identities] = {}
_LOCK = threading.Lock()


def register(identities: Identities) -> None:
    _REGISTRY[identities.endpoint_url] = identities


def identities(endpoint_url: str) -> Identities | None:
    """The identities of the emulator at endpoint_url, or None (IAM not enforced there)."""
    found = _REGISTRY.get(endpoint_url)
    if found is not None:
        return found
    candidates = []
    if os.environ.get(IDENTITIES_ENV):
        candidates.append(os.environ[IDENTITIES_ENV])
    if DEFAULT_IDENTITIES_FILE.is_file():
        candidates.append(DEFAULT_IDENTITIES_FILE.read_text())
    for raw in candidates:
        try:
            data = json.loads(raw)
        except ValueError:
            continue
        if data.get("endpoint_url") == endpoint_url:
            return Identities.from_json(data)
    return None


def admin_keys(endpoint_url: str) -> Keys:
    found = identities(endpoint_url)
    return found.admin if found else FAKE_KEYS


def _client(service: str, endpoint_url: str, region: str, keys: Keys) -> Any:
    return boto3.client(
        service, endpoint_url=endpoint_url, region_name=region, **keys.client_kwargs()
    )


def _user_keys(iam: Any, user: str, policy: Mapping[str, Any]) -> Keys:
    iam.create_user(UserName=user)
    iam.put_user_policy(
        UserName=user, PolicyName="inferstack-local", PolicyDocument=json.dumps(policy)
    )
    key = iam.create_access_key(UserName=user)["AccessKey"]
    return Keys(key["AccessKeyId"], key["SecretAccessKey"])


def bootstrap(endpoint_url: str, region: str) -> Identities:
    """The first `BOOTSTRAP_CALLS` requests to a fresh emulator: the admin; then the services.

    Any keys do for the unauthorised first calls; the emulator refuses them afterwards.
    """
    admin = _user_keys(_client("iam", endpoint_url, region, FAKE_KEYS), ADMIN_USER, _ALLOW_ALL)
    iam = _client("iam", endpoint_url, region, admin)
    services = {
        name: _user_keys(iam, SERVICE_USER_PREFIX + name, _ASSUME_ANY_ROLE) for name in SERVICES
    }
    found = Identities(endpoint_url, admin, services)
    register(found)
    return found


# ------------------------------------------------------------------ role credentials

_SESSION_NAME = re.compile(r"[^\w+=,.@-]")
_CACHE: dict[tuple[str, str, str], tuple[Keys, float]] = {}


def session_name(name: str) -> str:
    """An sts:AssumeRole RoleSessionName (2-64 of [\\w+=,.@-]) from a function name or job id."""
    cleaned = _SESSION_NAME.sub("-", name)[:64]
    return cleaned if len(cleaned) >= 2 else f"{cleaned}--"


def role_keys(endpoint_url: str, region: str, role_arn: str, *, service: str, session: str) -> Keys:
    """Credentials of `role_arn` assumed by `service` (as Lambda / ECS do), cached until
    `REFRESH_MARGIN_S` before they expire. FAKE_KEYS where the emulator does not enforce IAM."""
    found = identities(endpoint_url)
    if found is None or not role_arn:
        return FAKE_KEYS
    key = (endpoint_url, role_arn, session)
    with _LOCK:
        cached = _CACHE.get(key)
        if cached and cached[1] - REFRESH_MARGIN_S > time.time():
            return cached[0]
        sts = _client("sts", endpoint_url, region, found.services[service])
        answer = sts.assume_role(
            RoleArn=role_arn, RoleSessionName=session_name(session), DurationSeconds=SESSION_SECONDS
        )["Credentials"]
        keys = Keys(answer["AccessKeyId"], answer["SecretAccessKey"], answer["SessionToken"])
        _CACHE[key] = (keys, answer["Expiration"].timestamp())
        return keys


class _RoleProvider(CredentialProvider):
    METHOD = "inferstack-local-assume-role"
    CANONICAL_NAME = "inferstack-local-role"

    def __init__(self, credentials: RefreshableCredentials) -> None:
        super().__init__()
        self._credentials = credentials

    def load(self) -> RefreshableCredentials:
        return self._credentials


def role_client(
    service_name: str,
    endpoint_url: str,
    region: str,
    role_arn: str | None,
    *,
    service: str,
    session: str,
) -> Any:
    """A client that calls as `role_arn` assumed by `service`, for what an AWS service does
    with a component's role outside the component's code (e.g. Lambda's SQS event source
    mapping polls with the function's execution role). Its credentials are re-read from
    `role_keys` before they expire, so a long-running poller keeps working."""

    def fetch() -> dict[str, str]:
        keys = role_keys(endpoint_url, region, role_arn or "", service=service, session=session)
        cached = _CACHE.get((endpoint_url, role_arn or "", session))
        expiry = cached[1] if cached else time.time() + SESSION_SECONDS
        return {
            "access_key": keys.access_key_id,
            "secret_key": keys.secret_access_key,
            "token": keys.session_token or "",
            "expiry_time": datetime.fromtimestamp(expiry, UTC).isoformat(),
        }

    # botocore asks for new credentials when role_keys renews them: REFRESH_MARGIN_S early.
    credentials = RefreshableCredentials.create_from_metadata(
        metadata=fetch(),
        refresh_using=fetch,
        method=_RoleProvider.METHOD,
        advisory_timeout=REFRESH_MARGIN_S,
        mandatory_timeout=REFRESH_MARGIN_S,
    )
    botocore_session = botocore.session.get_session()
    # First in the chain, so nothing in this process's environment is used instead.
    botocore_session.get_component("credential_provider").insert_before(
        "env", _RoleProvider(credentials)
    )
    return boto3.Session(botocore_session=botocore_session, region_name=region).client(
        service_name, endpoint_url=endpoint_url
    )


def role_environment(
    endpoint_url: str, region: str, role_arn: str | None, *, service: str, session: str
) -> dict[str, str]:
    """AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN for a component's process."""
    keys = role_keys(endpoint_url, region, role_arn or "", service=service, session=session)
    return {**FAKE_CREDENTIALS, **keys.environment()}
