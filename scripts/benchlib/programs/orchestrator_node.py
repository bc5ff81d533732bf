"""A p2p-orchestrator node in its own process: the far end of the transfer figures.

``python -m benchlib.programs.orchestrator_node HOME --trust PEER_ID [--max-archive-mib N]
[--cut-at-bytes N]``: opens the node at ``HOME`` (defaults, except that ``PEER_ID`` is an admin
here and archives may be ``N`` MiB), prints ``listening <multiaddr>/p2p/<peer id> <pid>``, and
serves until its stdin closes.  With ``--cut-at-bytes``, each transfer it receives is cut once,
by resetting the stream, as soon as ``N`` bytes of the archive are verified (the resume figure).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from pathlib import Path

import trio

from p2p_orchestrator.archive import ArchiveLimits
from p2p_orchestrator.config import AccessSettings, OrchestratorConfig
from p2p_orchestrator.node import Node


def cut_once_at(threshold: int) -> Callable[[str, int], bool]:
    """A receiver hook cutting each transfer the first time its verified bytes cross ``threshold``."""
    last = 0

    def hook(peer: str, verified: int) -> bool:
        nonlocal last
        crossed = last < threshold <= verified
        last = verified
        return crossed

    return hook


async def main(args: argparse.Namespace) -> None:
    limit = args.max_archive_mib << 20
    config = OrchestratorConfig(
        archive=ArchiveLimits(max_compressed_bytes=limit, max_uncompressed_bytes=max(limit * 2, 1 << 30)),
        access=AccessSettings(roles={args.trust: "admin"}),
    )
    async with Node.open(args.home, config=config) as node:
        if args.cut_at_bytes:
            node.transfers.hooks.chunk_stored = cut_once_at(args.cut_at_bytes)
        print(f"listening {node.listen_addrs[0]} {os.getpid()}", flush=True)
        stdin = trio.lowlevel.FdStream(sys.stdin.fileno())
        while await stdin.receive_some(4096):
            pass


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("home", type=Path)
    parser.add_argument("--trust", required=True, help="peer ID given the admin role")
    parser.add_argument("--max-archive-mib", type=int, default=256)
    parser.add_argument("--cut-at-bytes", type=int, default=0)
    trio.run(main, parser.parse_args())
