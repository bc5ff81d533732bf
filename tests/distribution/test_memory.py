"""Memory stays flat: a 64 MiB transfer holds a few chunks in memory, whatever the archive's size.

Both nodes run in this process, so Python's allocations are traced with ``tracemalloc`` for
the sender and the receiver together.  The archive is 64 MiB of random bytes -- not a service
archive, so the receiver's install refuses it at once (``not_gzip``) after the whole transfer,
verification and final check: what is measured is the transfer.
"""

from __future__ import annotations

import os
import tracemalloc
from pathlib import Path

import pytest
import trio

from p2p_orchestrator.node.distribution._archives import ArchiveFile
from p2p_orchestrator.node.distribution._send import SendSession
from p2p_orchestrator.transfer import TransferSender, build_manifest
from tests.distribution.support import transfer_swarm, transfers

MIB = 1 << 20


def random_file(path: Path, size: int) -> Path:
    with open(path, "wb") as file:
        for _ in range(size // MIB):
            file.write(os.urandom(MIB))
    return path


@pytest.mark.parametrize("chunk", [256 * 1024, MIB, 4 * MIB])
async def test_a_64_mib_transfer_holds_a_few_chunks(tmp_path: Path, chunk: int) -> None:
    path = random_file(tmp_path / "blob.bin", 64 * MIB)
    manifest = build_manifest(path, chunk)
    with trio.fail_after(60):
        async with transfer_swarm(2, tmp_path, node={"read_timeout": 10.0, "write_timeout": 10.0}) as nodes:
            origin, target = nodes
            stream = await transfers(origin).open_stream(target.peer_id)
            tracemalloc.start()
            try:
                baseline = tracemalloc.get_traced_memory()[0]
                with ArchiveFile(path, manifest) as archive:
                    sender = TransferSender(manifest, archive.read_chunk, purpose="install")
                    session = SendSession(stream, sender, read_timeout=10.0, install_timeout=30.0)
                    result = await session.run()
                peak = tracemalloc.get_traced_memory()[1] - baseline
            finally:
                tracemalloc.stop()
            await stream.close()
    assert session.bytes_sent == 64 * MIB
    assert result.error is not None and result.error.code == "not_gzip"  # it arrived whole, then was refused
    # sender: a chunk read + its frame; receiver: the queue, the frame being parsed, the chunk being written
    assert peak < 8 * chunk + 4 * MIB, f"peak {peak / MIB:.1f} MiB with {chunk // 1024} KiB chunks"
