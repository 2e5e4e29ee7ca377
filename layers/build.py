#!/usr/bin/env python3
"""Build the Lambda artifacts into build/dist/, reproducibly.

    layer-x86_64.zip, layer-arm64.zip   runtime dependencies for python3.13 (python/ prefix)
    layer-x86_64.json, layer-arm64.json  what each layer was built for: Lambda runtime, Python
                                         version, architecture, sha256 of the zip
    predict.zip                          real-time function code
    dispatcher.zip                       batch dispatcher function code

Same inputs give byte-identical zips (sorted entries, 1980-01-01 timestamps, fixed
permissions), so Terraform's source_code_hash only changes when the content does.

The layer holds [project].dependencies from pyproject.toml, boto3 and botocore included: the
SDK the Lambda runtime bundles is whatever version AWS last put there, and the code relies on
newer API parameters (the dispatcher's conditional PutObject with IfNoneMatch), so the
functions run with the pinned SDK from the layer (/opt/python comes before the runtime's own
packages on sys.path). Wheels are downloaded once into build/cache/pip/<arch>/ and a layer is
rebuilt only when its inputs change.

A layer holds compiled extension modules (cpython-313 .so files) and runs on that Python only.
The JSON manifest beside each layer zip says which; modules/realtime_api reads it and refuses,
at plan time, a layer whose runtime or architecture differs from the function's. The function
zips hold Python source only (the build refuses a compiled module in them), so they run on
any runtime the layer fits.

Standard library only (plus pip), so it runs before any virtualenv exists.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shutil
import stat
import subprocess
import sys
import tempfile
import tomllib
import zipfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
LAMBDA_PYTHON = "3.13"
LAMBDA_RUNTIME = f"python{LAMBDA_PYTHON}"
ARCHES = ("x86_64", "arm64")
# pip platform tags per Lambda architecture; ai-edge-litert 2.3.0 ships manylinux_2_27 wheels,
# which the python3.13 runtime (Amazon Linux 2023, glibc 2.34) accepts. pybase64 and protobuf
# ship manylinux_2_17/manylinux2014 wheels only, hence the older tags too.
PIP_ARCH = {"x86_64": "x86_64", "arm64": "aarch64"}
MANYLINUX_TAGS = ("manylinux_2_28", "manylinux_2_27", "manylinux_2_17", "manylinux2014")
# Parts of ai-edge-litert that the CPU interpreter never loads: the WebGPU accelerator
# (Lambda has no GPU), model conversion tooling, vendor NPU plugins and AOT compilation.
# Checked: Interpreter(model_path=..., num_threads=n).invoke() works without them.
LAYER_PRUNE = (
    "ai_edge_litert/libLiteRtWebGpuAccelerator.so",
    "ai_edge_litert/tools",
    "ai_edge_litert/vendors",
    "ai_edge_litert/aot",
    # AVIF is not in the image format allow-list; Pillow's AVIF plugin tolerates the missing
    # extension (SUPPORTED = False), every other format is untouched.
    "PIL/_avif.*.so",
    "pillow.libs/libavif-*",
)

# The goal for unzipped layer + function (the pinned AWS SDK alone is about 23 MiB of it);
# AWS refuses more than 250 MB.
SIZE_GOAL = 150 * 2**20
SIZE_HARD_LIMIT = 250 * 2**20

ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)
FILE_MODE = 0o644
EXEC_MODE = 0o755
DIR_MODE = 0o755

# Never needed at run time; removing them keeps the layer small without touching imports.
TRIM_DIRS = frozenset({"__pycache__", "tests", "test", "testing"})
TRIM_SUFFIXES = (".pyc", ".pyo", ".pyi")
# numpy.testing and PIL's own test helpers are imported by nothing at run time, but
# numpy/_core/tests is big; keep numpy.testing (numpy imports it lazily in some paths).
KEEP_DIRS = frozenset({"numpy/testing"})
# dist-info: keep METADATA (importlib.metadata.version() works), drop the rest.
DIST_INFO_KEEP = frozenset({"METADATA", "top_level.txt", "entry_points.txt"})


@dataclass(frozen=True)
class FunctionSpec:
    """One function zip: which packages from functions/ and which paths to leave out."""

    name: str
    packages: tuple[str, ...]
    exclude: tuple[str, ...] = field(default_factory=tuple)


# The real-time function needs the core but not batch, the CLI, the model builder (imports
# TensorFlow), the pre-flight checks or the local emulator tooling. The dispatcher also
# needs inferstack.batch.
FUNCTIONS = (
    FunctionSpec(
        "predict",
        ("inferstack", "inferstack_predict"),
        (
            "inferstack/local",
            "inferstack/aws",
            "inferstack/modelbuild.py",
            "inferstack/batch",
            "inferstack/cli.py",
        ),
    ),
    FunctionSpec(
        "dispatcher",
        ("inferstack", "inferstack_dispatcher"),
        ("inferstack/local", "inferstack/aws", "inferstack/modelbuild.py", "inferstack/cli.py"),
    ),
)


# ---------------------------------------------------------------------------------------
# reproducible zips


def _walk_files(root: Path) -> Iterator[Path]:
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in sorted(filenames):
            yield Path(dirpath) / name


def write_zip(dest: Path, entries: Iterable[tuple[str, Path]]) -> str:
    """Write (arcname, file) pairs sorted by arcname with fixed metadata; return sha256."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_suffix(dest.suffix + ".tmp")
    with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=9) as zf:
        for arcname, path in sorted(entries, key=lambda e: e[0]):
            info = zipfile.ZipInfo(arcname, date_time=ZIP_EPOCH)
            mode = EXEC_MODE if os.access(path, os.X_OK) and path.suffix == ".so" else FILE_MODE
            info.external_attr = (stat.S_IFREG | mode) << 16
            info.create_system = 3  # unix, so the mode bits are honoured
            info.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(info, path.read_bytes(), compresslevel=9)
    tmp.replace(dest)
    return sha256_file(dest)


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def unzipped_size(path: Path) -> int:
    with zipfile.ZipFile(path) as zf:
        return sum(info.file_size for info in zf.infolist())


# ---------------------------------------------------------------------------------------
# function zips


def _excluded(rel: str, exclude: tuple[str, ...]) -> bool:
    return any(rel == ex or rel.startswith(ex.rstrip("/") + "/") for ex in exclude)


# Compiled extension modules: built for one Python ABI. They belong in the layer (whose
# manifest records the Python), never in a function zip.
COMPILED_SUFFIXES = (".so", ".pyd")


def function_entries(src_root: Path, spec: FunctionSpec) -> list[tuple[str, Path]]:
    entries: list[tuple[str, Path]] = []
    for package in spec.packages:
        pkg_dir = src_root / package
        if not pkg_dir.is_dir():
            raise SystemExit(f"{spec.name}: package directory {pkg_dir} not found")
        for path in _walk_files(pkg_dir):
            rel = path.relative_to(src_root).as_posix()
            if _trimmed(rel) or _excluded(rel, spec.exclude):
                continue
            if rel.endswith(COMPILED_SUFFIXES) or ".so." in path.name:
                raise SystemExit(
                    f"{spec.name}: {rel} is a compiled module; function zips hold Python source"
                    " only (compiled dependencies go in the layer, built for one Python)"
                )
            entries.append((rel, path))
    return entries


def build_function(src_root: Path, spec: FunctionSpec, dist: Path) -> Path:
    dest = dist / f"{spec.name}.zip"
    write_zip(dest, function_entries(src_root, spec))
    return dest


# ---------------------------------------------------------------------------------------
# layers


def project_dependencies(pyproject: Path) -> list[str]:
    """[project].dependencies: everything the functions import, the AWS SDK included."""
    return list(tomllib.loads(pyproject.read_text())["project"]["dependencies"])


def _req_name(requirement: str) -> str:
    match = re.match(r"[A-Za-z0-9_.\-]+", requirement.strip())
    if not match:
        raise SystemExit(f"cannot parse requirement {requirement!r}")
    return re.sub(r"[-_.]+", "-", match.group(0)).lower()


def pip_platform_args(arch: str) -> list[str]:
    args: list[str] = []
    for tag in MANYLINUX_TAGS:
        args += ["--platform", f"{tag}_{PIP_ARCH[arch]}"]
    return [
        *args,
        "--implementation",
        "cp",
        "--python-version",
        LAMBDA_PYTHON,
        "--only-binary=:all:",
    ]


def _trimmed(rel: str) -> bool:
    parts = rel.split("/")
    if any(rel.startswith(k + "/") or f"/{k}/" in f"/{rel}" for k in KEEP_DIRS):
        return rel.endswith(TRIM_SUFFIXES) or "__pycache__" in parts
    return any(p in TRIM_DIRS for p in parts[:-1]) or rel.endswith(TRIM_SUFFIXES)


def trim_site(site: Path) -> None:
    """Remove what never runs in Lambda: pruned parts, caches, tests, stubs, pip metadata."""
    for pattern in LAYER_PRUNE:
        for target in site.glob(pattern):
            if target.is_dir():
                shutil.rmtree(target)
            else:
                target.unlink()
    for dist_info in site.glob("*.dist-info"):
        for item in dist_info.iterdir():
            if item.name not in DIST_INFO_KEEP and item.name != "licenses" and item.is_file():
                item.unlink()
    if (site / "bin").is_dir():  # console scripts: nothing runs them in Lambda
        shutil.rmtree(site / "bin")
    for path in sorted(site.rglob("*"), key=lambda p: len(p.parts), reverse=True):
        rel = path.relative_to(site).as_posix()
        if path.is_dir() and path.name in TRIM_DIRS and not any(k in rel for k in KEEP_DIRS):
            shutil.rmtree(path, ignore_errors=True)
        elif path.is_file() and path.name.endswith(TRIM_SUFFIXES):
            path.unlink()


def layer_inputs_digest(deps: list[str], arch: str) -> str:
    payload = json.dumps(
        {
            "deps": deps,
            "arch": arch,
            "python": LAMBDA_PYTHON,
            "tags": MANYLINUX_TAGS,
            "builder": sha256_file(Path(__file__)),
        },
        sort_keys=True,
    )
    return hashlib.sha256(payload.encode()).hexdigest()


def layer_manifest_path(layer_zip: Path) -> Path:
    """layer-<arch>.zip -> layer-<arch>.json, the name modules/realtime_api looks for."""
    return layer_zip.with_suffix(".json")


def write_layer_manifest(layer_zip: Path, arch: str) -> Path:
    """Record beside the zip what it was built for; modules/realtime_api checks it at plan
    time against the function's runtime and architecture (and the zip against sha256)."""
    manifest = {
        "runtime": LAMBDA_RUNTIME,
        "python_version": LAMBDA_PYTHON,
        "architecture": arch,
        "platforms": [f"{tag}_{PIP_ARCH[arch]}" for tag in MANYLINUX_TAGS],
        "zip": layer_zip.name,
        "sha256": sha256_file(layer_zip),
    }
    path = layer_manifest_path(layer_zip)
    path.write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    return path


def build_layer(
    arch: str, deps: list[str], dist: Path, cache: Path, *, pip: list[str], force: bool = False
) -> Path:
    dest = dist / f"layer-{arch}.zip"
    stamp = dist / f".layer-{arch}.inputs"
    digest = layer_inputs_digest(deps, arch)
    if not force and dest.is_file() and stamp.is_file() and stamp.read_text() == digest:
        print(f"layer-{arch}.zip is up to date")
        write_layer_manifest(dest, arch)
        return dest
    wheels = cache / "pip" / arch
    wheels.mkdir(parents=True, exist_ok=True)
    platform = pip_platform_args(arch)
    # Download once (cached across runs), then install offline from the wheel cache.
    _run([*pip, "download", "--quiet", "--dest", str(wheels), *platform, *deps])
    with tempfile.TemporaryDirectory(prefix=f"layer-{arch}-") as tmp:
        site = Path(tmp) / "python"
        _run(
            [
                *pip,
                "install",
                "--quiet",
                "--isolated",  # offline from the wheel cache: ignore pip.conf indexes
                "--no-index",
                "--find-links",
                str(wheels),
                "--no-compile",
                "--target",
                str(site),
                *platform,
                *deps,
            ]
        )
        trim_site(site)
        entries = [(p.relative_to(tmp).as_posix(), p) for p in _walk_files(site)]
        write_zip(dest, entries)
    write_layer_manifest(dest, arch)
    stamp.write_text(digest)
    return dest


def _run(cmd: list[str]) -> None:
    env = {**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    subprocess.run(cmd, check=True, env=env)


# ---------------------------------------------------------------------------------------
# report


def _mb(n: int) -> str:
    return f"{n / 2**20:7.1f} MB"


def report(dist: Path) -> list[str]:
    """Print sizes; return warnings for layer + function combinations over the goal."""
    sizes: dict[str, tuple[int, int]] = {}
    for path in sorted(dist.glob("*.zip")):
        zipped, unzipped = path.stat().st_size, unzipped_size(path)
        sizes[path.name] = (zipped, unzipped)
        print(
            f"  {path.name:20s} zipped {_mb(zipped)}  unzipped {_mb(unzipped)}"
            f"  sha256 {sha256_file(path)[:16]}"
        )
    warnings: list[str] = []
    for layer in (n for n in sizes if n.startswith("layer-")):
        for fn in (n for n in sizes if not n.startswith("layer-")):
            total = sizes[layer][1] + sizes[fn][1]
            if total > SIZE_HARD_LIMIT:
                warnings.append(f"{layer} + {fn} = {_mb(total)} unzipped: over AWS's 250 MB limit")
            elif total > SIZE_GOAL:
                goal = f"{SIZE_GOAL / 2**20:.0f} MB"
                warnings.append(f"{layer} + {fn} = {_mb(total)} unzipped: over the {goal} goal")
    for warning in warnings:
        print(f"WARNING: {warning}", file=sys.stderr)
    return warnings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dist", type=Path, default=REPO_ROOT / "build" / "dist")
    parser.add_argument("--cache", type=Path, default=REPO_ROOT / "build" / "cache")
    parser.add_argument("--src", type=Path, default=REPO_ROOT / "functions")
    parser.add_argument("--pyproject", type=Path, default=REPO_ROOT / "pyproject.toml")
    parser.add_argument(
        "--only",
        choices=["functions", "layers", "all"],
        default="all",
        help="build only the function zips or only the layers",
    )
    parser.add_argument("--arch", choices=ARCHES, action="append", help="layer arch(es)")
    parser.add_argument("--force", action="store_true", help="rebuild layers even if up to date")
    args = parser.parse_args(argv)

    args.dist.mkdir(parents=True, exist_ok=True)
    if args.only in ("functions", "all"):
        for spec in FUNCTIONS:
            build_function(args.src, spec, args.dist)
    if args.only in ("layers", "all"):
        deps = project_dependencies(args.pyproject)
        pip = [sys.executable, "-m", "pip"]
        for arch in args.arch or ARCHES:
            build_layer(arch, deps, args.dist, args.cache, pip=pip, force=args.force)
    print(f"artifacts in {args.dist}:")
    report(args.dist)
    return 0


if __name__ == "__main__":
    sys.exit(main())
