"""boto3 clients for batch: standard retries with more attempts than the real-time path.

A batch worker can afford to wait: 8 attempts in all (the first + 7 retries) in botocore's
standard mode (exponential backoff with full jitter, each wait capped at 20 s) ride out S3
throttling (503 SlowDown) and brief 5xx spells that would otherwise fail a whole shard.
The endpoint honours AWS_ENDPOINT_URL.
"""

from __future__ import annotations

import os
from typing import Any

from inferstack.s3 import endpoint_url

BATCH_MAX_ATTEMPTS = 8


def make_client(service: str, *, max_pool_connections: int = 10, **kwargs: Any) -> Any:
    import boto3  # noqa: PLC0415  (lazy: the CLI's --help must not pay for boto3)
    from botocore.config import Config  # noqa: PLC0415

    attempts = int(os.environ.get("INFERSTACK_S3_MAX_ATTEMPTS", BATCH_MAX_ATTEMPTS))
    endpoint = kwargs.pop("endpoint_url", None) or endpoint_url(service)
    config = Config(
        # total_max_attempts counts the first attempt; botocore's max_attempts does not.
        retries={"total_max_attempts": attempts, "mode": "standard"},
        max_pool_connections=max_pool_connections,
        connect_timeout=10,
        read_timeout=60,
        s3={"addressing_style": "path"} if endpoint and service == "s3" else None,
    )
    return boto3.client(service, endpoint_url=endpoint, config=config, **kwargs)
