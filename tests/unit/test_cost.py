"""The cost arithmetic of tests/bench/cost.py: known inputs, dollars worked out by hand."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "bench"
sys.path.insert(0, str(BENCH))

import cost  # noqa: E402


def _prices() -> dict:
    """tests/bench/prices.json: the price table the cost report reads."""
    return json.loads((BENCH / "prices.json").read_text())


# Lambda behind API Gateway and WAF, per million requests. Fees: requests, API Gateway, WAF.
LAMBDA_CASES = [
    # 1024 MB = 1 GB; 10 ms = 0.01 s; a million requests = 10,000 GB-s; at $0.00001 per GB-s
    # that is $0.10. Requests, API Gateway and WAF are per million as given: 0.2 + 3.5 + 0.6.
    pytest.param(10.0, 1024, 0.00001, (0.20, 3.50, 0.60), 0.10, 4.40, id="round_numbers"),
    # 9.2 ms is billed as 10 ms: the same $0.10 as above, not $0.092.
    pytest.param(9.2, 1024, 0.00001, (0.0, 0.0, 0.0), 0.10, 0.10, id="billed_up_to_the_next_ms"),
    # 13.2 ms -> 14 ms billed. 1769 MB / 1024 = 1.7275390625 GB; x 0.014 s = 0.024185546875
    # GB-s per request; x 1e6 = 24,185.546875 GB-s; x $0.0000166667 = $0.4030932541.
    # Total with $0.20 requests, $3.50 API Gateway, $0.60 WAF: $4.7030932541.
    pytest.param(
        13.2, 1769, 0.0000166667, (0.20, 3.50, 0.60), 0.4030932541, 4.7030932541, id="1769_mb_x86"
    ),
]


@pytest.mark.parametrize(
    ("duration_ms", "memory_mb", "gb_second", "fees", "compute", "total"), LAMBDA_CASES
)
def test_lambda_per_million(
    duration_ms: float,
    memory_mb: int,
    gb_second: float,
    fees: tuple[float, float, float],
    compute: float,
    total: float,
) -> None:
    requests, api_gateway, waf = fees
    result = cost.lambda_per_million(
        duration_ms=duration_ms,
        memory_mb=memory_mb,
        gb_second=gb_second,
        requests_per_million=requests,
        api_gateway_per_million=api_gateway,
        waf_per_million=waf,
    )
    assert result.compute == pytest.approx(compute, rel=1e-9)
    assert result.total == pytest.approx(total, rel=1e-9)
    assert result.to_dict()["total"] == pytest.approx(total, abs=1e-4)  # rounded to 4 places


def test_sagemaker_compute_and_data() -> None:
    # 20 ms x $0.00004 per second (2048 MB) x 1e6 = 0.02 x 40 = $0.80.
    # 1 MiB in per request = 1/1024 GB; x $0.016 x 1e6 = $15.625; nothing out (so the
    # different out price must not count).
    result = cost.sagemaker_per_million(
        duration_ms=20.0,
        price_per_second=0.00004,
        bytes_in=2**20,
        bytes_out=0,
        data_in_per_gb=0.016,
        data_out_per_gb=0.09,
    )
    assert result == {"compute": 0.8, "data_processed": 15.625, "total": 16.425}


@pytest.mark.parametrize(
    ("lambda_mb", "expected"),
    [(1769, 2048), (3008, 3072), (3538, 4096), (1024, 1024), (7000, None)],
)
def test_sagemaker_memory_is_the_smallest_size_that_fits(
    lambda_mb: int, expected: int | None
) -> None:
    sizes = [1024, 2048, 3072, 4096, 5120, 6144]
    assert cost.sagemaker_memory_mb(lambda_mb, sizes) == expected


def test_fargate_per_million_images() -> None:
    # 10 images/s per vCPU: 1e6 images = 100,000 vCPU-s = 27.777... vCPU-h. Each vCPU-hour
    # costs $0.04048 + 2 GB x $0.004445 = $0.04937. 27.777... x 0.04937 = $1.3713888...
    dollars = cost.fargate_per_million(
        images_per_s_per_vcpu=10.0, vcpu_hour=0.04048, gb_hour=0.004445, gb_per_vcpu=2.0
    )
    assert dollars == pytest.approx(1.37138889, rel=1e-8)


def test_waf_fixed_fee() -> None:
    # $5 web ACL + 5 rules x $1 = $10 per month, whatever the traffic.
    assert cost.waf_fixed_per_month(web_acl_per_month=5.0, rule_per_month=1.0, rules=5) == 10.0


def test_durations_prefer_the_real_handler_and_fill_in_from_peers() -> None:
    realtime = {"num_threads": 2, "handler_p50_ms": 13.0, "handler_cpu_p50_ms": 15.0}
    ours = {
        "1": {"wall_p50_ms": 17.5, "cpu_p50_ms": 16.9},
        "2": {"wall_p50_ms": 9.0, "cpu_p50_ms": 14.0},
    }
    found = cost.handler_durations(realtime, {"peers": {"ours": {"threads": ours}}})
    assert found[2]["ms"] == 13.0 and "realtime.json" in found[2]["source"]
    assert found[2]["cpu_ms"] == 15.0  # the handler's own CPU time, not the classifier's
    assert found[1]["ms"] == 17.5 and "peers.json" in found[1]["source"]
    assert found[1]["cpu_ms"] == 16.9


def test_billed_duration_is_the_cpu_time_where_measured() -> None:
    # On a shared machine the wall time counts other processes' turns: 40 ms wall, 18 ms CPU
    # on one thread bills 18 ms; the wall-based total is kept beside it.
    prices = _prices()["regions"]["us-east-1"]
    durations = {1: {"ms": 40.0, "cpu_ms": 18.0, "source": "test"}}
    rows = cost.region_costs("us-east-1", prices, durations, 0, {})
    row = rows["realtime_per_million_requests"][0]
    assert (row["duration_ms"], row["duration_basis"], row["wall_p50_ms"]) == (
        18.0,
        "cpu_p50",
        40.0,
    )
    assert row["lambda_total_at_wall_p50"] > row["lambda"]["total"]


def test_arm64_rows_say_their_duration_is_not_measured() -> None:
    region = _prices()["regions"]["us-east-1"]
    durations = {1: {"ms": 20.0, "source": "test"}, 2: {"ms": 12.0, "source": "test"}}
    table = cost.region_costs("us-east-1", region, durations, 600_000, {})
    rows = table["realtime_per_million_requests"]
    assert [(r["memory_mb"], r["arch"]) for r in rows] == [
        (m, a) for m, _ in cost.LAMBDA_CONFIGS for a in cost.ARCHITECTURES
    ]
    for row in rows:
        assert ("duration_note" in row) == (row["arch"] == "arm64")
        assert row["duration_ms"] == (20.0 if row["memory_mb"] == 1769 else 12.0)


def test_price_table_is_dated_and_sourced() -> None:
    prices = _prices()
    assert prices["looked_up"]
    assert {"us-east-1", "eu-west-1"} <= set(prices["regions"])
    for region in prices["regions"].values():
        for service in ("lambda", "api_gateway_rest", "waf", "fargate", "sagemaker_serverless"):
            assert region[service]["sources"], service
