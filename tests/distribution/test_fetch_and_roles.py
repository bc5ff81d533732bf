"""``fetch_service`` (pull) and who may push or pull: roles are checked by the authenticated peer ID."""

from __future__ import annotations

from pathlib import Path

import pytest
import trio

from p2p_orchestrator import PermissionDenied, ServiceManagementError
from tests.distribution.support import blob_archive, sha256, transfer_swarm

SERVICE = "example_service"


def roles(i: int, j: int) -> str | None:
    """Node 0 holds the service: node 1 is a reader there, node 2 has no role; the rest are admins."""
    if i == 0:
        return {1: "reader", 2: None}[j]
    return "admin"


async def test_pull_and_roles(tmp_path: Path) -> None:
    archive = blob_archive(tmp_path / "src", size=300_000)
    with trio.fail_after(60):
        async with transfer_swarm(3, tmp_path, roles=roles) as nodes:
            holder, reader, stranger = nodes
            await holder.orchestrator.install_service(archive)

            # a reader may fetch: over RPC, installed exactly as a local install
            fetched = await reader.rpc.call(
                "orchestrator/fetch_service", {"service_name": SERVICE, "from_peer": holder.peer_id}
            )
            assert fetched["success"] is True and fetched["archive_hash"] == sha256(archive)
            assert fetched["fetched_from"] == holder.peer_id
            assert fetched["transfer"]["bytes_received"] == len(archive)
            assert reader.orchestrator.store.get(SERVICE).current.archive_hash == sha256(archive)

            # fetching it again: refused as a local install would be, and nothing travels with force
            again = await reader.orchestrator.fetch_service(SERVICE, holder.peer_id, force_reinstall=True)
            assert again["transfer"]["bytes_received"] == 0

            # ...but a reader may not push
            pushed = await reader.orchestrator.distribute_service(
                SERVICE, [holder.peer_id], force_reinstall=True
            )
            assert pushed["results"][holder.peer_id] == {
                "success": False,
                "error": f"[permission_denied] peer {reader.peer_id} may not install services on this node "
                "(its role, reader, lacks the deploy permission)",
            }

            # a peer without a role may not fetch
            with pytest.raises(PermissionDenied) as refused:
                await stranger.orchestrator.fetch_service(SERVICE, holder.peer_id)
            assert refused.value.message == (
                f"peer {stranger.peer_id} has no role on this node: it may neither push nor fetch archives"
            )
            assert SERVICE not in stranger.orchestrator.store.records

            # a service the peer does not have
            with pytest.raises(ServiceManagementError) as missing:
                await reader.orchestrator.fetch_service("no_such_service", holder.peer_id)
            assert missing.value.code == "not_installed"

            # and the holder still serves everyone as it should
            listing = await reader.proxy(holder.peer_id).call_method("orchestrator/list_services")
            assert listing["total_installed"] == 1
            assert list((reader.orchestrator.home / "partial").iterdir()) == []
