"""Stand-in Lambda handler for the local runner's tests (not project code).

API events: echoes what the runner delivered. SQS events: appends bodies to $STANDIN_OUT
and reports the records whose body contains "fail" as batch item failures.
"""

from __future__ import annotations

import base64
import json
import os
import time
from pathlib import Path

INIT_PID = os.getpid()
# invocations served by this process (init happens once per execution environment)
STATE = {"calls": 0}


def lambda_handler(event, context):
    STATE["calls"] += 1
    if "Records" in event:
        failures = []
        out = Path(os.environ["STANDIN_OUT"])
        out.parent.mkdir(parents=True, exist_ok=True)
        with out.open("a") as fh:
            for record in event["Records"]:
                fh.write(
                    json.dumps(
                        {
                            "body": record["body"],
                            "source": record["eventSourceARN"],
                            "count": record["attributes"]["ApproximateReceiveCount"],
                        }
                    )
                    + "\n"
                )
                if "fail" in record["body"]:
                    failures.append({"itemIdentifier": record["messageId"]})
        return {"batchItemFailures": failures}
    if event["path"] == "/boom":
        raise RuntimeError("stand-in failure")
    if event["path"] == "/sleep":
        time.sleep(float(event["queryStringParameters"]["s"]))
    body = event["body"] or ""
    raw = base64.b64decode(body) if event["isBase64Encoded"] else body.encode()
    answer = {
        "path": event["path"],
        "resource": event["resource"],
        "isBase64Encoded": event["isBase64Encoded"],
        "body_sha_len": len(raw),
        "query": event["queryStringParameters"],
        "api_key": event["requestContext"]["identity"]["apiKey"],
        "stage": event["requestContext"]["stage"],
        "init_pid": INIT_PID,
        "calls": STATE["calls"],
        "function_name": context.function_name,
        "request_id": context.aws_request_id,
        "remaining_ms": context.get_remaining_time_in_millis(),
        "env": {
            k: os.environ.get(k)
            for k in (
                "STANDIN_SETTING",
                "AWS_ENDPOINT_URL",
                "AWS_LAMBDA_FUNCTION_NAME",
                "AWS_LAMBDA_FUNCTION_VERSION",
                "_HANDLER",
                "POWERTOOLS_TRACE_DISABLED",
                "MODEL_CACHE_DIR",
            )
        },
    }
    if event["path"] == "/echo-binary":
        return {
            "statusCode": 200,
            "headers": {"Content-Type": "application/octet-stream"},
            "body": base64.b64encode(raw).decode(),
            "isBase64Encoded": True,
        }
    return {
        "statusCode": 200,
        "headers": {"Content-Type": "application/json"},
        "body": json.dumps(answer),
    }
