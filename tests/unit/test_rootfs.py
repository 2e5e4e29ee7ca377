"""inferstack.local.rootfs: mirror from apt sources, architecture names, cache stamp and lock."""

from __future__ import annotations

import json
import platform
import threading
import time
from pathlib import Path

import pytest
from inferstack.local import rootfs

DEB822 = """\
# the machine's Debian sources
Types: deb
URIs: http://mirror.example.invalid/debian
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: http://mirror.example.invalid/debian-security
Suites: bookworm-security
Components: main
"""

SECURITY_FIRST = """\
Types: deb
URIs: http://security.example.invalid/debian-security
Suites: trixie-security
Components: main

Types: deb-src
URIs: http://src.example.invalid/debian
Suites: trixie
Components: main

Types: deb
URIs: http://disabled.example.invalid/debian
Suites: trixie
Components: main
Enabled: no

Types: deb
URIs: http://archive.example.invalid/debian/
Suites: trixie
Components: main contrib
Signed-By:
 -----BEGIN PGP PUBLIC KEY BLOCK-----
 .
 mQINBGPL0BUBEADmW5NdOOHwPIJlgPu6JDcKw/NZJPR8lsD3K87ZM18gzyQZJD+w
 -----END PGP PUBLIC KEY BLOCK-----
"""

ONE_LINE = """\
# deb http://commented.example.invalid/debian bookworm main
deb-src http://src.example.invalid/debian bookworm main
deb [arch=amd64 signed-by=/etc/x.gpg] https://nodes.example.invalid/node nodistro main
deb http://security.example.invalid/debian-security bookworm-security main
deb [arch=amd64] http://one.example.invalid/debian bookworm-backports main  # backports
"""


def test_deb822_debian_archive_not_security() -> None:
    sources = rootfs.parse_deb822_sources(DEB822)
    assert [s.suites for s in sources] == [("bookworm", "bookworm-updates"), ("bookworm-security",)]
    assert rootfs.mirror_from_sources(sources) == "http://mirror.example.invalid/debian"


def test_deb822_skips_security_source_disabled_entries_and_reads_continuations() -> None:
    sources = rootfs.parse_deb822_sources(SECURITY_FIRST)
    assert len(sources) == 4
    assert sources[2].enabled is False
    assert rootfs.mirror_from_sources(sources) == "http://archive.example.invalid/debian"


def test_one_line_format_with_options_comments_and_other_repositories() -> None:
    sources = rootfs.parse_one_line_sources(ONE_LINE)
    assert [(s.types, s.uris[0], s.suites) for s in sources] == [
        (("deb-src",), "http://src.example.invalid/debian", ("bookworm",)),
        (("deb",), "https://nodes.example.invalid/node", ("nodistro",)),
        (("deb",), "http://security.example.invalid/debian-security", ("bookworm-security",)),
        (("deb",), "http://one.example.invalid/debian", ("bookworm-backports",)),
    ]
    assert rootfs.mirror_from_sources(sources) == "http://one.example.invalid/debian"


def test_no_debian_archive_in_sources() -> None:
    sources = rootfs.parse_one_line_sources(
        "deb http://ubuntu.example.invalid/ubuntu jammy main\n"
        "deb http://security.example.invalid/debian-security trixie-security main\n"
    )
    assert rootfs.mirror_from_sources(sources) is None


def _apt_dir(tmp_path: Path, files: dict[str, str]) -> Path:
    apt = tmp_path / "apt"
    (apt / "sources.list.d").mkdir(parents=True)
    for name, text in files.items():
        (apt / name).write_text(text)
    return apt


def test_machine_sources_read_in_apt_order_and_unread_suffixes_ignored(tmp_path: Path) -> None:
    apt = _apt_dir(
        tmp_path,
        {
            "sources.list.d/a.list.disabled": "deb http://off.example.invalid/debian trixie main\n",
            "sources.list.d/b.sources": DEB822,
            "sources.list.d/c.list": "deb http://later.example.invalid/debian trixie main\n",
        },
    )
    assert rootfs.debian_mirror({}, apt) == "http://mirror.example.invalid/debian"
    (apt / "sources.list").write_text("deb http://first.example.invalid/debian trixie main\n")
    assert rootfs.debian_mirror({}, apt) == "http://first.example.invalid/debian"


def test_environment_overrides_sources_and_missing_mirror_is_an_error(tmp_path: Path) -> None:
    apt = _apt_dir(tmp_path, {"sources.list": ONE_LINE})
    env = {rootfs.MIRROR_ENV: "http://env.example.invalid/debian/"}
    assert rootfs.debian_mirror(env, apt) == "http://env.example.invalid/debian"
    empty = _apt_dir(tmp_path / "empty", {})
    with pytest.raises(rootfs.RootfsError, match=rootfs.MIRROR_ENV):
        rootfs.debian_mirror({}, empty)


@pytest.mark.parametrize(
    ("given", "debian", "qemu"),
    [
        ("x86_64", "amd64", "qemu-x86_64-static"),
        ("amd64", "amd64", "qemu-x86_64-static"),
        ("arm64", "arm64", "qemu-aarch64-static"),
        ("aarch64", "arm64", "qemu-aarch64-static"),
        ("AArch64", "arm64", "qemu-aarch64-static"),
    ],
)
def test_architecture_names(given: str, debian: str, qemu: str) -> None:
    assert rootfs.debian_arch(given) == debian
    assert rootfs.qemu_binary(given) == qemu


def test_unknown_architecture_and_host_default() -> None:
    with pytest.raises(rootfs.RootfsError, match="unsupported architecture"):
        rootfs.debian_arch("riscv64")
    assert rootfs.debian_arch(None) == rootfs.debian_arch(platform.machine())
    assert not rootfs.is_foreign(None)


def test_commands_chroot_for_host_arch_qemu_for_another(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(rootfs, "host_arch", lambda: "amd64")
    (tmp_path / "usr" / "bin").mkdir(parents=True)
    (tmp_path / "usr" / "bin" / "python3.13").touch()
    for host_name in ("x86_64", "amd64"):
        argv = rootfs.rootfs_command(tmp_path, ["python3.13", "-c", "1"], host_name)
        assert Path(argv[0]).name == "chroot" and Path(argv[0]).is_absolute()
        assert argv[1:] == [str(tmp_path), "python3.13", "-c", "1"]
    argv = rootfs.rootfs_command(tmp_path, ["python3.13", "-V"], "aarch64")
    assert Path(argv[0]).name == "qemu-aarch64-static"
    # Lambda's arm64 CPU (Graviton2), the one proc/cpuinfo in the rootfs describes
    assert argv[1:] == [
        "-cpu", "neoverse-n1", "-L", str(tmp_path), f"{tmp_path}/usr/bin/python3.13", "-V",
    ]  # fmt: skip
    with pytest.raises(rootfs.RootfsError, match="not found"):
        rootfs.rootfs_command(tmp_path, ["python3.12"], "arm64")


def test_mounts_under() -> None:
    mounts = (
        "proc /proc proc rw 0 0\n"
        "proc /cache/.trixie-amd64.tmp-x/root/proc proc rw 0 0\n"
        "tmpfs /cache/trixie-amd64-other tmpfs rw 0 0\n"
    )
    assert rootfs.mounts_under(Path("/cache/.trixie-amd64.tmp-x"), mounts) == [
        "/cache/.trixie-amd64.tmp-x/root/proc"
    ]
    assert rootfs.mounts_under(Path("/cache/trixie-amd64"), mounts) == []


# ---------------------------------------------------------------------------- cache entries


class FakeDebootstrap:
    """Stands in for the real build: writes a marker file, optionally slowly or failing."""

    def __init__(self, delay: float = 0.0, fail: bool = False) -> None:
        self.calls: list[tuple[Path, str]] = []
        self.delay = delay
        self.fail = fail
        self._lock = threading.Lock()

    def __call__(self, target: Path, deb_arch: str) -> None:
        with self._lock:
            self.calls.append((target, deb_arch))
        target.mkdir(parents=True)
        (target / "usr").mkdir()
        time.sleep(self.delay)
        if self.fail:
            raise rootfs.RootfsError("debootstrap failed")
        (target / "usr" / "built").write_text(deb_arch)


def test_built_once_then_reused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake = FakeDebootstrap()
    monkeypatch.setattr(rootfs, "_build", fake)
    path = rootfs.ensure_rootfs("aarch64", cache_dir=tmp_path)
    assert path == tmp_path / f"{rootfs.SUITE}-arm64"
    assert (path / "usr" / "built").read_text() == "arm64"
    stamp = json.loads((path / rootfs.STAMP_NAME).read_text())
    assert stamp["recipe"] == rootfs.recipe("arm64")
    assert rootfs.ensure_rootfs("arm64", cache_dir=tmp_path) == path
    assert len(fake.calls) == 1
    # built in a temporary folder beside the entry, nothing of it left
    assert fake.calls[0][0].parent.name.startswith(f".{rootfs.SUITE}-arm64.tmp-")
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        f".{rootfs.SUITE}-arm64.lock",
        f"{rootfs.SUITE}-arm64",
    ]


def test_interrupted_build_leaves_no_entry_and_is_redone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(rootfs, "_build", FakeDebootstrap(fail=True))
    with pytest.raises(rootfs.RootfsError):
        rootfs.ensure_rootfs("amd64", cache_dir=tmp_path)
    assert not (tmp_path / f"{rootfs.SUITE}-amd64").exists()
    # a killed process leaves its temporary folder, and an entry without a stamp
    (tmp_path / f".{rootfs.SUITE}-amd64.tmp-killed" / "root" / "usr").mkdir(parents=True)
    (tmp_path / f"{rootfs.SUITE}-amd64" / "usr").mkdir(parents=True)
    fake = FakeDebootstrap()
    monkeypatch.setattr(rootfs, "_build", fake)
    path = rootfs.ensure_rootfs("x86_64", cache_dir=tmp_path)
    assert len(fake.calls) == 1
    assert (path / "usr" / "built").read_text() == "amd64"
    assert not (tmp_path / f".{rootfs.SUITE}-amd64.tmp-killed").exists()


def test_entry_of_another_recipe_is_rebuilt(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = FakeDebootstrap()
    monkeypatch.setattr(rootfs, "_build", fake)
    rootfs.ensure_rootfs("amd64", cache_dir=tmp_path)
    monkeypatch.setattr(rootfs, "INCLUDE", (*rootfs.INCLUDE, "libexample1"))
    rootfs.ensure_rootfs("amd64", cache_dir=tmp_path)
    assert len(fake.calls) == 2


def test_concurrent_builds_wait_for_one(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake = FakeDebootstrap(delay=0.5)
    monkeypatch.setattr(rootfs, "_build", fake)
    results: list[Path] = []

    def build() -> None:
        results.append(rootfs.ensure_rootfs("arm64", cache_dir=tmp_path))

    threads = [threading.Thread(target=build) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(fake.calls) == 1
    assert results == [tmp_path / f"{rootfs.SUITE}-arm64"] * 3


def test_refuses_to_remove_a_tree_with_mounts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "root" / "proc").mkdir(parents=True)
    monkeypatch.setattr(rootfs, "mounts_under", lambda path: [str(path / "root" / "proc")])
    with pytest.raises(rootfs.RootfsError, match="unmount"):
        rootfs.remove_tree(tmp_path / "root")
    assert (tmp_path / "root" / "proc").is_dir()


def test_foreign_arm64_rootfs_describes_the_emulated_cpu(tmp_path: Path) -> None:
    """qemu-user 7.2 shows arm64 programs the host's x86 /proc/cpuinfo: LiteRT crashes on it."""
    (tmp_path / "proc").symlink_to("/proc")  # as debootstrap --foreign leaves it
    rootfs.write_emulated_cpuinfo(tmp_path, "arm64")
    assert not (tmp_path / "proc").is_symlink()
    text = (tmp_path / "proc" / "cpuinfo").read_text()
    blocks = [b for b in text.split("\n\n") if b.strip()]
    assert blocks[0].startswith("processor\t: 0\n") and len(blocks) >= 64
    assert "CPU implementer\t: 0x41" in blocks[1] and "CPU part\t: 0xd0c" in blocks[1]
    assert "asimddp" in blocks[0].split("Features\t:")[1].splitlines()[0]
    if rootfs.is_foreign("arm64"):  # an arm64 host runs it natively
        assert rootfs.recipe("arm64")["emulated_cpu"] == rootfs.QEMU_CPU["arm64"] == "neoverse-n1"


def test_entry_made_during_the_build_is_replaced(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A process still holding the path of a removed entry may write into it meanwhile."""
    fake = FakeDebootstrap()

    def build_while_another_writes(target: Path, deb_arch: str) -> None:
        (tmp_path / f"{rootfs.SUITE}-arm64" / "var" / "runtime").mkdir(parents=True)
        fake(target, deb_arch)

    monkeypatch.setattr(rootfs, "_build", build_while_another_writes)
    path = rootfs.ensure_rootfs("arm64", cache_dir=tmp_path)
    assert (path / "usr" / "built").read_text() == "arm64"
    assert not (path / "var").exists()
