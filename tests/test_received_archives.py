"""A received archive is kept by a hard link, not a second copy; a caller's file is always copied."""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path

from p2p_orchestrator import Orchestrator
from tests.helpers import make_archive
from tests.runtime.support import fast_config


def _cached(home: Path, archive: bytes) -> Path:
    return home / "archives" / f"{hashlib.sha256(archive).hexdigest()}.tar.gz"


async def test_a_received_archive_is_kept_by_a_link_and_a_callers_file_by_a_copy(
    home: Path, tmp_path: Path
) -> None:
    received = tmp_path / "received.tar.gz"  # on the home's filesystem, as a transfer's file is
    received.write_bytes(make_archive(tmp_path / "v1", version="1.0.0"))
    callers = tmp_path / "callers.tar.gz"
    callers.write_bytes(make_archive(tmp_path / "v2", version="2.0.0"))
    async with Orchestrator(home, config=fast_config()) as orch:
        await orch.install_received(received, force_reinstall=False, auto_start=False)
        await orch.install_service(callers)
        info = await orch.get_service_info("example_service")
    linked = _cached(home, received.read_bytes())
    copied = _cached(home, callers.read_bytes())
    assert os.path.samefile(linked, received)  # no byte written twice
    assert not os.path.samefile(copied, callers)  # its owner may rewrite it: the store has its own
    assert copied.read_bytes() == callers.read_bytes()
    assert info["version"] == "2.0.0"
    received.unlink()  # the transfer deletes its file once installed: the store's stays whole
    assert hashlib.sha256(linked.read_bytes()).hexdigest() in linked.name


async def test_a_received_archive_on_another_filesystem_is_copied(home: Path, tmp_path: Path) -> None:
    archive = make_archive(tmp_path / "v1", version="1.0.0")
    with tempfile.TemporaryDirectory(dir="/dev/shm") as elsewhere:  # tmpfs: no link across it
        received = Path(elsewhere) / "received.tar.gz"
        received.write_bytes(archive)
        assert os.stat(elsewhere).st_dev != os.stat(tmp_path).st_dev
        async with Orchestrator(home, config=fast_config()) as orch:
            result = await orch.install_received(received, force_reinstall=False, auto_start=False)
        assert result["success"]
        assert not os.path.samefile(_cached(home, archive), received)
    assert _cached(home, archive).read_bytes() == archive
