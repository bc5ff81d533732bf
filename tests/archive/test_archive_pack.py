"""pack_service: deterministic output that tar, tarfile and unpack_archive all read."""

from __future__ import annotations

import errno
import hashlib
import io
import os
import re
import shutil
import subprocess
import tarfile
from pathlib import Path

import pytest

from p2p_orchestrator.archive import pack_service, pack_service_bytes, unpack_archive
from p2p_orchestrator.errors import ServiceInstallationError

TAR = shutil.which("tar") or ""


def make_tree(root: Path, name: str = "svc") -> Path:
    service = root / name
    (service / "lib" / "sub").mkdir(parents=True)
    (service / "empty").mkdir()
    (service / "main.py").write_text("print('main')\n")
    (service / "tool.sh").write_text("#!/bin/sh\necho hi\n")
    (service / "tool.sh").chmod(0o755)
    (service / "lib" / "a.py").write_text("A = 1\n")
    (service / "lib" / "sub" / "b.txt").write_bytes(bytes(range(256)) * 100)
    (service / "lib-x.txt").write_text("sorts between lib and lib/\n")
    return service


def test_same_tree_same_bytes(tmp_path: Path) -> None:
    first = make_tree(tmp_path / "one")
    second = make_tree(tmp_path / "two")
    data = pack_service_bytes(first)
    assert pack_service_bytes(first) == data
    assert pack_service_bytes(second) == data
    out = io.BytesIO()
    assert pack_service(first, out) == hashlib.sha256(data).hexdigest()
    assert out.getvalue() == data


def test_times_and_non_exec_permissions_do_not_change_the_hash(tmp_path: Path) -> None:
    service = make_tree(tmp_path)
    before = pack_service_bytes(service)
    for path in [service, *service.rglob("*")]:
        os.utime(path, (1_000_000, 2_000_000))
    (service / "main.py").chmod(0o600)
    (service / "tool.sh").chmod(0o700)
    (service / "lib").chmod(0o700)
    assert pack_service_bytes(service) == before
    (service / "main.py").chmod(0o744)
    assert pack_service_bytes(service) != before


def test_archive_metadata_is_normalized(tmp_path: Path) -> None:
    data = pack_service_bytes(make_tree(tmp_path))
    assert data[:4] == b"\x1f\x8b\x08\x00"  # no FNAME, FEXTRA or FCOMMENT
    assert data[4:8] == bytes(4)  # gzip mtime 0
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        members = tar.getmembers()
    names = [member.name for member in members]
    assert names == sorted(names)
    assert names[0] == "svc"
    assert "svc/empty" in names
    for member in members:
        assert (member.uid, member.gid, member.uname, member.gname, member.mtime) == (0, 0, "", "", 0)
        executable = member.isdir() or member.name == "svc/tool.sh"
        assert member.mode == (0o755 if executable else 0o644), member.name


def test_skips_caches_and_vcs(tmp_path: Path) -> None:
    service = make_tree(tmp_path)
    (service / "__pycache__").mkdir()
    (service / "__pycache__" / "main.cpython-311.pyc").write_bytes(b"\x00")
    (service / "lib" / "a.pyc").write_bytes(b"\x00")
    (service / ".git").mkdir()
    (service / ".git" / "HEAD").write_text("ref\n")
    (service / ".DS_Store").write_bytes(b"\x00")
    assert pack_service_bytes(service) == pack_service_bytes(make_tree(tmp_path / "clean"))


@pytest.mark.skipif(not TAR, reason="no tar binary")
def test_system_tar_archive_unpacks(tmp_path: Path) -> None:
    make_tree(tmp_path / "src")
    archive = tmp_path / "svc.tar.gz"
    subprocess.run([TAR, "-czf", str(archive), "svc/"], cwd=tmp_path / "src", check=True)
    dest = tmp_path / "dest"
    dest.mkdir()
    with archive.open("rb") as source:
        result = unpack_archive(source, dest)
    assert result.service_name == "svc"
    assert (dest / "lib" / "sub" / "b.txt").read_bytes() == bytes(range(256)) * 100
    assert (dest / "tool.sh").stat().st_mode & 0o100


@pytest.mark.skipif(not TAR, reason="no tar binary")
def test_system_tar_reads_packed_archive(tmp_path: Path) -> None:
    service = make_tree(tmp_path / "src")
    archive = tmp_path / "svc.tar.gz"
    archive.write_bytes(pack_service_bytes(service))
    out = tmp_path / "out"
    out.mkdir()
    subprocess.run([TAR, "-xzf", str(archive)], cwd=out, check=True)
    for path in service.rglob("*"):
        twin = out / "svc" / path.relative_to(service)
        assert twin.is_dir() if path.is_dir() else twin.read_bytes() == path.read_bytes()


@pytest.mark.parametrize(
    ("setup", "fragment"),
    [
        pytest.param(lambda s: (s / "link.py").symlink_to(s / "main.py"), "symbolic link", id="symlink"),
        pytest.param(lambda s: (s / "dirlink").symlink_to(s / "lib"), "symbolic link", id="dir-symlink"),
        pytest.param(lambda s: os.mkfifo(s / "pipe"), "special file", id="fifo"),
        pytest.param(lambda s: (s / "main.py").unlink(), "no main.py", id="no-main"),
        pytest.param(lambda s: (s / "fast.so").write_bytes(b""), "compiled or native", id="native"),
        pytest.param(lambda s: (s / "evil.pth").write_bytes(b""), "compiled or native", id="pth"),
        pytest.param(lambda s: (s / "MAIN.py").write_text(""), "collides", id="case-collision"),
        pytest.param(lambda s: (s / "a\\b.txt").write_text(""), "backslash", id="backslash"),
        pytest.param(lambda s: (s / "a\nb.txt").write_text(""), "U+000A", id="newline"),
        pytest.param(
            lambda s: Path(os.fsdecode(bytes(s) + b"/\xff.txt")).write_text(""), "cannot pack", id="utf8"
        ),
    ],
)
def test_refuses_what_unpack_would_refuse(tmp_path: Path, setup: object, fragment: str) -> None:
    service = make_tree(tmp_path)
    setup(service)  # type: ignore[operator]
    with pytest.raises(ServiceInstallationError, match=re.escape(fragment)) as info:
        pack_service_bytes(service)
    assert info.value.code == "bad_source"


def test_refuses_bad_service_name(tmp_path: Path) -> None:
    with pytest.raises(ServiceInstallationError) as info:
        pack_service_bytes(make_tree(tmp_path, "Bad-Name"))
    assert info.value.code == "bad_service_name"


def test_refuses_symlinked_source_dir(tmp_path: Path) -> None:
    service = make_tree(tmp_path / "real")
    (tmp_path / "svc").symlink_to(service)
    with pytest.raises(ServiceInstallationError) as info:
        pack_service_bytes(tmp_path / "svc")
    assert info.value.code == "bad_source"


def test_write_failure(tmp_path: Path) -> None:
    class Full(io.RawIOBase):
        def writable(self) -> bool:
            return True

        def write(self, data: object) -> int:
            raise OSError(errno.ENOSPC, "No space left on device")

    with pytest.raises(ServiceInstallationError, match="No space") as info:
        pack_service(make_tree(tmp_path), Full())  # type: ignore[arg-type]
    assert info.value.code == "write_failed"
