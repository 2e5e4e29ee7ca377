"""Runtime: CPU accounting (affinity + cgroup quota), interpreter creation, graph inspection."""

from __future__ import annotations

import os
import sys
import types
from pathlib import Path

import numpy as np
import pytest
from inferstack import runtime


def _quota_files(
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    *,
    v2: str | None = None,
    v1: tuple | None = None,
) -> None:
    """Point the runtime at cgroup files written under tmp_path."""
    v2_path, q_path, p_path = tmp_path / "cpu.max", tmp_path / "quota", tmp_path / "period"
    if v2 is not None:
        v2_path.write_text(v2)
    if v1 is not None:
        q_path.write_text(v1[0])
        p_path.write_text(v1[1])
    monkeypatch.setattr(runtime, "CGROUP_V2_CPU_MAX", v2_path)
    monkeypatch.setattr(runtime, "CGROUP_V1_QUOTA", q_path)
    monkeypatch.setattr(runtime, "CGROUP_V1_PERIOD", p_path)


@pytest.mark.parametrize(
    ("v2", "v1", "cpus", "expected"),
    [
        ("max 100000\n", None, 4, 4),
        ("50000 100000\n", None, 4, 1),  # half a CPU still gets one thread
        ("150000 100000\n", None, 4, 2),  # 1.5 CPUs: two threads
        ("800000 100000\n", None, 2, 2),  # quota above the affinity mask: the mask wins
        (None, ("-1", "100000"), 3, 3),  # cgroup v1 without a quota
        (None, ("200000", "100000"), 8, 2),  # cgroup v1 quota
        (None, None, 6, 6),  # no cgroup files at all
        ("garbage", None, 5, 5),  # unreadable quota: ignored
    ],
)
def test_available_cpus(
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    v2: str | None,
    v1: tuple | None,
    cpus: int,
    expected: int,
) -> None:
    _quota_files(monkeypatch, tmp_path, v2=v2, v1=v1)
    monkeypatch.setattr(os, "sched_getaffinity", lambda _pid: set(range(cpus)))
    assert runtime.available_cpus() == expected


def test_available_cpus_on_this_machine() -> None:
    cpus = runtime.available_cpus()
    assert 1 <= cpus <= len(os.sched_getaffinity(0))


def test_make_interpreter_runs_a_model(imagenet_fixtures: Path) -> None:
    interpreter = runtime.make_interpreter(
        imagenet_fixtures / "mobilenet_v2_1.0_224_quant.tflite", num_threads=2
    )
    detail = interpreter.get_input_details()[0]
    interpreter.set_tensor(detail["index"], np.zeros((1, 224, 224, 3), np.uint8))
    interpreter.invoke()
    out = interpreter.get_tensor(interpreter.get_output_details()[0]["index"])
    assert out.shape == (1, 1001)


def test_make_interpreter_passes_threads(monkeypatch: pytest.MonkeyPatch) -> None:
    """The thread count reaches the Interpreter (recorded by a fake Interpreter class)."""
    seen: dict = {}

    class FakeInterpreter:
        def __init__(self, model_path: str, num_threads: int) -> None:
            seen.update(model_path=model_path, num_threads=num_threads)

        def allocate_tensors(self) -> None:
            seen["allocated"] = True

    monkeypatch.setattr(runtime, "interpreter_class", lambda: FakeInterpreter)
    monkeypatch.setattr(runtime, "available_cpus", lambda: 3)
    runtime.make_interpreter("m.tflite")
    assert seen == {"model_path": "m.tflite", "num_threads": 3, "allocated": True}
    runtime.make_interpreter(Path("m.tflite"), num_threads=1)
    assert seen["num_threads"] == 1


def test_tflite_runtime_fallback(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without ai_edge_litert, tflite_runtime's Interpreter is used (a fake module here:
    tflite-runtime itself needs numpy<2 and cannot be installed beside this stack)."""
    fake_pkg = types.ModuleType("tflite_runtime")
    fake_mod = types.ModuleType("tflite_runtime.interpreter")

    class FallbackInterpreter:
        pass

    fake_mod.Interpreter = FallbackInterpreter  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "ai_edge_litert.interpreter", None)  # import fails
    monkeypatch.setitem(sys.modules, "tflite_runtime", fake_pkg)
    monkeypatch.setitem(sys.modules, "tflite_runtime.interpreter", fake_mod)
    assert runtime.interpreter_class() is FallbackInterpreter


def test_no_runtime_is_a_clear_import_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "ai_edge_litert.interpreter", None)
    monkeypatch.setitem(sys.modules, "tflite_runtime.interpreter", None)
    monkeypatch.setitem(sys.modules, "tflite_runtime", None)
    with pytest.raises(ImportError, match="ai-edge-litert"):
        runtime.interpreter_class()


@pytest.mark.parametrize(
    ("model", "expected"),
    [
        ("mobilenet_v2_1.0_224_quant.tflite", True),  # ... -> RESHAPE -> SOFTMAX
        ("tf2_mobilenet_v2_1.0_224_ptq.tflite", True),  # ... -> SOFTMAX -> QUANTIZE
    ],
)
def test_output_is_softmax_on_real_models(
    imagenet_fixtures: Path, model: str, expected: bool
) -> None:
    assert runtime.output_is_softmax(imagenet_fixtures / model) is expected


@pytest.mark.parametrize(
    ("model", "expected"),
    [
        ("int8_logits", False),
        ("float_logits", False),
        ("int8_softmax", True),
        ("uint8_softmax", True),
    ],
)
def test_output_is_softmax_on_tiny_models(tiny_models: Path, model: str, expected: bool) -> None:
    assert runtime.output_is_softmax(tiny_models / f"{model}.tflite") is expected


def test_tensor_summary(imagenet_fixtures: Path) -> None:
    interpreter = runtime.make_interpreter(
        imagenet_fixtures / "mobilenet_v2_1.0_224_quant.tflite", 1
    )
    summary = runtime.tensor_summary(interpreter.get_input_details()[0])
    assert summary["shape"] == [1, 224, 224, 3]
    assert summary["dtype"] == "uint8"
    assert summary["quantization"] == {"scale": 0.0078125, "zero_point": 128}
