"""A p2p-orchestrator node in its own process: the far end of the transfer figures.

``python -m benchlib.programs.orchestrator_node HOME --trust PEER_ID [--max-archive-mib N]
[--cut-at-bytes N] [--report-install-cpu]``: opens the node at ``HOME`` (defaults, except that
``PEER_ID`` is an admin here and archives may be ``N`` MiB), prints ``listening
<multiaddr>/p2p/<peer id> <pid>``, and serves until its stdin closes.  With ``--cut-at-bytes``,
each transfer it receives is cut once, by resetting the stream, as soon as ``N`` bytes of the
archive are verified (the resume figure).  With ``--report-install-cpu``, the result of each
install of a received archive also holds ``bench_install_cpu_seconds``: this process's CPU time
(all threads) during that install, which starts once the whole archive is verified (the CPU
figure takes it out, as the throughput figure takes out the install's time).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

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


def report_install_cpu(node: Node) -> None:
    """Wrap the node's install of received archives to add its CPU seconds to the result."""
    install = node.transfers.install_received

    async def timed(path: Path, **options: Any) -> dict[str, Any]:
        started = time.process_time()
        result = await install(path, **options)
        return {**result, "bench_install_cpu_seconds": time.process_time() - started}

    node.transfers.install_received = timed  # type: ignore[method-assign]


async def main(args: argparse.Namespace) -> None:
    limit = args.max_archive_mib << 20
    config = OrchestratorConfig(
        archive=ArchiveLimits(max_compressed_bytes=limit, max_uncompressed_bytes=max(limit * 2, 1 << 30)),
        access=AccessSettings(roles={args.trust: "admin"}),
    )
    async with Node.open(args.home, config=config) as node:
        if args.cut_at_bytes:
            node.transfers.hooks.chunk_stored = cut_once_at(args.cut_at_bytes)
        if args.report_install_cpu:
            report_install_cpu(node)
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
    parser.add_argument("--report-install-cpu", action="store_true")
    trio.run(main, parser.parse_args())
