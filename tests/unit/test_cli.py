"""The inferstack CLI: help, model import/info/build, classify (JSON lines, exit codes)."""

from __future__ import annotations

import json
import subprocess
import sys
import types
from pathlib import Path
from typing import Any

import boto3
import pytest
from imagecorpus import case_by_name
from inferstack.bundle import load_bundle, sha256_file
from inferstack.cli import build_parser, main, resolve_label_offset
from moto import mock_aws

HELP_COMMANDS = [
    [],
    ["model"],
    ["model", "build"],
    ["model", "import"],
    ["model", "info"],
    ["classify"],
]


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    """The real console entry point in a child process."""
    return subprocess.run(
        [sys.executable, "-m", "inferstack.cli", *args],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def json_lines(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


@pytest.mark.parametrize("command", HELP_COMMANDS, ids=lambda c: " ".join(c) or "top")
def test_help(command: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main([*command, "--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: inferstack")


def test_help_in_a_subprocess() -> None:
    proc = run_cli("--help")
    assert proc.returncode == 0
    assert "classify" in proc.stdout and "model" in proc.stdout


def test_every_command_group_is_registered() -> None:
    parser = build_parser()
    subparsers = next(a for a in parser._actions if a.dest == "command")
    assert {"model", "classify"} <= set(subparsers.choices)


def test_usage_error_exit_code(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["classify", "x.jpg"])  # --model missing
    assert info.value.code == 2
    assert "--model" in capsys.readouterr().err


# ----------------------------------------------------------------------------- model import


def test_import_writes_a_verified_bundle(mobilenet_bundle: Path, imagenet_fixtures: Path) -> None:
    bundle = load_bundle(mobilenet_bundle)
    meta = bundle.metadata
    assert meta.sha256 == sha256_file(imagenet_fixtures / "mobilenet_v2_1.0_224_quant.tflite")
    assert (meta.input.height, meta.input.width, meta.input.channel_order) == (224, 224, "RGB")
    assert meta.input.normalization.type == "raw"
    assert meta.output.activation == "softmax"  # read from the graph (auto)
    assert meta.output.label_offset == 1  # 1001 outputs, first label "background"
    assert meta.source["kind"] == "import"
    assert meta.source["original_file"] == "mobilenet_v2_1.0_224_quant.tflite"
    assert len(bundle.labels) == 1001


def test_import_caffe_uses_bgr_mean_order(imagenet_fixtures: Path, tmp_path: Path) -> None:
    argv = _import_args(imagenet_fixtures, tmp_path / "caffe", "caffe")
    assert main(argv) == 0
    meta = load_bundle(tmp_path / "caffe").metadata
    assert meta.input.channel_order == "BGR"
    assert meta.input.normalization.mean == (103.939, 116.779, 123.68)
    assert meta.input.normalization.std == (1.0, 1.0, 1.0)


def test_import_torch_with_options(imagenet_fixtures: Path, tmp_path: Path) -> None:
    argv = [
        *_import_args(imagenet_fixtures, tmp_path / "t", "torch"),
        "--channel-order", "BGR", "--resize", "bicubic", "--crop-fraction", "0.875",
        "--output-activation", "none", "--label-offset", "1",
        "--name", "mnv2", "--version", "7",
    ]  # fmt: skip
    assert main(argv) == 0
    meta = load_bundle(tmp_path / "t").metadata
    assert (meta.name, meta.version) == ("mnv2", "7")
    assert meta.input.normalization.mean == (103.53, 116.28, 123.675)  # reversed for BGR
    assert meta.input.normalization.std == (57.375, 57.12, 58.395)
    assert (meta.input.resize, meta.input.crop_fraction) == ("bicubic", 0.875)
    assert meta.output.activation == "none"


def _import_args(fixtures: Path, out: Path, preprocess: str) -> list[str]:
    return [
        "model", "import",
        "--tflite", str(fixtures / "mobilenet_v2_1.0_224_quant.tflite"),
        "--labels", str(fixtures / "imagenet_labels.txt"),
        "--preprocess", preprocess, "--out", str(out),
    ]  # fmt: skip


def test_import_refuses_existing_out_unless_forced(
    imagenet_fixtures: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = _import_args(imagenet_fixtures, tmp_path / "b", "raw")
    assert main(argv) == 0
    capsys.readouterr()
    assert main(argv) == 2
    assert "not empty" in capsys.readouterr().err
    assert main([*argv, "--force"]) == 0


def test_import_label_count_mismatch(
    imagenet_fixtures: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    labels = tmp_path / "labels.txt"
    labels.write_text("a\nb\nc\n")
    argv = _import_args(imagenet_fixtures, tmp_path / "b", "raw")
    argv[argv.index("--labels") + 1] = str(labels)
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "3 lines" in err and "1001 outputs" in err
    assert not (tmp_path / "b").exists()


def test_import_missing_or_invalid_tflite(
    tmp_path: Path, imagenet_fixtures: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = _import_args(imagenet_fixtures, tmp_path / "b", "raw")
    argv[argv.index("--tflite") + 1] = str(tmp_path / "missing.tflite")
    assert main(argv) == 2
    assert "not found" in capsys.readouterr().err
    bogus = tmp_path / "bogus.tflite"
    bogus.write_bytes(b"definitely not a flatbuffer")
    argv[argv.index("--tflite") + 1] = str(bogus)
    assert main(argv) == 2
    assert "not a usable TFLite model" in capsys.readouterr().err


def test_import_auto_activation_on_logits_model(tiny_models: Path, tmp_path: Path) -> None:
    labels = tmp_path / "labels.txt"
    labels.write_text("a\nb\nc\nd\ne\n")
    for name, expected in [("int8_logits", "none"), ("int8_softmax", "softmax")]:
        argv = [
            "model", "import", "--tflite", str(tiny_models / f"{name}.tflite"),
            "--labels", str(labels), "--preprocess", "torch", "--out", str(tmp_path / name),
        ]  # fmt: skip
        assert main(argv) == 0
        meta = load_bundle(tmp_path / name).metadata
        assert meta.output.activation == expected
        assert meta.output.label_offset == 0
        assert (meta.input.height, meta.input.width) == (16, 16)


@pytest.mark.parametrize(
    ("choice", "outputs", "labels", "expected"),
    [
        ("auto", 1001, ["background"] + ["x"] * 1000, 1),
        ("auto", 1001, ["x"] * 1000, 1),  # one label short: background not listed
        ("auto", 1000, ["x"] * 1000, 0),
        ("auto", 1001, ["tench"] + ["x"] * 1000, 0),  # 1001 real classes
        ("0", 5, ["x"] * 5, 0),
        ("1", 5, ["x"] * 4, 1),
        ("1", 5, ["x"] * 5, 1),
    ],
)
def test_resolve_label_offset(choice: str, outputs: int, labels: list[str], expected: int) -> None:
    assert resolve_label_offset(choice, outputs, labels) == expected


@pytest.mark.parametrize(("choice", "labels"), [("auto", 3), ("0", 4), ("1", 3)])
def test_resolve_label_offset_mismatch(choice: str, labels: int) -> None:
    from inferstack.cli import CliError  # noqa: PLC0415

    with pytest.raises(CliError):
        resolve_label_offset(choice, 5, ["x"] * labels)


# ----------------------------------------------------------------------------- model info / build


def test_model_info(mobilenet_bundle: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["model", "info", "--model", str(mobilenet_bundle)]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["metadata"]["name"] == "mobilenet_v2_1.0_224_quant"
    assert info["input_tensor"]["shape"] == [1, 224, 224, 3]
    assert info["output_tensor"]["quantization"]["scale"] == 0.00390625
    assert info["num_classes"] == 1000
    assert info["num_labels"] == 1001


def test_model_build_without_modelbuild_is_a_clear_error(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import inferstack  # noqa: PLC0415

    # None in sys.modules makes the import fail; the package attribute would bypass it.
    monkeypatch.setitem(sys.modules, "inferstack.modelbuild", None)
    monkeypatch.delattr(inferstack, "modelbuild", raising=False)
    status = main(["model", "build", "--weights", "random", "--out", str(tmp_path / "b")])
    assert status == 2
    err = capsys.readouterr().err
    assert "model build is not available" in err and "Traceback" not in err


def test_model_build_wiring(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The CLI passes every option to modelbuild.build_bundle (a fake module records them;
    the real build needs minutes of TensorFlow and is tested with the model build)."""
    calls: list[dict[str, Any]] = []
    fake = types.ModuleType("inferstack.modelbuild")

    def build_bundle(**kwargs: Any) -> Path:
        calls.append(kwargs)
        kwargs["progress"]("step one")
        return kwargs["out"]

    fake.build_bundle = build_bundle  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "inferstack.modelbuild", fake)
    import inferstack  # noqa: PLC0415

    monkeypatch.setattr(inferstack, "modelbuild", fake, raising=False)
    out = tmp_path / "b"
    status = main([
        "model", "build", "--weights", "random", "--out", str(out),
        "--calibration-dir", str(tmp_path), "--num-calibration", "7", "--seed", "3",
    ])  # fmt: skip
    assert status == 0
    (call,) = calls
    assert call["weights"] == "random"
    assert call["out"] == out
    assert call["calibration_dir"] == tmp_path
    assert (call["num_calibration"], call["seed"]) == (7, 3)
    captured = capsys.readouterr()
    assert "step one" in captured.err
    assert json.loads(captured.out) == {"bundle": str(out)}


# ----------------------------------------------------------------------------- classify


def test_classify_end_to_end(
    mobilenet_bundle: Path, imagenet_fixtures: Path, tmp_path: Path
) -> None:
    bad = tmp_path / "notes.txt"
    bad.write_text("not an image")
    tiff = tmp_path / "image.tiff"
    tiff.write_bytes(case_by_name("tiff").data)
    parrot, bird = imagenet_fixtures / "parrot.jpg", imagenet_fixtures / "bird.bmp"
    proc = run_cli(
        "classify", "--model", str(mobilenet_bundle), "--top-k", "3",
        str(parrot), str(bad), str(tiff), str(bird),
    )  # fmt: skip
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    lines = json_lines(proc.stdout)
    assert [line["image"] for line in lines] == [str(parrot), str(bad), str(tiff), str(bird)]
    assert lines[0]["predictions"][0]["label"] == "macaw"
    assert len(lines[0]["predictions"]) == 3
    assert set(lines[0]["predictions"][0]) == {"label", "index", "probability"}
    assert lines[1] == {
        "image": str(bad),
        "error": {"code": "invalid_image", "message": lines[1]["error"]["message"]},
    }
    assert lines[2]["error"]["code"] == "unsupported_media_type"
    assert lines[3]["predictions"][0]["label"] == "chickadee"


def test_classify_all_good_exits_zero(
    mobilenet_bundle: Path, imagenet_fixtures: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cat = imagenet_fixtures / "cat.bmp"
    assert main(["classify", "--model", str(mobilenet_bundle), "--timing", str(cat)]) == 0
    (line,) = json_lines(capsys.readouterr().out)
    assert line["predictions"][0]["label"] in {"Egyptian cat", "tabby", "tiger cat"}
    assert set(line["timing_ms"]) == {"decode", "preprocess", "infer", "total"}


def test_classify_missing_file_exit_two(
    mobilenet_bundle: Path, imagenet_fixtures: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    parrot = imagenet_fixtures / "parrot.jpg"
    status = main(["classify", "--model", str(mobilenet_bundle), "/no/such.jpg", str(parrot)])
    assert status == 2
    captured = capsys.readouterr()
    missing, ok = json_lines(captured.out)
    assert missing == {
        "image": "/no/such.jpg",
        "error": {"code": "file_not_found", "message": "no such file"},
    }
    assert ok["predictions"][0]["label"] == "macaw"  # goes on after the missing file
    assert "/no/such.jpg" in captured.err


def test_classify_bad_model_path(tmp_path: Path, imagenet_fixtures: Path) -> None:
    proc = run_cli(
        "classify", "--model", str(tmp_path / "nope"), str(imagenet_fixtures / "cat.bmp")
    )
    assert proc.returncode == 2
    assert proc.stdout == ""
    assert "model bundle not found" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_classify_refuses_tampered_bundle(
    mobilenet_bundle: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import shutil  # noqa: PLC0415

    copy = tmp_path / "copy"
    shutil.copytree(mobilenet_bundle, copy)
    with (copy / "model.tflite").open("ab") as fh:
        fh.write(b"\0")
    assert main(["classify", "--model", str(copy), "whatever.jpg"]) == 2
    assert "sha256" in capsys.readouterr().err


def test_classify_from_s3(
    mobilenet_bundle: Path,
    imagenet_fixtures: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    for var in ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_PROFILE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    with mock_aws():
        s3 = boto3.client("s3", region_name="us-east-1")
        s3.create_bucket(Bucket="models")
        for f in mobilenet_bundle.iterdir():
            s3.upload_file(str(f), "models", f"mnv2/{f.name}")
        status = main([
            "classify", "--model", "s3://models/mnv2/", "--cache-dir", str(tmp_path),
            str(imagenet_fixtures / "grace_hopper.bmp"),
        ])  # fmt: skip
    assert status == 0
    (line,) = json_lines(capsys.readouterr().out)
    assert line["predictions"][0]["label"] == "military uniform"
    assert any(tmp_path.rglob("model.tflite"))


def test_classify_corpus_in_order(
    mobilenet_bundle: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Every corpus case through the CLI's prefetch pipeline: one line each, input order."""
    from imagecorpus import image_cases  # noqa: PLC0415

    cases = list(image_cases()) * 2  # more files than the prefetch window
    paths = []
    for i, case in enumerate(cases):
        path = tmp_path / f"{i:03d}-{case.name}"
        path.write_bytes(case.data)
        paths.append(str(path))
    status = main(["classify", "--model", str(mobilenet_bundle), "--top-k", "2", *paths])
    assert status == 1  # some images fail, every file was readable
    lines = json_lines(capsys.readouterr().out)
    assert [line["image"] for line in lines] == paths
    for case, line in zip(cases, lines, strict=True):
        if case.expected_error is None:
            assert len(line["predictions"]) == 2, case.name
        else:
            assert line["error"]["code"] == case.code, case.name
