"""layers/build.py: reproducible function zips, layer contents, size report."""

from __future__ import annotations

import importlib.util
import json
import re
import subprocess
import sys
import zipfile
from pathlib import Path
from types import ModuleType

import pytest
from tfsource import docs

REPO_ROOT = Path(__file__).resolve().parents[2]


def _load_builder() -> ModuleType:
    spec = importlib.util.spec_from_file_location("layers_build", REPO_ROOT / "layers" / "build.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules["layers_build"] = module
    spec.loader.exec_module(module)
    return module


build = _load_builder()


def _standin_tree(root: Path) -> Path:
    """A stand-in functions/ tree (not the project's code) with every excluded kind of path."""
    files = {
        "inferstack/__init__.py": "VERSION = 1\n",
        "inferstack/core.py": "def answer():\n    return 42\n",
        "inferstack/modelbuild.py": "import tensorflow\n",
        "inferstack/cli.py": "",
        "inferstack/local/__init__.py": "",
        "inferstack/batch/__init__.py": "BATCH = True\n",
        "inferstack/__pycache__/core.cpython-311.pyc": "junk",
        "inferstack_predict/__init__.py": "",
        "inferstack_predict/handler.py": "from inferstack.core import answer\n\n"
        "def lambda_handler(event, context):\n    return answer()\n",
        "inferstack_dispatcher/__init__.py": "",
        "inferstack_dispatcher/handler.py": "import inferstack.batch\n",
    }
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


def _build_functions(src: Path, dist: Path) -> dict[str, str]:
    return {
        spec.name: build.sha256_file(build.build_function(src, spec, dist))
        for spec in build.FUNCTIONS
    }


def test_function_zips_are_byte_identical_across_builds(tmp_path: Path) -> None:
    src = _standin_tree(tmp_path / "src")
    first = _build_functions(src, tmp_path / "a")
    # Touching every file changes mtimes but not content: the zips must not change.
    for path in src.rglob("*.py"):
        path.touch()
    second = _build_functions(src, tmp_path / "b")
    assert first == second
    # A content change does change the hash.
    (src / "inferstack" / "core.py").write_text("def answer():\n    return 43\n")
    assert _build_functions(src, tmp_path / "c")["predict"] != first["predict"]


def test_zip_entries_are_sorted_with_fixed_metadata(tmp_path: Path) -> None:
    src = _standin_tree(tmp_path / "src")
    path = build.build_function(src, build.FUNCTIONS[0], tmp_path / "dist")
    with zipfile.ZipFile(path) as zf:
        infos = zf.infolist()
    names = [i.filename for i in infos]
    assert names == sorted(names)
    assert {i.date_time for i in infos} == {(1980, 1, 1, 0, 0, 0)}
    assert {(i.external_attr >> 16) & 0o777 for i in infos} == {0o644}


def test_function_zips_leave_out_dev_only_code(tmp_path: Path) -> None:
    src = _standin_tree(tmp_path / "src")
    dist = tmp_path / "dist"
    _build_functions(src, dist)
    predict = set(zipfile.ZipFile(dist / "predict.zip").namelist())
    dispatcher = set(zipfile.ZipFile(dist / "dispatcher.zip").namelist())
    assert "inferstack_predict/handler.py" in predict
    assert "inferstack/core.py" in predict
    for name in predict | dispatcher:
        assert not name.startswith("inferstack/local/")
        assert name != "inferstack/modelbuild.py"
        assert "__pycache__" not in name
    assert not any(n.startswith("inferstack/batch/") for n in predict)
    assert "inferstack/batch/__init__.py" in dispatcher
    assert not any(n.startswith("inferstack_predict/") for n in dispatcher)


def test_handler_runs_from_the_zip_alone(tmp_path: Path) -> None:
    src = _standin_tree(tmp_path / "src")
    zip_path = build.build_function(src, build.FUNCTIONS[0], tmp_path / "dist")
    code = (
        "import sys; sys.path.insert(0, sys.argv[1]);"
        "import inferstack_predict.handler as h, inferstack;"
        "assert inferstack.__file__.startswith(sys.argv[1]), inferstack.__file__;"
        "print(h.lambda_handler({}, None))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(zip_path)], check=True, capture_output=True, text=True
    )
    assert out.stdout.strip() == "42"


def test_project_function_zips_import_from_the_zip(tmp_path: Path) -> None:
    """The project's own zips: the core imports from the zip and the handler module is there.

    The handler itself loads the model at import (Lambda init), so it is located, not run.
    """
    src = REPO_ROOT / "functions"
    for spec in build.FUNCTIONS:
        handler = src / spec.packages[1] / "handler.py"
        if not handler.is_file():
            pytest.skip(f"{handler.relative_to(REPO_ROOT)} not written yet")
    dist = tmp_path / "dist"
    first = _build_functions(src, dist)
    assert first == _build_functions(src, tmp_path / "again")
    for spec in build.FUNCTIONS:
        zip_path = dist / f"{spec.name}.zip"
        handler_module = f"{spec.packages[1]}.handler"
        code = (
            "import sys, importlib, importlib.util; sys.path.insert(0, sys.argv[1]);"
            "import inferstack.errors;"
            "assert inferstack.errors.__file__.startswith(sys.argv[1]);"
            f"s = importlib.util.find_spec({handler_module!r});"
            "assert s and s.origin.startswith(sys.argv[1]), s"
        )
        subprocess.run([sys.executable, "-c", code, str(zip_path)], check=True)


def test_dependencies_pin_the_aws_sdk_too() -> None:
    """The runtime's bundled boto3/botocore is AWS's choice of version: the layer ships the
    project's, every package of the SDK pinned exactly."""
    deps = build.project_dependencies(REPO_ROOT / "pyproject.toml")
    pins = {build._req_name(d): d.split("==")[1] for d in deps if "==" in d}
    assert len(pins) == len(deps), f"every layer dependency must be pinned: {deps}"
    assert "ai-edge-litert" in pins
    sdk = {"boto3", "botocore", "s3transfer", "jmespath", "python-dateutil", "urllib3", "six"}
    assert sdk <= set(pins)


def test_pip_is_asked_for_lambda_wheels() -> None:
    args = build.pip_platform_args("arm64")
    assert "manylinux_2_27_aarch64" in args
    assert args[args.index("--python-version") + 1] == "3.13"
    assert "--only-binary=:all:" in args


def _runtime_default(config: Path) -> str:
    (block,) = [
        b for b in docs.module_blocks(config) if b.kind == "variable" and b.labels == ["runtime"]
    ]
    return docs.string_value(block.attributes["default"])


@pytest.mark.parametrize(
    "config", ["modules/realtime_api", "modules/batch", "terraform"], ids=lambda c: c
)
def test_terraform_runtime_defaults_to_the_python_the_layer_is_built_for(config: str) -> None:
    """The default layer (build/dist) and the default runtime of every configuration agree."""
    assert build.LAMBDA_RUNTIME == "python3.13"
    assert _runtime_default(REPO_ROOT / config) == build.LAMBDA_RUNTIME


def test_layer_manifest_records_what_the_layer_was_built_for(tmp_path: Path) -> None:
    (tmp_path / "f").write_bytes(b"\0" * 100)
    layer = tmp_path / "layer-arm64.zip"
    build.write_zip(layer, [("python/f", tmp_path / "f")])
    path = build.write_layer_manifest(layer, "arm64")
    # The name modules/realtime_api derives from layer_zip_path.
    assert path == tmp_path / "layer-arm64.json"
    manifest = json.loads(path.read_text())
    assert manifest["runtime"] == "python3.13"
    assert manifest["python_version"] == "3.13"
    assert manifest["architecture"] == "arm64"
    assert manifest["zip"] == "layer-arm64.zip"
    assert manifest["sha256"] == build.sha256_file(layer)
    assert "manylinux_2_27_aarch64" in manifest["platforms"]


def test_function_zips_refuse_compiled_modules(tmp_path: Path) -> None:
    """A compiled module is built for one Python: it belongs in the layer, whose manifest
    records which, never in the version-independent function zips."""
    src = _standin_tree(tmp_path / "src")
    (src / "inferstack" / "_speedups.cpython-311-x86_64-linux-gnu.so").write_bytes(b"\x7fELF")
    with pytest.raises(SystemExit, match=r"_speedups\.cpython-311.*compiled module"):
        build.build_function(src, build.FUNCTIONS[0], tmp_path / "dist")


def test_report_warns_over_the_size_goal(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "f").write_bytes(b"\0" * 4096)
    build.write_zip(tmp_path / "layer-x86_64.zip", [("python/f", tmp_path / "a" / "f")])
    build.write_zip(tmp_path / "predict.zip", [("p.py", tmp_path / "a" / "f")])
    assert build.report(tmp_path) == []
    monkeypatch.setattr(build, "SIZE_GOAL", 5000)
    warnings = build.report(tmp_path)
    assert len(warnings) == 1
    assert "layer-x86_64.zip + predict.zip" in warnings[0]
    assert "unzipped" in capsys.readouterr().out


@pytest.fixture(scope="session")
def x86_layer(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One real layer build (pip, wheel cache shared with `make build`)."""
    deps = build.project_dependencies(REPO_ROOT / "pyproject.toml")
    dist = tmp_path_factory.mktemp("layer")
    pip = [sys.executable, "-m", "pip"]
    try:
        return build.build_layer("x86_64", deps, dist, REPO_ROOT / "build" / "cache", pip=pip)
    except subprocess.CalledProcessError as exc:  # no package index reachable
        pytest.skip(f"pip could not fetch the layer's wheels: {exc}")


def test_layer_holds_the_runtime_for_python313(x86_layer: Path) -> None:
    with zipfile.ZipFile(x86_layer) as zf:
        names = zf.namelist()
    assert names == sorted(names)
    assert all(n.startswith("python/") for n in names)
    assert any(n.startswith("python/ai_edge_litert/interpreter.py") for n in names)
    assert any(
        n.startswith("python/ai_edge_litert/") and "cpython-313-x86_64" in n for n in names
    ) or any(n.endswith("libpywrap_litert_common.so") for n in names)
    assert any(n.startswith("python/numpy/_core/") and "cpython-313-x86_64" in n for n in names)
    # No extension module for another Python slipped in.
    assert not any(re.search(r"cpython-3(?!13)\d+-", n) for n in names)
    # The manifest beside the zip says what the wheels say.
    manifest = json.loads(build.layer_manifest_path(x86_layer).read_text())
    assert manifest["runtime"] == "python3.13" and manifest["architecture"] == "x86_64"
    assert manifest["sha256"] == build.sha256_file(x86_layer)
    assert any(n.startswith("python/PIL/") for n in names)
    assert any(n.startswith("python/aws_lambda_powertools/") for n in names)
    # The pinned AWS SDK, not the one the runtime happens to bundle.
    deps = build.project_dependencies(REPO_ROOT / "pyproject.toml")
    pins = {build._req_name(d): d.split("==")[1] for d in deps}
    with zipfile.ZipFile(x86_layer) as zf:
        for dist in ("boto3", "botocore", "s3transfer"):
            (metadata,) = [
                n for n in names if n.startswith(f"python/{dist}-") and n.endswith("/METADATA")
            ]
            assert f"\nVersion: {pins[dist]}\n" in zf.read(metadata).decode()
    assert any(n.startswith("python/botocore/data/s3/") for n in names)
    assert not any("__pycache__" in n or n.endswith(".pyc") for n in names)
    assert build.unzipped_size(x86_layer) < build.SIZE_HARD_LIMIT
