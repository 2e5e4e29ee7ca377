"""Debian root file systems with the Lambda runtime's Python (python3.13), built once, cached.

The managed python3.13 runtime is Amazon Linux 2023 with CPython 3.13; Debian trixie ships
CPython 3.13 too, so the built zips (cp313 wheels in the layer) can run here as they run on
AWS. `ensure_rootfs()` returns such a root file system, built with debootstrap on first use
and cached under build/rootfs/<suite>-<arch>/:

- the host's architecture: `debootstrap --variant=minbase --include=python3.13 trixie`;
  programs run in it with `chroot` (root);
- another architecture (arm64 on an x86_64 host): `debootstrap --foreign` downloads the
  packages and unpacks the essential ones; every downloaded .deb is then unpacked with
  `dpkg-deb -x` (no second stage, no maintainer scripts, no binfmt_misc). Programs run under
  Debian's qemu-user-static: `qemu-aarch64-static -cpu neoverse-n1 -L <rootfs>
  <rootfs>/usr/bin/python3.13` (see QEMU_CPU for the CPU and the proc/cpuinfo it needs).

The Debian mirror is the one the machine's apt sources name (/etc/apt/sources.list.d/*.sources
in deb822 form, *.list and /etc/apt/sources.list in one-line form) or INFERSTACK_DEBIAN_MIRROR.
debootstrap and qemu-user-static are installed with apt-get when missing.

A build happens in a temporary folder beside the cache entry, under a file lock, and is
renamed into place after a stamp file recording what was built is written; an interrupted
build leaves no entry and is redone, and a second process waits for the first one's result.

    python -m inferstack.local.rootfs [--arch x86_64 --arch arm64]   # prebuild (make rootfs)
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[3]
DEFAULT_CACHE_DIR = REPO_ROOT / "build" / "rootfs"
SUITE = "trixie"
PYTHON = "python3.13"
# What the artifacts need at run time beyond --variant=minbase: the runtime's Python. The
# layer's native libraries (LiteRT, Pillow, numpy) need only libc, libm, libgcc_s and
# libstdc++, which minbase already has (apt depends on libstdc++6);
# tests/integration/test_arm64_artifacts.py imports them from the arm64 layer.
INCLUDE = (PYTHON,)
# Bumped when the recipe changes in a way the stamp's other fields do not show.
RECIPE_VERSION = 1
STAMP_NAME = ".inferstack-rootfs.json"
MIRROR_ENV = "INFERSTACK_DEBIAN_MIRROR"
APT_DIR = Path("/etc/apt")

# Both spellings: Lambda/uname (x86_64, arm64/aarch64) and Debian (amd64, arm64).
_DEBIAN_ARCH = {"x86_64": "amd64", "amd64": "amd64", "arm64": "arm64", "aarch64": "arm64"}
_QEMU_ARCH = {"amd64": "x86_64", "arm64": "aarch64"}
# The CPU qemu emulates for arm64: Lambda's arm64 functions run on AWS Graviton processors
# (https://docs.aws.amazon.com/lambda/latest/dg/foundation-arch.html; arm64 launched on
# Graviton2, a Neoverse N1, whose ARMv8.2 features every Graviton has). qemu-user 7.2 passes the
# host's /proc/cpuinfo through, whose x86 format the arm64 cpuinfo library (XNNPACK, ruy in
# LiteRT) cannot parse: the interpreter then segfaults. So a foreign arm64 rootfs carries a
# proc/cpuinfo of this CPU, which qemu -L finds before the host's; -cpu makes the emulated
# CPU's features (HWCAP) agree with it.
QEMU_CPU = {"arm64": "neoverse-n1"}
_CPUINFO_BLOCK = {
    "arm64": (
        "processor\t: {n}\n"
        "BogoMIPS\t: 243.75\n"
        "Features\t: fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid "
        "asimdrdm lrcpc dcpop asimddp ssbs\n"
        "CPU implementer\t: 0x41\n"
        "CPU architecture: 8\n"
        "CPU variant\t: 0x3\n"
        "CPU part\t: 0xd0c\n"
        "CPU revision\t: 1\n\n"
    ),
}
# Entries beyond the CPUs the host has are ignored by the parser; enough for any host.
_CPUINFO_PROCESSORS = 256
# Debian release names and aliases: an apt source naming one of them (or its -updates,
# -backports, -proposed-updates) is a Debian archive mirror; -security is a different archive.
_DEBIAN_SUITES = frozenset(
    {
        "buster", "bullseye", "bookworm", "trixie", "forky", "duke", "sid",
        "stable", "testing", "unstable", "oldstable", "oldoldstable", "experimental",
    }
)  # fmt: skip


class RootfsError(RuntimeError):
    pass


# ------------------------------------------------------------------------------ architectures


def debian_arch(arch: str | None = None) -> str:
    """Debian's name for an architecture given either way (None: this machine's)."""
    name = (arch or platform.machine()).strip().lower()
    try:
        return _DEBIAN_ARCH[name]
    except KeyError:
        raise RootfsError(
            f"unsupported architecture {name!r}: one of {sorted(_DEBIAN_ARCH)}"
        ) from None


def host_arch() -> str:
    return debian_arch(None)


def is_foreign(arch: str | None) -> bool:
    """True when programs of `arch` need emulation on this machine."""
    return debian_arch(arch) != host_arch()


def qemu_binary(arch: str | None) -> str:
    """The qemu-user-static emulator for `arch` (qemu-aarch64-static for arm64)."""
    return f"qemu-{_QEMU_ARCH[debian_arch(arch)]}-static"


# ---------------------------------------------------------------------------------- mirror


@dataclass(frozen=True)
class AptSource:
    types: tuple[str, ...]
    uris: tuple[str, ...]
    suites: tuple[str, ...]
    components: tuple[str, ...]
    enabled: bool = True


def parse_deb822_sources(text: str) -> list[AptSource]:
    """Parse a deb822 .sources file (sources.list(5)): paragraphs of `Field: value` lines."""
    sources: list[AptSource] = []
    for paragraph in _paragraphs(text):
        fields: dict[str, str] = {}
        key = ""
        for line in paragraph:
            if line[:1] in (" ", "\t"):  # continuation line (e.g. an inline Signed-By key)
                if key:
                    fields[key] += " " + line.strip()
                continue
            name, sep, value = line.partition(":")
            if not sep:
                continue
            key = name.strip().lower()
            fields[key] = value.strip()
        if "uris" not in fields or "suites" not in fields:
            continue
        sources.append(
            AptSource(
                types=tuple(fields.get("types", "deb").split()),
                uris=tuple(fields["uris"].split()),
                suites=tuple(fields["suites"].split()),
                components=tuple(fields.get("components", "").split()),
                enabled=fields.get("enabled", "yes").lower() not in ("no", "false", "0"),
            )
        )
    return sources


def _paragraphs(text: str) -> Iterator[list[str]]:
    paragraph: list[str] = []
    for raw in text.splitlines():
        if raw.lstrip().startswith("#"):
            continue
        if not raw.strip():
            if paragraph:
                yield paragraph
            paragraph = []
            continue
        paragraph.append(raw.rstrip())
    if paragraph:
        yield paragraph


def parse_one_line_sources(text: str) -> list[AptSource]:
    """Parse one-line sources.list entries: `deb [options] uri suite [component...]`."""
    sources: list[AptSource] = []
    for raw in text.splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        kind, _, rest = line.partition(" ")
        rest = rest.strip()
        if rest.startswith("["):  # [arch=amd64 signed-by=...]
            end = rest.find("]")
            if end < 0:
                continue
            rest = rest[end + 1 :].strip()
        words = rest.split()
        if kind not in ("deb", "deb-src") or len(words) < 2:
            continue
        sources.append(AptSource((kind,), (words[0],), (words[1],), tuple(words[2:])))
    return sources


def _is_debian_archive(source: AptSource) -> bool:
    if not source.enabled or "deb" not in source.types:
        return False
    for suite in source.suites:
        base = suite.split("/", 1)[0]
        for suffix in ("-updates", "-backports", "-proposed-updates"):
            base = base.removesuffix(suffix)
        if base in _DEBIAN_SUITES:
            return True
    return False


def mirror_from_sources(sources: Sequence[AptSource]) -> str | None:
    """The first http(s)/file URI of an enabled Debian archive entry (not -security)."""
    for source in sources:
        if not _is_debian_archive(source):
            continue
        for uri in source.uris:
            if uri.startswith(("http://", "https://", "file:")):
                return uri.rstrip("/")
    return None


def read_apt_sources(apt_dir: Path = APT_DIR) -> list[AptSource]:
    """The machine's apt sources, in the order apt reads them."""
    sources: list[AptSource] = []
    main_list = apt_dir / "sources.list"
    if main_list.is_file():
        sources += parse_one_line_sources(main_list.read_text(errors="replace"))
    parts = apt_dir / "sources.list.d"
    if parts.is_dir():
        for path in sorted(parts.iterdir()):
            if path.suffix == ".sources":
                sources += parse_deb822_sources(path.read_text(errors="replace"))
            elif path.suffix == ".list":
                sources += parse_one_line_sources(path.read_text(errors="replace"))
    return sources


def debian_mirror(environ: dict[str, str] | None = None, apt_dir: Path = APT_DIR) -> str:
    """INFERSTACK_DEBIAN_MIRROR, else the Debian mirror the machine's apt sources name."""
    env = os.environ if environ is None else environ
    if env.get(MIRROR_ENV, "").strip():
        return env[MIRROR_ENV].strip().rstrip("/")
    mirror = mirror_from_sources(read_apt_sources(apt_dir))
    if mirror is None:
        raise RootfsError(
            f"no Debian mirror in {apt_dir}/sources.list or sources.list.d/: "
            f"set {MIRROR_ENV} to a Debian archive URL"
        )
    return mirror


# ------------------------------------------------------------------------------ cache entry


def recipe(arch: str, suite: str = SUITE) -> dict[str, object]:
    """What a cache entry is built from; a stamp that differs means rebuild."""
    return {
        "suite": suite,
        "arch": arch,
        "variant": "minbase",
        "include": list(INCLUDE),
        "foreign": is_foreign(arch),
        "recipe_version": RECIPE_VERSION,
    } | ({"emulated_cpu": QEMU_CPU[arch]} if is_foreign(arch) and arch in QEMU_CPU else {})


def stamp_matches(rootfs: Path, expected: dict[str, object]) -> bool:
    """The entry was completely built from this recipe."""
    try:
        stamp = json.loads((rootfs / STAMP_NAME).read_text())
    except (OSError, ValueError):
        return False
    return isinstance(stamp, dict) and stamp.get("recipe") == expected


def write_stamp(rootfs: Path, expected: dict[str, object], seconds: float) -> None:
    stamp = {"recipe": expected, "build_seconds": round(seconds, 1), "built_at": int(time.time())}
    tmp = rootfs / (STAMP_NAME + ".tmp")
    tmp.write_text(json.dumps(stamp, indent=2, sort_keys=True) + "\n")
    tmp.replace(rootfs / STAMP_NAME)


@contextlib.contextmanager
def file_lock(path: Path) -> Iterator[None]:
    """An exclusive flock on `path`, held until the block ends (released if the process dies)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def mounts_under(path: Path, mounts: str | None = None) -> list[str]:
    """Mount points at or inside `path` (an interrupted debootstrap can leave /proc mounted).

    `mounts` is /proc/self/mounts' text (read when None).
    """
    prefix = str(path.resolve()).rstrip("/") + "/"
    if mounts is None:
        try:
            mounts = Path("/proc/self/mounts").read_text()
        except OSError:
            return []
    points = [line.split()[1].replace("\\040", " ") for line in mounts.splitlines() if " " in line]
    return [p for p in points if (p.rstrip("/") + "/").startswith(prefix)]


def remove_tree(path: Path) -> None:
    """Remove a (partial) root file system; refuse while anything is mounted inside it."""
    if not path.exists() and not path.is_symlink():
        return
    mounted = mounts_under(path)
    if mounted:
        raise RootfsError(f"{path} has mounts inside it ({', '.join(mounted)}): unmount them first")
    shutil.rmtree(path)


# ------------------------------------------------------------------------------------ build


def ensure_rootfs(arch: str | None = None, *, cache_dir: Path | None = None) -> Path:
    """A Debian trixie root file system with python3.13 for `arch` (None: this machine's).

    Built on first use (about 30 s natively; root and the Debian mirror needed), then reused.
    """
    deb_arch = debian_arch(arch)
    cache = Path(cache_dir) if cache_dir is not None else DEFAULT_CACHE_DIR
    name = f"{SUITE}-{deb_arch}"
    final = cache / name
    expected = recipe(deb_arch)
    if stamp_matches(final, expected):
        return final
    with file_lock(cache / f".{name}.lock"):
        if stamp_matches(final, expected):  # built by another process while we waited
            return final
        for stale in cache.glob(f".{name}.tmp-*"):  # left by an interrupted build
            remove_tree(stale)
        remove_tree(final)  # unstamped or from another recipe
        started = time.monotonic()
        work = Path(tempfile.mkdtemp(prefix=f".{name}.tmp-", dir=cache))
        try:
            _build(work / "root", deb_arch)
            write_stamp(work / "root", expected, time.monotonic() - started)
            remove_tree(final)  # made meanwhile by a process that wrote into a removed entry
            (work / "root").rename(final)
        finally:
            with contextlib.suppress(OSError, RootfsError):  # else the next build removes it
                remove_tree(work)
    return final


def _build(target: Path, deb_arch: str) -> None:
    if os.geteuid() != 0:
        raise RootfsError("building a root file system needs root (debootstrap, chroot)")
    tools = {"debootstrap": "debootstrap"}
    if deb_arch != host_arch():
        tools["qemu-user-static"] = qemu_binary(deb_arch)
    ensure_host_packages(tools)
    mirror = debian_mirror()
    argv = ["debootstrap", "--variant=minbase", f"--include={','.join(INCLUDE)}"]
    if deb_arch != host_arch():
        argv += ["--foreign", f"--arch={deb_arch}"]
    _run([*argv, SUITE, str(target), mirror])
    if deb_arch != host_arch():
        unpack_downloaded_debs(target)
        write_emulated_cpuinfo(target, deb_arch)
    for deb in (target / "var" / "cache" / "apt" / "archives").glob("*.deb"):
        deb.unlink()  # installed or unpacked: the downloads are not needed again
    _check_python(target, deb_arch)


def unpack_downloaded_debs(target: Path) -> None:
    """Unpack every package debootstrap --foreign downloaded (what its second stage would)."""
    archives = target / "var" / "cache" / "apt" / "archives"
    debs = sorted(archives.glob("*.deb"))
    if not debs:
        raise RootfsError(f"debootstrap --foreign downloaded no packages into {archives}")
    for deb in debs:
        _run(["dpkg-deb", "-x", str(deb), str(target)])
    # The second stage's own files: never run here.
    shutil.rmtree(target / "debootstrap", ignore_errors=True)


def write_emulated_cpuinfo(target: Path, deb_arch: str) -> None:
    """proc/cpuinfo of the CPU qemu emulates (see QEMU_CPU), found by qemu -L before the host's."""
    block = _CPUINFO_BLOCK.get(deb_arch)
    if block is None:
        return
    proc = target / "proc"
    if proc.is_symlink() or proc.is_file():  # debootstrap --foreign links proc -> /proc
        proc.unlink()
    proc.mkdir(exist_ok=True)
    text = "".join(block.format(n=n) for n in range(_CPUINFO_PROCESSORS))
    (proc / "cpuinfo").write_text(text)


def _check_python(target: Path, deb_arch: str) -> None:
    argv = rootfs_command(target, [f"/usr/bin/{PYTHON}", "-c", "import sys; print(sys.version)"],
                          deb_arch)  # fmt: skip
    done = subprocess.run(argv, capture_output=True, text=True, check=False)
    if done.returncode != 0 or not done.stdout.startswith(PYTHON.removeprefix("python")):
        raise RootfsError(f"{PYTHON} does not run in {target}: {done.stderr or done.stdout}")


def ensure_host_packages(programs: dict[str, str]) -> None:
    """apt-get install each package (key) whose program (value) is missing.

    apt-get update first when the install fails (stale package lists).
    """
    missing = [package for package, program in programs.items() if shutil.which(program) is None]
    if not missing:
        return
    if shutil.which("apt-get") is None:
        raise RootfsError(f"{', '.join(missing)} missing and no apt-get to install them")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = ["apt-get", "install", "-y", "--no-install-recommends", *missing]
    if subprocess.run(install, env=env, check=False).returncode != 0:
        _run(["apt-get", "update"], env=env)
        _run(install, env=env)


def _run(argv: Sequence[str], env: dict[str, str] | None = None) -> None:
    done = subprocess.run(list(argv), capture_output=True, text=True, env=env, check=False)
    if done.returncode != 0:
        tail = "\n".join((done.stdout + done.stderr).strip().splitlines()[-20:])
        raise RootfsError(f"{' '.join(argv[:3])} ... failed ({done.returncode}):\n{tail}")


# -------------------------------------------------------------------------------------- run


def rootfs_command(rootfs: Path, argv: Sequence[str], arch: str | None = None) -> list[str]:
    """The host command that runs `argv` (a program path inside the root file system) in it.

    This machine's architecture: `chroot <rootfs> argv...` (root; the caller sets the
    environment, and mounts /proc etc. if the program needs them).
    Another architecture: `qemu-<arch>-static [-cpu <QEMU_CPU>] -L <rootfs> <rootfs>/<program>
    args...`: the emulator looks paths up under <rootfs> first (the dynamic loader, shared
    libraries, proc/cpuinfo), then on the host, so no chroot is involved and host paths (a
    test's temp dir) are visible.
    """
    if not argv:
        raise ValueError("empty argv")
    program, *args = argv
    if not is_foreign(arch):
        # resolved here: the environment the command runs with may have no sbin on its PATH
        chroot = shutil.which("chroot") or "/usr/sbin/chroot"
        return [chroot, str(rootfs), program, *args]
    inside = program if program.startswith("/") else _find_program(rootfs, program)
    qemu = shutil.which(qemu_binary(arch)) or qemu_binary(arch)
    cpu = QEMU_CPU.get(debian_arch(arch))
    return [qemu, *(["-cpu", cpu] if cpu else []), "-L", str(rootfs), str(rootfs) + inside, *args]


def _find_program(rootfs: Path, name: str) -> str:
    for folder in ("/usr/local/bin", "/usr/bin", "/usr/sbin", "/bin", "/sbin"):
        if (rootfs / folder.lstrip("/") / name).exists():
            return f"{folder}/{name}"
    raise RootfsError(f"{name} not found in {rootfs}")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m inferstack.local.rootfs",
        description=f"Build (once) the Debian {SUITE} root file systems with {PYTHON}.",
    )
    parser.add_argument(
        "--arch", action="append", help="x86_64/amd64 or arm64/aarch64 (repeatable; default: host)"
    )
    parser.add_argument("--cache-dir", type=Path, default=None, help=f"default {DEFAULT_CACHE_DIR}")
    args = parser.parse_args(argv)
    for arch in args.arch or [None]:
        started = time.monotonic()
        try:
            path = ensure_rootfs(arch, cache_dir=args.cache_dir)
        except RootfsError as exc:
            print(f"rootfs: {exc}", file=sys.stderr)
            return 1
        print(f"{path} ({time.monotonic() - started:.1f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
