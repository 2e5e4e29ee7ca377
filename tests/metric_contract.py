"""The contract between the code and the monitoring: what the code emits, what is watched.

CloudWatch identifies a metric by namespace, name and the exact set of dimensions with their
values. An alarm or a dashboard graph that names a metric nobody emits never gets a data
point: the alarm stays INSUFFICIENT_DATA forever and the graph stays empty, and nothing says
so. These helpers read both sides so that a test can compare them:

- ``emitted_metrics``: every metric in the Embedded Metric Format lines the functions and the
  worker printed (the local cloud keeps their output in log files, as CloudWatch Logs would);
- ``watched_metrics``: every metric the applied stack's alarms and dashboards name, read back
  from the emulator's CloudWatch API.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True, order=True)
class Metric:
    namespace: str
    name: str
    dimensions: tuple[tuple[str, str], ...]  # sorted (name, value) pairs

    @classmethod
    def of(cls, namespace: str, name: str, dimensions: dict[str, str]) -> Metric:
        return cls(namespace, name, tuple(sorted(dimensions.items())))

    def __str__(self) -> str:
        dims = ", ".join(f"{k}={v}" for k, v in self.dimensions)
        return f"{self.namespace}/{self.name} {{{dims}}}"


@dataclass(frozen=True)
class Watcher:
    """Where a metric is named: an alarm or a dashboard widget."""

    kind: str  # "alarm" | "dashboard"
    name: str  # alarm name, or "<dashboard>: <widget title>"
    metric: Metric


# ------------------------------------------------------------------------------ emitted (EMF)


def emf_documents(lines: Iterable[str]) -> Iterator[dict[str, Any]]:
    """The JSON objects among ``lines`` that carry an EMF ``_aws.CloudWatchMetrics`` directive."""
    for line in lines:
        start = line.find("{")
        if start < 0 or "CloudWatchMetrics" not in line:
            continue
        try:
            document = json.loads(line[start:])
        except json.JSONDecodeError:
            continue
        if isinstance(document, dict) and isinstance(document.get("_aws"), dict):
            yield document


def metrics_in_emf(document: dict[str, Any]) -> set[Metric]:
    """One metric per (directive, dimension set, metric definition), as CloudWatch extracts."""
    found: set[Metric] = set()
    for directive in document["_aws"].get("CloudWatchMetrics", []):
        namespace = directive["Namespace"]
        for dimension_set in directive.get("Dimensions", []) or [[]]:
            dimensions = {name: str(document[name]) for name in dimension_set}
            for definition in directive.get("Metrics", []):
                found.add(Metric.of(namespace, definition["Name"], dimensions))
    return found


def emitted_metrics(log_dir: Path) -> set[Metric]:
    """Every EMF metric in the ``*.log`` files under ``log_dir``."""
    found: set[Metric] = set()
    for path in sorted(log_dir.rglob("*.log")):
        with path.open(encoding="utf-8", errors="replace") as lines:
            for document in emf_documents(lines):
                found |= metrics_in_emf(document)
    return found


# ------------------------------------------------------------------------------ watched


def metrics_in_widget(widget_metrics: list[list[Any]]) -> list[Metric]:
    """The metrics of one dashboard graph, with CloudWatch's shorthand resolved.

    Each entry is ``[namespace, name, dim1, value1, ..., {options}?]``; ``"."`` repeats the
    item at the same position of the previous entry and ``"..."`` stands for the previous
    entry's items up to the ones that follow it (``["...", "i-2"]``: same metric, last value
    replaced). Metric-math entries (only an options object) name no metric.
    """
    resolved: list[Metric] = []
    previous: list[Any] = []
    for entry in widget_metrics:
        items = [item for item in entry if not isinstance(item, dict)]
        if not items:
            continue  # {"expression": ...}
        expanded: list[Any] = []
        for position, item in enumerate(items):
            if item == "...":  # the previous entry's items, up to those given after it
                expanded.extend(
                    previous[len(expanded) : len(previous) - (len(items) - position - 1)]
                )
            elif item == ".":
                expanded.append(previous[position])
            else:
                expanded.append(item)
        previous = expanded
        namespace, name, *pairs = expanded
        dimensions = dict(zip(pairs[0::2], pairs[1::2], strict=True))
        resolved.append(Metric.of(namespace, name, dimensions))
    return resolved


def alarm_watchers(alarms: Iterable[dict[str, Any]]) -> list[Watcher]:
    """Metrics named by CloudWatch alarms (single-metric and metric-math alarms)."""
    watchers: list[Watcher] = []
    for alarm in alarms:
        name = alarm["AlarmName"]
        if alarm.get("MetricName"):
            dims = {d["Name"]: d["Value"] for d in alarm.get("Dimensions", [])}
            metric = Metric.of(alarm["Namespace"], alarm["MetricName"], dims)
            watchers.append(Watcher("alarm", name, metric))
        for query in alarm.get("Metrics", []):
            stat = query.get("MetricStat")
            if stat:
                m = stat["Metric"]
                dims = {d["Name"]: d["Value"] for d in m.get("Dimensions", [])}
                metric = Metric.of(m["Namespace"], m["MetricName"], dims)
                watchers.append(Watcher("alarm", name, metric))
    return watchers


def dashboard_watchers(dashboard_name: str, body: dict[str, Any]) -> list[Watcher]:
    watchers: list[Watcher] = []
    for widget in body.get("widgets", []):
        if widget.get("type") != "metric":
            continue
        properties = widget.get("properties", {})
        title = f"{dashboard_name}: {properties.get('title', '(untitled)')}"
        for metric in metrics_in_widget(properties.get("metrics", [])):
            watchers.append(Watcher("dashboard", title, metric))
    return watchers


def watched_metrics(cloudwatch: Any) -> list[Watcher]:
    """Every metric named by the account's alarms and dashboards."""
    alarms: list[dict[str, Any]] = []
    for page in cloudwatch.get_paginator("describe_alarms").paginate():
        alarms.extend(page["MetricAlarms"])
    watchers = alarm_watchers(alarms)
    for entry in cloudwatch.list_dashboards()["DashboardEntries"]:
        body = json.loads(
            cloudwatch.get_dashboard(DashboardName=entry["DashboardName"])["DashboardBody"]
        )
        watchers.extend(dashboard_watchers(entry["DashboardName"], body))
    return watchers


def unemitted(watchers: Iterable[Watcher], emitted: set[Metric], namespace: str) -> list[str]:
    """Watchers of ``namespace`` (the code's own metrics) whose metric was never emitted."""
    return sorted(
        {
            f"{w.kind} {w.name!r} watches {w.metric}"
            for w in watchers
            if w.metric.namespace == namespace and w.metric not in emitted
        }
    )


def unknown_resources(watchers: Iterable[Watcher], known: dict[str, set[str]]) -> list[str]:
    """Watchers of AWS service metrics whose dimension names a resource that does not exist.

    ``known`` maps a dimension name (FunctionName, ApiName, Stage, QueueName) to the names of
    the resources the stack created; AWS emits those metrics itself, so the name is what can
    drift.
    """
    problems = set()
    for w in watchers:
        if not w.metric.namespace.startswith("AWS/"):
            continue
        for dimension, value in w.metric.dimensions:
            if dimension in known and value not in known[dimension]:
                problems.add(f"{w.kind} {w.name!r} watches {w.metric}: no {dimension} {value!r}")
    return sorted(problems)
