"""Cost of a million predictions, from durations measured in this run and a dated price table.

Run by ``make bench`` after the benchmarks (not a pytest test)::

    .venv/bin/python tests/bench/cost.py [--prices tests/bench/prices.json]

Inputs, all written earlier in the same ``make bench`` run:

- ``build/bench/realtime.json``: the handler's p50 duration (a real API Gateway event with the
  1080p JPEG) with its own thread count (``handler_p50_ms``, ``num_threads``) and pinned to
  one CPU (``one_cpu.handler_p50_ms``);
- ``build/bench/peers.json`` (fallback when realtime.json lacks a thread count): our
  classifier's p50 on the same JPEG at 1 and 2 threads;
- ``build/bench/batch.json``: the batch worker's images/s on this machine's CPUs and its CPU
  time per image.

What it computes, per region of ``tests/bench/prices.json`` (a table looked up by hand, with
its date and sources):

- real time, per million requests: Lambda at 1769 MB (1 vCPU: the 1-thread duration), 3008 MB
  and 3538 MB (2 threads; 3538 MB is 2 vCPUs, 3008 MB about 1.7, so its duration is
  optimistic), x86_64 and arm64, plus Lambda requests, API Gateway REST and WAF requests.
  Only x86_64 is measured here: the arm64 rows use the x86_64 duration as a stand-in and say
  so. WAF's monthly web ACL and rule fees do not depend on traffic and are listed apart;
- SageMaker Serverless Inference with the same duration at the smallest memory size that is
  at least the Lambda's (what a user comparing the two would configure), plus its data
  processing charge for the request and response bytes;
- batch, per million images on Fargate: from images/s per vCPU measured by the batch
  benchmark (the emulator shares those CPUs, so this is conservative), and from the worker's
  CPU time per image (a vCPU doing nothing else), with the job definition's default of
  2 GB per vCPU.

Writes ``build/bench/cost.json`` and prints the tables. The billed duration is the handler's
p50 CPU time where it was measured: on a vCPU nobody else uses, a CPU-bound call's wall time
is at most its CPU time (equal on one thread; on two threads the CPU time is an upper bound),
while the wall time of a shared machine also counts other processes' turns. The total at the
p50 wall time is given beside it. (Lambda bills every request, so the mean is what a bill
sees; on an idle machine p50 and mean are close, on a shared one the p50 is steadier.)
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
OUT_DIR = REPO / "build" / "bench"
PRICES = Path(__file__).resolve().parent / "prices.json"

MILLION = 1_000_000
GIB = 2**30  # AWS bills processed data per GB of 2^30 bytes

# (memory MB, interpreter threads): 1769 MB is one full vCPU; 3538 MB two; 3008 MB is the
# largest size a new account may configure (about 1.7 vCPUs), with the same 2 threads.
LAMBDA_CONFIGS: tuple[tuple[int, int], ...] = ((1769, 1), (3008, 2), (3538, 2))
ARCHITECTURES = ("x86_64", "arm64")
MEASURED_ARCH = "x86_64"
# The batch module's default job: 2 vCPU with 4096 MiB, i.e. 2 GB per vCPU.
FARGATE_GB_PER_VCPU = 2.0
# The real-time module's web ACL: rate limit, body size and three AWS managed rule groups.
WAF_RULES = 5


# ----------------------------------------------------------------------------- arithmetic


@dataclass(frozen=True)
class RealtimeCost:
    """Dollars per million requests, by line item."""

    compute: float
    requests: float
    api_gateway: float
    waf: float

    @property
    def total(self) -> float:
        return self.compute + self.requests + self.api_gateway + self.waf

    def to_dict(self) -> dict[str, float]:
        items = {
            "compute": self.compute,
            "requests": self.requests,
            "api_gateway": self.api_gateway,
            "waf": self.waf,
            "total": self.total,
        }
        return {key: round(value, 4) for key, value in items.items()}


def billed_ms(duration_ms: float) -> int:
    """Lambda (and SageMaker Serverless) bill duration rounded up to the next millisecond."""
    if duration_ms < 0:
        raise ValueError(f"negative duration {duration_ms}")
    return max(1, math.ceil(duration_ms))


def lambda_per_million(
    *,
    duration_ms: float,
    memory_mb: int,
    gb_second: float,
    requests_per_million: float,
    api_gateway_per_million: float,
    waf_per_million: float,
) -> RealtimeCost:
    """Lambda behind API Gateway REST and WAF: dollars for one million requests.

    GB-seconds = memory (MB / 1024) x billed duration (s), per request.
    """
    gb_seconds = memory_mb / 1024 * billed_ms(duration_ms) / 1000 * MILLION
    return RealtimeCost(
        compute=gb_seconds * gb_second,
        requests=requests_per_million,
        api_gateway=api_gateway_per_million,
        waf=waf_per_million,
    )


def sagemaker_memory_mb(lambda_memory_mb: int, sizes: list[int]) -> int | None:
    """The smallest serverless memory size at least the Lambda's (None above the largest)."""
    fitting = [size for size in sorted(sizes) if size >= lambda_memory_mb]
    return fitting[0] if fitting else None


def sagemaker_per_million(
    *,
    duration_ms: float,
    price_per_second: float,
    bytes_in: int,
    bytes_out: int,
    data_in_per_gb: float,
    data_out_per_gb: float,
) -> dict[str, float]:
    """SageMaker Serverless Inference: compute per billed second plus data processed."""
    compute = billed_ms(duration_ms) / 1000 * price_per_second * MILLION
    data = (bytes_in * data_in_per_gb + bytes_out * data_out_per_gb) / GIB * MILLION
    return {
        "compute": round(compute, 4),
        "data_processed": round(data, 4),
        "total": round(compute + data, 4),
    }


def fargate_per_million(
    *, images_per_s_per_vcpu: float, vcpu_hour: float, gb_hour: float, gb_per_vcpu: float
) -> float:
    """Dollars for one million images on Fargate at a given throughput per vCPU."""
    if images_per_s_per_vcpu <= 0:
        raise ValueError("images_per_s_per_vcpu must be positive")
    vcpu_hours = MILLION / images_per_s_per_vcpu / 3600
    return vcpu_hours * (vcpu_hour + gb_per_vcpu * gb_hour)


def waf_fixed_per_month(*, web_acl_per_month: float, rule_per_month: float, rules: int) -> float:
    return web_acl_per_month + rule_per_month * rules


# ----------------------------------------------------------------------------- inputs


def read_json(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def handler_durations(
    realtime: dict[str, Any] | None, peers: dict[str, Any] | None
) -> dict[int, dict[str, Any]]:
    """p50 wall duration (``ms``) and p50 CPU time (``cpu_ms``) per interpreter thread count.

    The handler's own numbers (realtime.json) come first; our classifier's in peers.json
    (same JPEG, same timing method as the peers) fill in what is missing. On CPUs nobody
    else uses, a CPU-bound call's wall time is at most its CPU time (equal on one thread);
    on a shared machine the wall time also counts waiting for a CPU.
    """
    found: dict[int, dict[str, Any]] = {}
    if realtime:
        threads = realtime.get("num_threads")
        if threads and realtime.get("handler_p50_ms"):
            found[int(threads)] = {
                "ms": float(realtime["handler_p50_ms"]),
                "cpu_ms": realtime.get("handler_cpu_p50_ms"),
                "source": "realtime.json handler (API Gateway event, 1080p JPEG)",
            }
        one = realtime.get("one_cpu") or {}
        if one.get("handler_p50_ms") and int(one.get("num_threads", 1)) not in found:
            found[int(one.get("num_threads", 1))] = {
                "ms": float(one["handler_p50_ms"]),
                "cpu_ms": one.get("handler_cpu_p50_ms"),
                "source": "realtime.json one_cpu handler (pinned to 1 CPU)",
            }
    ours = ((peers or {}).get("peers") or {}).get("ours") or {}
    for key, run in (ours.get("threads") or {}).items():
        threads = int(key)
        if threads not in found and run.get("wall_p50_ms"):
            found[threads] = {
                "ms": float(run["wall_p50_ms"]),
                "cpu_ms": None,
                "source": f"peers.json ours, {threads} thread(s) (classifier, same JPEG)",
            }
        entry = found.get(threads)
        if entry is not None and entry.get("cpu_ms") is None and run.get("cpu_p50_ms"):
            entry["cpu_ms"] = float(run["cpu_p50_ms"])
            entry["source"] += "; CPU time from peers.json ours"
    return found


def request_bytes(realtime: dict[str, Any] | None, peers: dict[str, Any] | None) -> int:
    for doc, key in ((realtime, "image"), (peers, "image")):
        size = ((doc or {}).get(key) or {}).get("jpeg_bytes")
        if size:
            return int(size)
    return 0


def batch_throughput(batch: dict[str, Any] | None) -> dict[str, dict[str, Any]]:
    """Images/s per vCPU, measured two ways (see the module docstring)."""
    if not batch:
        return {}
    out: dict[str, dict[str, Any]] = {}
    cpus = (batch.get("machine") or {}).get("cpus")
    if cpus and batch.get("images_per_s"):
        out["measured"] = {
            "images_per_s_per_vcpu": batch["images_per_s"] / cpus,
            "source": f"batch.json images_per_s {batch['images_per_s']} on {cpus} CPUs "
            f"({batch.get('best_config')}; the emulator shares those CPUs)",
        }
    worker_cpu = batch.get("worker_cpu_ms_per_image")
    if worker_cpu is None:
        best = [
            c for c in batch.get("configs") or [] if c.get("config") == batch.get("best_config")
        ]
        worker_cpu = best[0].get("worker_cpu_ms_per_image") if best else None
    if worker_cpu:
        out["worker_cpu"] = {
            "images_per_s_per_vcpu": 1000.0 / float(worker_cpu),
            "source": f"batch.json worker CPU {worker_cpu} ms per image (a vCPU doing only this)",
        }
    return out


# ----------------------------------------------------------------------------- tables


def region_costs(
    region: str,
    prices: dict[str, Any],
    durations: dict[int, dict[str, Any]],
    bytes_in: int,
    batch: dict[str, dict[str, Any]],
) -> dict[str, Any]:
    lam, api, waf = prices["lambda"], prices["api_gateway_rest"], prices["waf"]
    sm = prices.get("sagemaker_serverless") or {}
    sm_prices = sm.get("second_by_memory_mb")
    sm_data = sm.get("data_processed_per_gb") or {"in": 0.0, "out": 0.0}
    realtime: list[dict[str, Any]] = []
    for memory_mb, threads in LAMBDA_CONFIGS:
        measured = durations.get(threads)
        for arch in ARCHITECTURES:
            row: dict[str, Any] = {"memory_mb": memory_mb, "arch": arch, "threads": threads}
            if measured is None:
                row["skipped"] = f"no {threads}-thread duration measured in this run"
                realtime.append(row)
                continue
            # Billed duration: the CPU time where measured (what an uncontended vCPU needs;
            # the wall time of a shared machine includes other processes' turns).
            basis_ms = measured.get("cpu_ms") or measured["ms"]
            row["duration_ms"] = basis_ms
            row["duration_basis"] = "cpu_p50" if measured.get("cpu_ms") else "wall_p50"
            row["wall_p50_ms"] = measured["ms"]
            row["duration_source"] = measured["source"]
            if arch != MEASURED_ARCH:
                row["duration_note"] = (
                    f"not measured here: the {MEASURED_ARCH} duration stands in for {arch}"
                )
            row["lambda"] = lambda_per_million(
                duration_ms=basis_ms,
                memory_mb=memory_mb,
                gb_second=lam["gb_second"][arch],
                requests_per_million=lam["requests_per_million"],
                api_gateway_per_million=api["requests_per_million"],
                waf_per_million=waf["requests_per_million"],
            ).to_dict()
            row["lambda_total_at_wall_p50"] = round(
                lambda_per_million(
                    duration_ms=measured["ms"],
                    memory_mb=memory_mb,
                    gb_second=lam["gb_second"][arch],
                    requests_per_million=lam["requests_per_million"],
                    api_gateway_per_million=api["requests_per_million"],
                    waf_per_million=waf["requests_per_million"],
                ).total,
                4,
            )
            if arch == MEASURED_ARCH:  # SageMaker Serverless has no architecture choice
                if sm_prices:
                    size = sagemaker_memory_mb(memory_mb, [int(k) for k in sm_prices])
                    if size is not None:
                        row["sagemaker_serverless"] = {
                            "memory_mb": size,
                            **sagemaker_per_million(
                                duration_ms=basis_ms,
                                price_per_second=sm_prices[str(size)],
                                bytes_in=bytes_in,
                                bytes_out=1024,
                                data_in_per_gb=sm_data["in"],
                                data_out_per_gb=sm_data["out"],
                            ),
                        }
                else:
                    row["sagemaker_serverless"] = {
                        "skipped": f"no per-second price for {region} in the price table"
                    }
            realtime.append(row)
    fargate: list[dict[str, Any]] = []
    for kind, measure in batch.items():
        for arch in ARCHITECTURES:
            rate = prices["fargate"][arch]
            fargate.append(
                {
                    "basis": kind,
                    "arch": arch,
                    "images_per_s_per_vcpu": round(measure["images_per_s_per_vcpu"], 2),
                    "source": measure["source"],
                    "note": None
                    if arch == MEASURED_ARCH
                    else f"not measured here: the {MEASURED_ARCH} throughput stands in",
                    "per_million_images": round(
                        fargate_per_million(
                            images_per_s_per_vcpu=measure["images_per_s_per_vcpu"],
                            vcpu_hour=rate["vcpu_hour"],
                            gb_hour=rate["gb_hour"],
                            gb_per_vcpu=FARGATE_GB_PER_VCPU,
                        ),
                        4,
                    ),
                }
            )
    return {
        "region": region,
        "realtime_per_million_requests": realtime,
        "waf_fixed_per_month": waf_fixed_per_month(
            web_acl_per_month=waf["web_acl_per_month"],
            rule_per_month=waf["rule_per_month"],
            rules=WAF_RULES,
        ),
        "fargate_per_million_images": fargate,
    }


def money(value: float | None) -> str:
    return "-" if value is None else f"${value:,.2f}"


def print_tables(report: dict[str, Any]) -> None:
    print(
        f"\nCost of a million predictions (prices looked up {report['prices_date']}, "
        f"durations measured on {report['cpu_model']})"
    )
    for region in report["regions"]:
        print(
            f"\n  {region['region']}: real time, per million requests (ms: p50 CPU time of the "
            "handler; 'at wall': the same with its p50 wall time on this shared machine)"
        )
        header = (
            f"    {'Lambda':<14}{'thr':>4}{'ms':>7}{'compute':>10}{'requests':>10}"
            f"{'API GW':>9}{'WAF':>7}{'total':>10}{'at wall':>9}   SageMaker Serverless"
        )
        print(header)
        for row in region["realtime_per_million_requests"]:
            name = f"{row['memory_mb']} {row['arch']}"
            if "skipped" in row:
                print(f"    {name:<14}{row['threads']:>4}  skipped: {row['skipped']}")
                continue
            lam = row["lambda"]
            sm = row.get("sagemaker_serverless") or {}
            if "total" in sm:
                sm_text = (
                    f"{sm['memory_mb']} MB: {money(sm['total'])} "
                    f"(data {money(sm['data_processed'])})"
                )
            else:
                sm_text = "not priced (see prices.json)" if sm else ""
            mark = "*" if "duration_note" in row else ""
            print(
                f"    {name:<14}{row['threads']:>4}{row['duration_ms']:>6.1f}{mark:1}"
                f"{money(lam['compute']):>10}{money(lam['requests']):>10}"
                f"{money(lam['api_gateway']):>9}{money(lam['waf']):>7}"
                f"{money(lam['total']):>10}{money(row['lambda_total_at_wall_p50']):>9}   {sm_text}"
            )
        print(
            f"    * arm64 not measured here: x86_64 duration used as a stand-in. WAF fixed "
            f"{money(region['waf_fixed_per_month'])}/month ({WAF_RULES} rules + web ACL)."
        )
        if region["fargate_per_million_images"]:
            print(f"  {region['region']}: batch on Fargate, per million images")
            for row in region["fargate_per_million_images"]:
                note = f"  ({row['note']})" if row["note"] else ""
                print(
                    f"    {row['basis']:<11}{row['arch']:<8}"
                    f"{row['images_per_s_per_vcpu']:>7.1f} images/s/vCPU"
                    f"{money(row['per_million_images']):>10}{note}"
                )


def cpu_model() -> str:
    try:
        with Path("/proc/cpuinfo").open(encoding="ascii", errors="replace") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown CPU"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prices", type=Path, default=PRICES)
    parser.add_argument("--bench-dir", type=Path, default=OUT_DIR)
    parser.add_argument("--out", type=Path, default=OUT_DIR / "cost.json")
    args = parser.parse_args(argv)

    prices = json.loads(args.prices.read_text())
    realtime = read_json(args.bench_dir / "realtime.json")
    peers = read_json(args.bench_dir / "peers.json")
    batch = read_json(args.bench_dir / "batch.json")
    durations = handler_durations(realtime, peers)
    if not durations:
        print("cost: no measured duration (run the real-time or peers benchmark first)")
        return 1
    bytes_in = request_bytes(realtime, peers)
    throughput = batch_throughput(batch)
    report: dict[str, Any] = {
        "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "cpu_model": (peers or {}).get("cpu_model") or cpu_model(),
        "prices_file": str(args.prices.relative_to(REPO))
        if args.prices.is_relative_to(REPO)
        else str(args.prices),
        "prices_date": prices["looked_up"],
        "durations_ms_by_threads": {str(k): v for k, v in sorted(durations.items())},
        "request_bytes": bytes_in,
        "response_bytes_assumed": 1024,
        "inputs_missing": [
            name
            for name, doc in (
                ("realtime.json", realtime),
                ("peers.json", peers),
                ("batch.json", batch),
            )
            if doc is None
        ],
        "regions": [
            region_costs(name, region_prices, durations, bytes_in, throughput)
            for name, region_prices in prices["regions"].items()
        ],
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print_tables(report)
    print(f"\nwritten: {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
