"""TFLite interpreter creation and CPU accounting.

``ai_edge_litert`` is the maintained runtime (XNNPACK, 2-3x faster here); ``tflite_runtime`` is
accepted as a fallback import so an older layer still works.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

CGROUP_V2_CPU_MAX = Path("/sys/fs/cgroup/cpu.max")
CGROUP_V1_QUOTA = Path("/sys/fs/cgroup/cpu/cpu.cfs_quota_us")
CGROUP_V1_PERIOD = Path("/sys/fs/cgroup/cpu/cpu.cfs_period_us")

# Ops that do not change which values are probabilities: a SOFTMAX followed by one of these
# still produces probabilities (e.g. TF2 post-training quantization appends a QUANTIZE).
_PASS_THROUGH_OPS = frozenset({"QUANTIZE", "DEQUANTIZE", "RESHAPE", "SQUEEZE", "IDENTITY"})


def interpreter_class() -> type:
    """The Interpreter class of the first runtime that imports."""
    try:
        from ai_edge_litert.interpreter import Interpreter  # noqa: PLC0415
    except ImportError:
        try:
            from tflite_runtime.interpreter import Interpreter  # noqa: PLC0415
        except ImportError as exc:
            raise ImportError(
                "no TFLite runtime found: install ai-edge-litert (or tflite-runtime)"
            ) from exc
    return Interpreter


def _cgroup_quota_cpus() -> float | None:
    """CPUs allowed by a cgroup CPU quota (v2 cpu.max or v1 cfs), or None if unlimited."""
    try:
        if CGROUP_V2_CPU_MAX.is_file():
            quota, _, period = CGROUP_V2_CPU_MAX.read_text().strip().partition(" ")
            if quota == "max":
                return None
            return int(quota) / int(period or "100000")
        if CGROUP_V1_QUOTA.is_file() and CGROUP_V1_PERIOD.is_file():
            quota_us = int(CGROUP_V1_QUOTA.read_text().strip())
            if quota_us <= 0:
                return None
            return quota_us / int(CGROUP_V1_PERIOD.read_text().strip())
    except (OSError, ValueError):
        return None
    return None


def available_cpus() -> int:
    """CPUs this process may use: the affinity mask, capped by a cgroup CPU quota (at least 1).

    A container with a quota of 1.5 CPUs on a 64-core host must not start 64 threads: the
    quota is rounded up because a partial CPU still helps a second thread.
    """
    try:
        cpus = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cpus = os.cpu_count() or 1
    quota = _cgroup_quota_cpus()
    if quota is not None and quota > 0:
        cpus = min(cpus, math.ceil(quota))
    return max(1, cpus)


def make_interpreter(model_path: str | os.PathLike[str], num_threads: int | None = None) -> Any:
    """An Interpreter for ``model_path`` with explicit threads, tensors allocated."""
    interpreter_cls = interpreter_class()
    threads = num_threads if num_threads is not None else available_cpus()
    interpreter = interpreter_cls(model_path=str(model_path), num_threads=max(1, int(threads)))
    interpreter.allocate_tensors()
    return interpreter


def _graph_interpreter(model_path: str | os.PathLike[str]) -> Any:
    """An interpreter without the default XNNPACK delegate, whose op list shows the real graph."""
    interpreter_cls = interpreter_class()
    try:
        from ai_edge_litert.interpreter import OpResolverType  # noqa: PLC0415

        return interpreter_cls(
            model_path=str(model_path),
            experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES,
        )
    except (ImportError, AttributeError, TypeError):
        return interpreter_cls(model_path=str(model_path))


def output_is_softmax(model_path: str | os.PathLike[str]) -> bool | None:
    """Whether the (first) output tensor is produced by a SOFTMAX op.

    Walks back from the output through pass-through ops (QUANTIZE, RESHAPE, ...). Returns None
    when the runtime cannot list the graph's ops, so callers can ask for an explicit answer.
    """
    interpreter = _graph_interpreter(model_path)
    get_ops = getattr(interpreter, "_get_ops_details", None)
    if get_ops is None:
        return None
    ops = get_ops()
    if any(op.get("op_name") == "DELEGATE" for op in ops):
        return None
    producer = {int(out): op for op in ops for out in op["outputs"]}
    tensor = int(interpreter.get_output_details()[0]["index"])
    for _ in range(len(ops)):
        op = producer.get(tensor)
        if op is None:
            return False
        name = op["op_name"]
        if name == "SOFTMAX":
            return True
        if name not in _PASS_THROUGH_OPS or len(op["inputs"]) == 0:
            return False
        tensor = int(op["inputs"][0])
    return False


def tensor_summary(detail: dict[str, Any]) -> dict[str, Any]:
    """A JSON-friendly view of an interpreter tensor detail."""
    scale, zero_point = detail.get("quantization", (0.0, 0))
    return {
        "name": detail.get("name"),
        "index": int(detail["index"]),
        "shape": [int(x) for x in detail["shape"]],
        "dtype": getattr(detail["dtype"], "__name__", str(detail["dtype"])),
        "quantization": {"scale": float(scale), "zero_point": int(zero_point)},
    }


__all__ = [
    "available_cpus",
    "interpreter_class",
    "make_interpreter",
    "output_is_softmax",
    "tensor_summary",
]
