"""``install_on_peer`` (``install ARCHIVE --peer``): a local archive installed on another node only."""

from __future__ import annotations

from pathlib import Path

import pytest
import trio

from p2p_orchestrator import PermissionDenied, ServiceInstallationError
from tests.distribution.support import blob_archive, partials_gone, sha256, transfer_swarm

SERVICE = "example_service"


def roles(i: int, j: int) -> str | None:
    """Node 0 is the target: node 1 deploys there, node 2 only reads."""
    if i == 0:
        return {1: "deployer", 2: "reader"}[j]
    return "admin"


async def test_an_archive_beyond_the_frame_limit_is_installed_on_the_peer(tmp_path: Path) -> None:
    archive = blob_archive(tmp_path / "src", size=6 * 1024 * 1024)  # over one 4 MiB RPC frame
    path = tmp_path / "big.tar.gz"
    path.write_bytes(archive)
    with trio.fail_after(60):
        async with transfer_swarm(3, tmp_path, roles=roles) as nodes:
            target, deployer, reader = nodes
            result = await deployer.orchestrator.install_on_peer(path, target.peer_id, auto_start=True)
            assert result["success"] is True and result["archive_hash"] == sha256(archive)
            assert result["auto_started"] is True
            assert result["transfer"]["bytes_sent"] == len(archive)
            progress = [
                e for e in deployer.orchestrator.events.recent(100) if e.type == "distribution_progress"
            ]
            assert progress[-1].service == SERVICE and progress[-1].data["bytes_received"] == len(archive)
            assert target.orchestrator.is_running(SERVICE)
            assert SERVICE not in deployer.orchestrator.store.records  # installed there, not here
            assert list((deployer.orchestrator.home / "staging").iterdir()) == []  # its checked copy is gone
            assert await partials_gone(target.orchestrator.home)

            # a reader may not install, and nothing changes on the target
            with pytest.raises(PermissionDenied):
                await reader.orchestrator.install_on_peer(archive, target.peer_id, force_reinstall=True)
            assert target.orchestrator.store.get(SERVICE).current.archive_hash == sha256(archive)


async def test_a_bad_archive_is_refused_here_before_anything_travels(tmp_path: Path) -> None:
    async with transfer_swarm(2, tmp_path) as nodes:
        target, sender = nodes
        with pytest.raises(ServiceInstallationError) as refused:
            await sender.orchestrator.install_on_peer(b"not an archive", target.peer_id)
        assert refused.value.code == "not_gzip"
        assert [e for e in sender.orchestrator.events.recent(100) if e.type == "distribution_progress"] == []
        assert target.orchestrator.store.records == {}
        assert list((sender.orchestrator.home / "staging").iterdir()) == []
