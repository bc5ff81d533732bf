"""``distribute_service`` to a 5-node swarm: the spec's result shape, per-target errors, events, logs."""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any

import pytest
import trio
from libp2p.crypto.ed25519 import create_new_key_pair
from libp2p.peer.id import ID

from p2p_orchestrator import Orchestrator, ServiceCallError, ServiceDistributionError
from p2p_orchestrator.events import Event
from tests.distribution.support import blob_archive, sha256, transfer_swarm, transfers
from tests.node.support import raw_peer

SERVICE = "example_service"


def fresh_peer_id() -> str:
    """A valid peer ID nobody has an address for."""
    return ID.from_pubkey(create_new_key_pair().public_key).to_base58()


async def test_distribute_to_a_swarm_with_failing_targets(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Two targets install; unreachable, refusing (role), rejected (downgrade) and stopped ones fail."""
    v1 = blob_archive(tmp_path / "src", "1.0.0", size=600_000)
    v2 = blob_archive(tmp_path / "src", "2.0.0", size=1000)
    caplog.set_level(logging.INFO, logger="p2p_orchestrator")
    roles = lambda i, j: "reader" if (i, j) == (3, 0) else "admin"  # noqa: E731
    with trio.fail_after(60):
        async with transfer_swarm(5, tmp_path, roles=roles) as nodes, raw_peer() as gone:
            origin = nodes[0]
            await origin.orchestrator.install_service(v1)
            await nodes[4].orchestrator.install_service(v2)
            stopped = gone.get_id().to_base58()
            await origin.connect(f"{gone.get_addrs()[0]}")  # known and dialled once...
            await gone.close()  # ...then it stops
            nobody = fresh_peer_id()
            targets = [
                nodes[1].peer_id,
                nodes[2].peer_id,
                nodes[3].peer_id,
                nodes[4].peer_id,
                nobody,
                stopped,
            ]
            before = len(origin.orchestrator.events.recent(1000))
            result = await origin.orchestrator.distribute_service(
                SERVICE, [*targets, nodes[1].peer_id], auto_start=True, strategy="push"
            )
            events: list[Event] = origin.orchestrator.events.recent(1000)[before:]
            assert set(result) == {
                "service_name",
                "total_nodes",
                "successful_distributions",
                "failed_distributions",
                "results",
            }
            assert result["service_name"] == SERVICE
            assert result["total_nodes"] == 6  # the repeated target counts once
            assert result["successful_distributions"] == 2
            assert result["failed_distributions"] == 4
            assert list(result["results"]) == targets
            for node in nodes[1:3]:
                entry = result["results"][node.peer_id]
                assert set(entry) == {"success", "result"} and entry["success"] is True
                installed = entry["result"]
                assert installed["service_name"] == SERVICE and installed["archive_hash"] == sha256(v1)
                assert installed["auto_started"] is True
                assert installed["transfer"]["bytes_sent"] == len(v1)
                assert node.orchestrator.is_running(SERVICE)
            errors = {
                peer: entry["error"] for peer, entry in result["results"].items() if not entry["success"]
            }
            assert all(set(result["results"][peer]) == {"success", "error"} for peer in errors)
            assert errors[nodes[3].peer_id] == (
                f"[permission_denied] peer {origin.peer_id} may not install services on this node "
                "(its role, reader, lacks the deploy permission)"
            )
            assert errors[nodes[4].peer_id] == (
                "[downgrade_refused] refusing to downgrade 'example_service' from 2.0.0 to 1.0.0; "
                "pass force_reinstall=True to allow it"
            )
            assert errors[nobody].startswith(f"[peer_unreachable] no known address for peer {nobody}")
            assert re.match(
                rf"\[peer_unreachable\] cannot connect to peer {stopped} at /ip4/127\.0\.0\.1/",
                errors[stopped],
            )
            assert SERVICE not in nodes[3].orchestrator.store.records
            assert (await nodes[4].orchestrator.get_service_info(SERVICE))["version"] == "2.0.0"
    messages = [record.getMessage() for record in caplog.records]
    assert f"Distributing service {SERVICE} to 6 nodes" in messages
    for node in nodes[1:3]:
        assert f"Successfully distributed service {SERVICE} to node {node.peer_id}" in messages
    progress = [e for e in events if e.type == "distribution_progress"]
    assert progress and progress[-1].data["targets_done"] == 6 and progress[-1].data["targets_failed"] == 4
    assert progress[-1].data["bytes_sent"] == 3 * len(v1)  # the downgrade is refused once it arrived
    (done,) = [e for e in events if e.type == "service_distributed"]
    assert done.service == SERVICE and done.data["successful"] == 2 and done.data["failed"] == 4


async def test_distribute_over_rpc_checks_its_params(tmp_path: Path) -> None:
    archive = blob_archive(tmp_path / "src", size=1000)
    with trio.fail_after(30):
        async with transfer_swarm(2, tmp_path) as nodes:
            origin, target = nodes
            await origin.rpc.call("orchestrator/install_service", {"archive_data": archive})
            call: dict[str, Any] = {
                "service_name": SERVICE,
                "target_nodes": [target.peer_id],
                "concurrency": 1,
            }
            result = await origin.rpc.call("orchestrator/distribute_service", call)
            assert result["successful_distributions"] == 1
            with pytest.raises(ServiceCallError) as bad:
                await origin.rpc.call(
                    "orchestrator/distribute_service",
                    {"service_name": SERVICE, "target_nodes": target.peer_id},
                )
            assert bad.value.code == "bad_params"
            with pytest.raises(ServiceDistributionError) as strategy:
                await origin.orchestrator.distribute_service(SERVICE, [target.peer_id], strategy="gossip")
            assert strategy.value.code == "unknown_strategy"
            again = await origin.orchestrator.distribute_service(SERVICE, ["not-a-peer", origin.peer_id])
            assert again["results"] == {
                "not-a-peer": {"success": False, "error": "[bad_peer_id] 'not-a-peer' is not a peer ID"},
                origin.peer_id: {
                    "success": False,
                    "error": f"[bad_target] {origin.peer_id} is this node itself",
                },
            }
            # a target that has the archive installed refuses it as a local install would...
            same = await origin.orchestrator.distribute_service(SERVICE, [target.peer_id])
            assert same["results"][target.peer_id]["error"].startswith("[already_installed]")
            # ...and with force_reinstall it installs it again without a byte sent (dedup)
            forced = await origin.orchestrator.distribute_service(
                SERVICE, [target.peer_id], force_reinstall=True
            )
            transfer = forced["results"][target.peer_id]["result"]["transfer"]
            assert transfer["bytes_sent"] == 0 and transfer["tries"][0]["receiver_had"] == len(archive)
            assert transfers(origin).chunk_size > 0


async def test_without_a_node_there_is_no_network(tmp_path: Path) -> None:
    async with Orchestrator(tmp_path / "home") as orch:
        await orch.install_service(blob_archive(tmp_path / "src", size=1000))
        with pytest.raises(ServiceDistributionError) as push:
            await orch.distribute_service(SERVICE, [fresh_peer_id()])
        assert push.value.code == "no_network"
        with pytest.raises(ServiceDistributionError) as pull:
            await orch.fetch_service(SERVICE, fresh_peer_id())
        assert pull.value.code == "no_network"
