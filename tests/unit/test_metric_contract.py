"""The contract reader: EMF lines as powertools prints them, dashboards and alarms as
CloudWatch returns them."""

from __future__ import annotations

import json
from typing import Any

import pytest
from aws_lambda_powertools import Metrics
from aws_lambda_powertools.metrics import MetricUnit
from metric_contract import (
    Metric,
    alarm_watchers,
    dashboard_watchers,
    emf_documents,
    emitted_metrics,
    metrics_in_emf,
    metrics_in_widget,
    unemitted,
    unknown_resources,
)


def test_reads_the_metrics_powertools_prints(
    capsys: pytest.CaptureFixture[str], tmp_path: Any
) -> None:
    metrics = Metrics(namespace="Inferstack", service="inferstack-batch-worker")
    metrics.add_metric(name="BatchImagesFailed", unit=MetricUnit.Count, value=0)
    metrics.add_metric(name="BatchImagesClassified", unit=MetricUnit.Count, value=3)
    metrics.flush_metrics()
    printed = capsys.readouterr().out
    (tmp_path / "worker.log").write_text("a plain log line\n" + printed)

    worker = {"service": "inferstack-batch-worker"}
    assert emitted_metrics(tmp_path) == {
        Metric.of("Inferstack", "BatchImagesFailed", worker),
        Metric.of("Inferstack", "BatchImagesClassified", worker),
    }


def test_every_dimension_set_is_its_own_metric() -> None:
    line = json.dumps(
        {
            "_aws": {
                "CloudWatchMetrics": [
                    {
                        "Namespace": "N",
                        "Dimensions": [["service"], ["service", "ErrorCode"]],
                        "Metrics": [{"Name": "ErrorCount", "Unit": "Count"}],
                    }
                ]
            },
            "service": "s",
            "ErrorCode": "invalid_image",
            "ErrorCount": [1],
        }
    )
    (document,) = emf_documents(["prefix text " + line, "{not json CloudWatchMetrics"])
    assert metrics_in_emf(document) == {
        Metric.of("N", "ErrorCount", {"service": "s"}),
        Metric.of("N", "ErrorCount", {"service": "s", "ErrorCode": "invalid_image"}),
    }


def test_dashboard_shorthand_is_resolved() -> None:
    widget = [
        ["AWS/Lambda", "Errors", "FunctionName", "f", {"stat": "Sum"}],
        [".", "Throttles", ".", "."],
        ["...", "g"],
        [{"expression": "m1 + m2"}],
    ]
    assert metrics_in_widget(widget) == [
        Metric.of("AWS/Lambda", "Errors", {"FunctionName": "f"}),
        Metric.of("AWS/Lambda", "Throttles", {"FunctionName": "f"}),
        Metric.of("AWS/Lambda", "Throttles", {"FunctionName": "g"}),
    ]


def test_drift_is_reported_for_alarms_and_dashboards() -> None:
    emitted = {Metric.of("Inferstack", "BatchImagesFailed", {"service": "inferstack-batch-worker"})}
    alarms = [
        {
            "AlarmName": "x-batch-images-failed",
            "Namespace": "Inferstack",
            "MetricName": "BatchImagesFailed",
            "Dimensions": [{"Name": "service", "Value": "inferstack-worker"}],
        },
        {
            "AlarmName": "x-rate",
            "Metrics": [
                {"Id": "e", "Expression": "m / 1"},
                {
                    "Id": "m",
                    "MetricStat": {
                        "Metric": {
                            "Namespace": "AWS/Lambda",
                            "MetricName": "Errors",
                            "Dimensions": [{"Name": "FunctionName", "Value": "gone"}],
                        },
                        "Stat": "Sum",
                        "Period": 60,
                    },
                },
            ],
        },
    ]
    body = {
        "widgets": [
            {"type": "text", "properties": {"markdown": "x"}},
            {
                "type": "metric",
                "properties": {
                    "title": "Batch images",
                    "metrics": [
                        ["Inferstack", "BatchImagesFailed", "service", "inferstack-batch-worker"],
                        [
                            "Inferstack",
                            "BatchImagesClasified",
                            "service",
                            "inferstack-batch-worker",
                        ],
                    ],
                },
            },
        ]
    }
    watchers = alarm_watchers(alarms) + dashboard_watchers("x", body)
    assert unemitted(watchers, emitted, "Inferstack") == [
        "alarm 'x-batch-images-failed' watches Inferstack/BatchImagesFailed "
        "{service=inferstack-worker}",
        "dashboard 'x: Batch images' watches Inferstack/BatchImagesClasified "
        "{service=inferstack-batch-worker}",
    ]
    assert unknown_resources(watchers, {"FunctionName": {"x-predict"}}) == [
        "alarm 'x-rate' watches AWS/Lambda/Errors {FunctionName=gone}: no FunctionName 'gone'"
    ]
