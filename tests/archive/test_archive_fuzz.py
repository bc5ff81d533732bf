"""Property: whatever bytes arrive, unpack_archive either succeeds or raises ServiceInstallationError
and leaves the destination empty."""

from __future__ import annotations

import gzip
import io
import os
import tarfile
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from p2p_orchestrator.archive import ArchiveLimits, unpack_archive
from p2p_orchestrator.errors import ServiceInstallationError

LIMITS = ArchiveLimits(max_uncompressed_bytes=1 << 20, max_members=50)


def _valid_tar() -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, data in [
            ("svc/", None),
            ("svc/main.py", b"print('hi')\n"),
            ("svc/manifest.json", b'{"name": "svc", "version": "1.0.0", "dependencies": ["db>=1"]}'),
            ("svc/config/default.json", b'{"k": [1, 2]}'),
            ("svc/assets/" + "\u00e9" * 60 + ".txt", b"unicode and long\n"),
        ]:
            info = tarfile.TarInfo(name)
            if data is None:
                info.type = tarfile.DIRTYPE
            else:
                info.size = len(data)
            tar.addfile(info, io.BytesIO(data or b""))
    return buffer.getvalue()


VALID_TAR = _valid_tar()
VALID = gzip.compress(VALID_TAR, mtime=0)


@st.composite
def mutated(draw: st.DrawFn, base: bytes) -> bytes:
    data = bytearray(base)
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["flip", "set", "truncate", "insert", "delete"]))
        at = draw(st.integers(0, max(len(data) - 1, 0)))
        if kind == "flip" and data:
            data[at] ^= 1 << draw(st.integers(0, 7))
        elif kind == "set" and data:
            data[at] = draw(st.integers(0, 255))
        elif kind == "truncate":
            del data[at:]
        elif kind == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=600))
        elif kind == "delete":
            del data[at : at + draw(st.integers(1, 600))]
    return bytes(data)


ARCHIVES = st.one_of(
    st.binary(max_size=2048),
    st.binary(max_size=2048).map(lambda data: gzip.compress(data, mtime=0)),
    mutated(VALID),
    mutated(VALID_TAR).map(lambda data: gzip.compress(data, mtime=0)),
)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ARCHIVES)
def test_unpack_succeeds_or_refuses_cleanly(data: bytes) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        dest = Path(tmp) / "dest"
        dest.mkdir()
        try:
            result = unpack_archive(io.BytesIO(data), dest, limits=LIMITS)
        except ServiceInstallationError:
            assert os.listdir(dest) == []
        else:
            assert (dest / "main.py").is_file()
            assert result.files_count >= 1
        assert os.listdir(tmp) == ["dest"]


def test_valid_base_archives_unpack(tmp_path: Path) -> None:
    result = unpack_archive(io.BytesIO(VALID), tmp_path, limits=LIMITS)
    assert result.files_count == 4
