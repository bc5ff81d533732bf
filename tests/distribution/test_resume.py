"""A transfer cut mid-way resumes: only the chunks the receiver lacks travel again (bytes counted)."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
import trio

from p2p_orchestrator import ServiceDistributionError
from p2p_orchestrator.node.distribution._receive import QUEUE
from tests.distribution.support import CHUNK, blob_archive, partials_gone, sha256, transfer_swarm, transfers

SERVICE = "example_service"
SIZE = 24 * CHUNK  # about 24 chunks of 64 KiB


class CutOnce:
    """A hook that asks for one cut, the first time ``bytes`` reaches ``at``."""

    def __init__(self, at: int) -> None:
        self.at = at
        self.fired = False
        self.seen = 0

    def __call__(self, peer: str, count: int) -> bool:
        if self.fired or count < self.at:
            return False
        self.fired, self.seen = True, count
        return True


async def test_sender_cuts_at_random_offsets_resume_with_the_missing_chunks(tmp_path: Path) -> None:
    """The origin resets the stream after a random number of bytes; its retry sends exactly what is missing."""
    rng = random.Random(5)
    with trio.fail_after(60):
        async with transfer_swarm(2, tmp_path) as nodes:
            origin, target = nodes
            for number in range(4):
                archive = blob_archive(tmp_path / "src", f"1.{number}.0", size=SIZE, seed=number)
                await origin.orchestrator.install_service(archive)
                cut = CutOnce(rng.randrange(1, len(archive)))
                transfers(origin).hooks.chunk_sent = cut
                result = await origin.orchestrator.distribute_service(SERVICE, [target.peer_id])
                entry = result["results"][target.peer_id]
                assert entry["success"], entry
                assert entry["result"]["archive_hash"] == sha256(archive)
                first, second = entry["result"]["transfer"]["tries"]
                assert cut.fired and first["outcome"] == "transfer_cut" and second["outcome"] == "ok"
                assert first["bytes_sent"] == cut.seen  # the cut came right after that chunk
                # the retry sends exactly the chunks the target had not verified, nothing twice
                assert second["bytes_sent"] == len(archive) - second["receiver_had"]
                assert second["receiver_had"] <= first["bytes_sent"]
                assert (await target.orchestrator.get_service_info(SERVICE))["archive_hash"] == sha256(
                    archive
                )
            assert await partials_gone(target.orchestrator.home)  # installed: discarded


@pytest.mark.parametrize("fraction", [0.5, 0.9])
async def test_receiver_cut_resumes_from_exactly_what_it_verified(tmp_path: Path, fraction: float) -> None:
    """The target drops the stream once it verified half (or 90%): the rest, and only it, is sent again."""
    archive = blob_archive(tmp_path / "src", size=SIZE)
    with trio.fail_after(60):
        async with transfer_swarm(2, tmp_path) as nodes:
            origin, target = nodes
            await origin.orchestrator.install_service(archive)
            cut = CutOnce(int(len(archive) * fraction))
            transfers(target).hooks.chunk_stored = cut
            result = await origin.orchestrator.distribute_service(SERVICE, [target.peer_id])
            entry = result["results"][target.peer_id]
            assert entry["success"], entry
            _, second = entry["result"]["transfer"]["tries"]
            # every chunk verified by the cut was kept (and a chunk already read when the stream
            # was reset may be verified and kept too: at most the session's read-ahead)
            assert cut.seen <= second["receiver_had"] <= cut.seen + (QUEUE + 1) * CHUNK
            assert second["bytes_sent"] == len(archive) - second["receiver_had"]  # only the rest
            assert entry["result"]["transfer"]["receiver"]["bytes"] == second["bytes_sent"]


async def test_a_cut_without_retries_leaves_a_partial_that_the_next_distribution_completes(
    tmp_path: Path,
) -> None:
    archive = blob_archive(tmp_path / "src", size=SIZE)
    with trio.fail_after(60):
        async with transfer_swarm(2, tmp_path, node={"transfer_attempts": 1}) as nodes:
            origin, target = nodes
            await origin.orchestrator.install_service(archive)
            cut = CutOnce(len(archive) // 2)
            transfers(target).hooks.chunk_stored = cut
            failed = await origin.orchestrator.distribute_service(SERVICE, [target.peer_id])
            error = failed["results"][target.peer_id]["error"]
            assert error.startswith("[transfer_cut] the stream to ") and error.endswith(
                "(gave up after 1 tries)"
            )
            assert SERVICE not in target.orchestrator.store.records
            (partial,) = (target.orchestrator.home / "partial").iterdir()
            assert partial.name == sha256(archive)
            done = await origin.orchestrator.distribute_service(SERVICE, [target.peer_id])
            (only,) = done["results"][target.peer_id]["result"]["transfer"]["tries"]
            # as in the test above: chunks read before the cut took effect may be kept too
            assert cut.seen <= only["receiver_had"] <= cut.seen + (QUEUE + 1) * CHUNK
            assert only["bytes_sent"] == len(archive) - only["receiver_had"]


async def test_fetch_cut_mid_way_resumes(tmp_path: Path) -> None:
    archive = blob_archive(tmp_path / "src", size=SIZE)
    with trio.fail_after(60):
        async with transfer_swarm(2, tmp_path) as nodes:
            holder, fetcher = nodes
            await holder.orchestrator.install_service(archive)
            cut = CutOnce(len(archive) // 3)
            transfers(holder).hooks.chunk_sent = cut
            result = await fetcher.orchestrator.fetch_service(SERVICE, holder.peer_id)
            assert result["archive_hash"] == sha256(archive) and result["fetched_from"] == holder.peer_id
            first, second = result["transfer"]["tries"]
            assert first["outcome"] == "transfer_cut" and second["outcome"] == "ok"
            assert first["bytes_received"] + second["bytes_received"] == len(archive)
            with pytest.raises(ServiceDistributionError):
                await fetcher.orchestrator.fetch_service(SERVICE, fetcher.peer_id)


async def test_a_sender_whose_disk_fails_leaves_the_receiver_its_verified_chunks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Regression: the sender's ``storage_failed`` abort made the receiver discard its partial.

    Only the receiver's own disk failing makes its partial worthless; a source saying its disk
    failed (or lying that it did) must not cost the receiver what it verified.
    """
    from p2p_orchestrator.node.distribution._archives import ArchiveFile

    archive = blob_archive(tmp_path / "src", size=SIZE)
    real, served = ArchiveFile.read_chunk, [0]

    def failing_after_ten(self: ArchiveFile, index: int) -> bytes:
        served[0] += 1
        if served[0] > 10:
            raise OSError(5, "Input/output error")
        return real(self, index)

    with trio.fail_after(60):
        async with transfer_swarm(2, tmp_path) as nodes:
            origin, target = nodes
            await origin.orchestrator.install_service(archive)
            with monkeypatch.context() as patch:
                patch.setattr(ArchiveFile, "read_chunk", failing_after_ten)
                failed = await origin.orchestrator.distribute_service(
                    SERVICE, [target.peer_id], strategy="push"
                )
            assert failed["results"][target.peer_id]["error"].startswith("[storage_failed] ")
            (partial,) = (target.orchestrator.home / "partial").iterdir()
            assert partial.name == sha256(archive)
            done = await origin.orchestrator.distribute_service(SERVICE, [target.peer_id])
            (only,) = done["results"][target.peer_id]["result"]["transfer"]["tries"]
            assert only["receiver_had"] == 10 * CHUNK  # it resumed after the ten chunks it had
