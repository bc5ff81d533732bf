"""Helpers of the distribution tests: swarms with transfers, archives with incompressible payloads."""

from __future__ import annotations

import hashlib
import random
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import trio

from p2p_orchestrator.archive import pack_service_bytes
from p2p_orchestrator.config import OrchestratorConfig
from p2p_orchestrator.node import Node
from p2p_orchestrator.node.distribution.transfers import NodeTransfers
from p2p_orchestrator.testing import Swarm, swarm
from p2p_orchestrator.transfer import MIN_CHUNK_SIZE
from tests.helpers import make_service
from tests.node.support import fast_config

CHUNK = MIN_CHUNK_SIZE
"""Chunk size the origins of these tests build manifests with (64 KiB: many chunks, small archives)."""


def blob_archive(
    root: Path, version: str = "1.0.0", size: int = 1 << 20, *, seed: int = 0, **kwargs: Any
) -> bytes:
    """The example service at ``version`` with ``size`` incompressible bytes in ``assets/blob.bin``."""
    service = make_service(root / f"v{version}-{seed}", version=version, **kwargs)
    (service / "assets").mkdir(exist_ok=True)
    (service / "assets" / "blob.bin").write_bytes(random.Random(f"{seed}-{version}").randbytes(size))
    return pack_service_bytes(service)


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def transfers(node: Node) -> NodeTransfers:
    """The node's transfer side."""
    return node.transfers


@asynccontextmanager
async def transfer_swarm(
    n: int,
    tmp_path: Path,
    *,
    chunk: int = CHUNK,
    configure: Callable[[OrchestratorConfig], OrchestratorConfig] | None = None,
    **options: Any,
) -> AsyncIterator[Swarm]:
    """``swarm(n)`` with fast settings (``options`` override ``[node]`` ones) and small chunks.

    ``configure`` changes the configuration every node gets (``[publishers]``, ``[security]``...).
    """
    node_options = {"read_timeout": 2.0, "write_timeout": 2.0, **options.pop("node", {})}
    config = fast_config(**node_options)
    if configure is not None:
        config = configure(config)
    async with swarm(n, tmp_dir=tmp_path / "swarm", config=config, **options) as nodes:
        for node in nodes:
            transfers(node).chunk_size = chunk
        yield nodes


async def partials_gone(home: Path, *, within: float = 10.0) -> bool:
    """Whether ``home/partial`` empties within ``within`` seconds.

    A receiving node discards its partial after it has sent the sender the result,
    so the sender's ``distribute_service`` may return a moment before that.
    """
    with trio.move_on_after(within):
        while any((home / "partial").iterdir()):  # noqa: ASYNC110 -- the discard is another node's
            await trio.sleep(0.01)
        return True
    return False
