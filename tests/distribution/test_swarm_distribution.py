"""``distribute_service(strategy="swarm")`` on in-process swarms: peers serve peers, lies, departures."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import trio

from p2p_orchestrator.node.distribution.swarm_member import SwarmMembership
from p2p_orchestrator.node.distribution.swarm_origin import SWARM_CHUNK_SIZE as CHUNK
from tests.distribution.support import blob_archive, sha256, transfers
from tests.distribution.swarm_support import live_swarm

SERVICE = "example_service"
SHAPE = {"service_name", "total_nodes", "successful_distributions", "failed_distributions", "results"}
SIZE = 1_500_000  # ~6 swarm chunks of 256 KiB per target share... enough for every target to own some


def transfer_of(result: dict[str, Any], peer: str) -> dict[str, Any]:
    entry = result["results"][peer]
    assert entry["success"] is True, entry
    transfer: dict[str, Any] = entry["result"]["transfer"]
    return transfer


async def test_a_six_node_swarm_distribution_has_every_target_fed_by_its_peers(tmp_path: Path) -> None:
    archive = blob_archive(tmp_path / "src", size=SIZE)
    with trio.fail_after(60):
        async with live_swarm(6, tmp_path) as nodes:
            origin = nodes[0]
            await origin.orchestrator.install_service(archive)
            targets = [nodes[i].peer_id for i in range(1, 6)]
            result = await origin.orchestrator.distribute_service(SERVICE, targets, strategy="swarm")
            assert set(result) == SHAPE
            assert result["service_name"] == SERVICE
            assert (result["total_nodes"], result["successful_distributions"]) == (5, 5)
            assert result["failed_distributions"] == 0 and list(result["results"]) == targets
            sent = 0
            for i, peer in enumerate(targets, start=1):
                entry = result["results"][peer]
                assert set(entry) == {"success", "result"}
                assert entry["result"]["archive_hash"] == sha256(archive)
                transfer = transfer_of(result, peer)
                assert transfer["bytes_from_peers"] > 0  # every target got chunks from other targets
                assert transfer["bytes_from_origin"] + transfer["bytes_from_peers"] == len(archive)
                assert set(transfer["from_peers"]) <= set(targets) - {peer}
                assert transfer["dropped_peers"] == {}
                assert 0 <= transfer["bytes_cancelled"] < len(archive)  # endgame duplicates, reported
                sent += transfer["bytes_sent"]
                assert nodes[i].orchestrator.store.get(SERVICE).current.archive_hash == sha256(archive)
            assert sent < 2 * len(archive)  # the origin sent the archive about once, not five times


async def test_a_lying_peer_is_dropped_reported_and_the_others_complete(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    archive = blob_archive(tmp_path / "src", size=SIZE)
    with trio.fail_after(60):
        async with live_swarm(6, tmp_path) as nodes:
            liar = nodes[3].peer_id
            honest = SwarmMembership.read_chunk

            def lying(self: SwarmMembership, index: int) -> bytes:
                data = honest(self, index)
                if self.plan.me == liar:
                    return bytes(b ^ 0x5A for b in data[:64]) + data[64:]
                return data

            monkeypatch.setattr(SwarmMembership, "read_chunk", lying)
            origin = nodes[0]
            await origin.orchestrator.install_service(archive)
            targets = [nodes[i].peer_id for i in range(1, 6)]
            result = await origin.orchestrator.distribute_service(SERVICE, targets, strategy="swarm")
            assert result["successful_distributions"] == 5  # the liar too: it receives honestly
            reported = 0
            for peer in targets:
                transfer = transfer_of(result, peer)
                assert transfer["from_peers"].get(liar, 0) == 0  # nothing it sent was kept
                dropped = transfer["dropped_peers"]
                assert set(dropped) <= {liar}
                if dropped:
                    assert "too_many_corrupt_chunks" in dropped[liar] or "chunk_" in dropped[liar]
                    reported += 1
            assert reported >= 1


async def test_a_departing_target_stalls_nobody_and_resumes_when_back(tmp_path: Path) -> None:
    archive = blob_archive(tmp_path / "src", size=4 * SIZE)
    with trio.fail_after(90):
        async with live_swarm(5, tmp_path, transfer_attempts=1) as nodes:
            origin = nodes[0]
            await origin.orchestrator.install_service(archive)
            leaver = 2
            leaver_id = nodes[leaver].peer_id
            targets = [nodes[i].peer_id for i in range(1, 5)]
            partial_dir = nodes.homes[leaver] / "partial"
            midway = trio.Event()

            def stored(source: str, verified: int) -> bool:
                if verified >= 3 * CHUNK:
                    midway.set()
                return False  # never cut: the node leaves instead

            transfers(nodes[leaver]).hooks.chunk_stored = stored

            async def leave_midway() -> None:
                await midway.wait()
                await nodes.stop(leaver)

            async with trio.open_nursery() as nursery:
                nursery.start_soon(leave_midway)
                result = await origin.orchestrator.distribute_service(SERVICE, targets, strategy="swarm")
            assert result["successful_distributions"] == 3
            assert not result["results"][leaver_id]["success"]
            for peer in targets:
                if peer != leaver_id:
                    assert transfer_of(result, peer)["bytes_from_origin"] < len(archive)
            kept = _ledger_chunks(partial_dir)
            assert kept >= 3
            await nodes.start(leaver)  # comes back: the same home, its partial transfer kept
            again = await origin.orchestrator.distribute_service(SERVICE, [leaver_id], strategy="swarm")
            transfer = transfer_of(again, leaver_id)
            assert transfer["bytes_sent"] <= len(archive) - kept * CHUNK


def _ledger_chunks(partial_dir: Path) -> int:
    """Chunks the (first) partial transfer's ledger lists: 8-byte magic, then 4 bytes per chunk."""
    ledgers = list(partial_dir.glob("*/ledger"))
    return max(0, (ledgers[0].stat().st_size - 8) // 4) if ledgers else 0


async def test_a_swarm_larger_than_a_nodes_transfer_streams_pulls_in_a_ring(tmp_path: Path) -> None:
    """Seven targets, each taking 4 transfer streams: each pulls from its next two, and all complete."""
    archive = blob_archive(tmp_path / "src", size=SIZE)
    with trio.fail_after(90):
        async with live_swarm(8, tmp_path, max_transfers_total=4, max_transfers_per_peer=4) as nodes:
            origin = nodes[0]
            await origin.orchestrator.install_service(archive)
            targets = [nodes[i].peer_id for i in range(1, 8)]
            result = await origin.orchestrator.distribute_service(SERVICE, targets, strategy="swarm")
            assert (result["successful_distributions"], result["failed_distributions"]) == (7, 0), result
            sent = fed = 0
            for i, peer in enumerate(targets):
                transfer = transfer_of(result, peer)
                ring = {targets[(i + step) % 7] for step in (1, 2)}
                assert set(transfer["from_peers"]) <= ring, (peer, transfer["from_peers"])
                assert transfer["bytes_from_origin"] + transfer["bytes_from_peers"] == len(archive)
                fed += transfer["bytes_from_peers"] > 0
                sent += transfer["bytes_sent"]
            assert fed == 7 and sent < 2 * len(archive)  # every target fed by its ring; the origin sent ~1x
