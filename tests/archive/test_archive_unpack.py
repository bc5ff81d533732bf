"""unpack_archive on good archives, its limits at the boundary, and failures of its I/O."""

from __future__ import annotations

import errno
import gzip
import hashlib
import io
import os
import stat
import tarfile
import zlib
from pathlib import Path

import pytest

from p2p_orchestrator.archive import ArchiveLimits, Version, pack_service_bytes, unpack_archive
from p2p_orchestrator.archive import _unpack as unpack_module
from p2p_orchestrator.errors import ServiceInstallationError


class CountingSource(io.RawIOBase):
    """A source that hands out at most ``chunk`` bytes per read and counts what it gave."""

    def __init__(self, data: bytes, chunk: int = 1 << 30, fail_after: int | None = None) -> None:
        self._data = data
        self._chunk = chunk
        self._fail_after = fail_after
        self.consumed = 0

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        if self._fail_after is not None and self.consumed >= self._fail_after:
            raise OSError(errno.EIO, "simulated read error")
        size = self._chunk if size < 0 else min(size, self._chunk)
        out = self._data[self.consumed : self.consumed + size]
        self.consumed += len(out)
        return out


def make_tree(root: Path, name: str = "svc") -> Path:
    service = root / name
    (service / "pkg" / "deep").mkdir(parents=True)
    (service / "empty").mkdir()
    (service / "config").mkdir()
    (service / "main.py").write_text("from service_framework import BaseService\n")
    (service / "run.sh").write_text("#!/bin/sh\n")
    (service / "run.sh").chmod(0o755)
    (service / "pkg" / "__init__.py").write_text("")
    (service / "pkg" / "deep" / "data.bin").write_bytes(os.urandom(100_000))
    (service / "pkg" / ("long_" * 30 + ".txt")).write_text("long name\n")
    (service / "pkg" / "ünïcödé.txt").write_text("unicode\n")
    (service / "config" / "default.json").write_text('{"setting": 2}')
    (service / "manifest.json").write_text(
        '{"name": "svc", "version": "1.2.3", "dependencies": ["db>=1.2,<2"], "extra": {"k": [1]}}'
    )
    return service


def snapshot(root: Path) -> dict[str, tuple[bool, bytes, bool]]:
    result = {}
    for path in sorted(root.rglob("*")):
        mode = path.lstat().st_mode
        data = path.read_bytes() if stat.S_ISREG(mode) else b""
        result[str(path.relative_to(root))] = (stat.S_ISDIR(mode), data, bool(mode & 0o100))
    return result


@pytest.fixture
def dest(tmp_path: Path) -> Path:
    target = tmp_path / "work" / "dest"
    target.mkdir(parents=True)
    return target


def test_pack_then_unpack_reproduces_the_tree(tmp_path: Path, dest: Path) -> None:
    service = make_tree(tmp_path)
    data = pack_service_bytes(service)
    result = unpack_archive(io.BytesIO(data), dest)
    assert snapshot(dest) == snapshot(service)
    assert result.service_name == "svc"
    assert result.root == dest
    assert result.files_count == 8
    assert result.archive_size == len(data)
    assert result.archive_hash == hashlib.sha256(data).hexdigest()
    assert result.manifest.version == Version(1, 2, 3)
    assert result.manifest.to_dict()["extra"] == {"k": [1]}
    assert stat.S_IMODE((dest / "pkg").stat().st_mode) & 0o700 == 0o700
    assert not (dest / "main.py").stat().st_mode & 0o111


def test_copy_to_gets_every_byte_from_small_reads(tmp_path: Path, dest: Path) -> None:
    data = pack_service_bytes(make_tree(tmp_path))
    copy = io.BytesIO()
    source = CountingSource(data, chunk=7)
    result = unpack_archive(source, dest, copy_to=copy)  # type: ignore[arg-type]
    assert copy.getvalue() == data
    assert source.consumed == len(data)
    assert result.archive_hash == hashlib.sha256(data).hexdigest()


def test_missing_manifest_gives_default(tmp_path: Path, dest: Path) -> None:
    service = tmp_path / "bare"
    service.mkdir()
    (service / "main.py").write_text("")
    result = unpack_archive(io.BytesIO(pack_service_bytes(service)), dest)
    assert result.manifest.name == "bare"
    assert str(result.manifest.version) == "0.0.0"
    assert result.files_count == 1


@pytest.mark.parametrize("fmt", [tarfile.USTAR_FORMAT, tarfile.GNU_FORMAT, tarfile.PAX_FORMAT])
def test_python_tarfile_formats(fmt: int, dest: Path) -> None:
    buffer = io.BytesIO()
    long_dir = "svc/" + "d" * 90 + "/"
    with tarfile.open(fileobj=buffer, mode="w:gz", format=fmt) as tar:
        for name, data in [("svc/main.py", b"x"), (long_dir + "f" * 60 + ".txt", b"long")]:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    result = unpack_archive(io.BytesIO(buffer.getvalue()), dest)
    assert result.files_count == 2
    assert (dest / ("d" * 90) / ("f" * 60 + ".txt")).read_bytes() == b"long"


def test_leading_dot_slash_and_root_entry(dest: Path) -> None:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz", format=tarfile.GNU_FORMAT) as tar:
        for name in ["./", "./svc/", "./svc/main.py"]:
            info = tarfile.TarInfo(name)
            info.type = tarfile.DIRTYPE if name.endswith("/") else tarfile.REGTYPE
            tar.addfile(info, io.BytesIO(b""))
    assert unpack_archive(io.BytesIO(buffer.getvalue()), dest).service_name == "svc"
    assert (dest / "main.py").is_file()


@pytest.mark.parametrize("kind", ["missing", "file", "nonempty"])
def test_destination_must_be_an_empty_directory(tmp_path: Path, kind: str) -> None:
    target = tmp_path / "target"
    if kind == "file":
        target.write_text("")
    elif kind == "nonempty":
        target.mkdir()
        (target / "keep").write_text("mine")
    with pytest.raises(ValueError, match="target"):
        unpack_archive(io.BytesIO(b""), target)
    if kind == "nonempty":
        assert (target / "keep").read_text() == "mine"


def _bomb(declared: int, zeros: int) -> bytes:
    """A tar header declaring ``declared`` bytes for main.py, then ``zeros`` zero bytes, gzip'd."""
    header = tarfile.TarInfo("bomb/main.py")
    header.size = declared
    compressor = zlib.compressobj(9, zlib.DEFLATED, 31)
    parts = [compressor.compress(header.tobuf(tarfile.PAX_FORMAT))]
    chunk = bytes(1 << 20)
    parts.extend(compressor.compress(chunk) for _ in range(zeros >> 20))
    parts.append(compressor.flush())
    return b"".join(parts)


def test_gzip_bomb_is_stopped_at_the_limit(dest: Path) -> None:
    # main.py is empty; the 64 MiB of zeros after it read as an end-of-archive marker and its padding,
    # which are legal, so only the uncompressed-size bound can stop them.
    bomb = _bomb(0, 64 << 20)
    source = CountingSource(bomb)
    with pytest.raises(ServiceInstallationError) as info:
        unpack_archive(source, dest, limits=ArchiveLimits(max_uncompressed_bytes=1 << 20))  # type: ignore[arg-type]
    assert info.value.code == "uncompressed_too_large"
    assert "expands to more than 1048576 bytes" in info.value.message
    # Zeros compress about 1000:1: the 1 MiB limit needs ~1 KiB of input plus one 16 KiB read block.
    assert source.consumed < len(bomb) // 2, (source.consumed, len(bomb))
    assert os.listdir(dest) == []


def test_declared_size_over_the_limit_is_refused_on_the_header(dest: Path) -> None:
    bomb = _bomb(1 << 40, 1 << 20)
    source = CountingSource(bomb, chunk=64)
    with pytest.raises(ServiceInstallationError) as info:
        unpack_archive(source, dest)  # type: ignore[arg-type]
    assert info.value.code == "uncompressed_too_large"
    assert "'bomb/main.py'" in info.value.message
    assert source.consumed < 1024
    assert os.listdir(dest) == []


def test_limits_are_inclusive(tmp_path: Path) -> None:
    data = pack_service_bytes(make_tree(tmp_path))
    expanded = len(gzip.decompress(data))
    for number, (compressed, uncompressed, ok) in enumerate(
        [(len(data), expanded, True), (len(data) - 1, expanded, False), (len(data), expanded - 1, False)]
    ):
        target = tmp_path / f"d{number}"
        target.mkdir()
        limits = ArchiveLimits(max_compressed_bytes=compressed, max_uncompressed_bytes=uncompressed)
        if ok:
            unpack_archive(io.BytesIO(data), target, limits=limits)
        else:
            with pytest.raises(ServiceInstallationError, match=r"larger than|expands to"):
                unpack_archive(io.BytesIO(data), target, limits=limits)
            assert os.listdir(target) == []


def test_disk_full_is_reported_and_cleaned_up(
    tmp_path: Path, dest: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = pack_service_bytes(make_tree(tmp_path))
    calls = []

    def write_all(fd: int, chunk: bytes) -> None:
        calls.append(fd)
        if len(calls) > 3:
            raise OSError(errno.ENOSPC, "No space left on device")
        os.write(fd, chunk)

    monkeypatch.setattr(unpack_module, "_write_all", write_all)
    with pytest.raises(ServiceInstallationError) as info:
        unpack_archive(io.BytesIO(data), dest)
    assert info.value.code == "write_failed"
    assert "No space left" in info.value.message
    assert isinstance(info.value.__cause__, OSError)
    assert os.listdir(dest) == []


def test_copy_to_failure_is_a_write_failure(tmp_path: Path, dest: Path) -> None:
    class Full(io.RawIOBase):
        def writable(self) -> bool:
            return True

        def write(self, data: object) -> int:
            raise OSError(errno.ENOSPC, "cache disk full")

    data = pack_service_bytes(make_tree(tmp_path))
    with pytest.raises(ServiceInstallationError, match="cache disk full") as info:
        unpack_archive(io.BytesIO(data), dest, copy_to=Full())  # type: ignore[arg-type]
    assert info.value.code == "write_failed"
    assert os.listdir(dest) == []


def test_source_read_error(tmp_path: Path, dest: Path) -> None:
    data = pack_service_bytes(make_tree(tmp_path))
    source = CountingSource(data, chunk=4096, fail_after=8192)
    with pytest.raises(ServiceInstallationError, match="simulated read error") as info:
        unpack_archive(source, dest)  # type: ignore[arg-type]
    assert info.value.code == "read_failed"
    assert isinstance(info.value.__cause__, OSError)
    assert os.listdir(dest) == []


def test_interrupt_mid_unpack_cleans_up(tmp_path: Path, dest: Path) -> None:
    class Interrupting(CountingSource):
        def read(self, size: int = -1) -> bytes:
            if self.consumed > 20_000:
                raise KeyboardInterrupt
            return super().read(size)

    data = pack_service_bytes(make_tree(tmp_path))
    with pytest.raises(KeyboardInterrupt):
        unpack_archive(Interrupting(data, chunk=1024), dest)  # type: ignore[arg-type]
    assert os.listdir(dest) == []
