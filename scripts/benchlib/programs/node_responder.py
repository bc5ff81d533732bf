"""A p2p-orchestrator node in its own process, serving the example service.

``python -m benchlib.programs.node_responder HOME``: opens a node on ``HOME`` listening on
loopback, installs and starts the example service, prints
``listening <multiaddr>/p2p/<id> <ms>`` (``ms``: from opening the node to listening) and
serves until its stdin closes.  The far end of the network scenarios' project side, laid out
like :mod:`benchlib.programs.libp2p_responder` so both sides are measured alike.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import trio

from benchlib.project import EXAMPLE, example_archive
from p2p_orchestrator.node import Node


async def main(home: Path) -> None:
    started = time.perf_counter()
    async with Node.open(home) as node:
        listening_ms = (time.perf_counter() - started) * 1000
        await node.rpc.call("orchestrator/install_service", {"archive_data": example_archive(home / "src")})
        await node.rpc.call("orchestrator/start_service", {"service_name": EXAMPLE})
        print(f"listening {node.listen_addrs[0]} {listening_ms:.1f}", flush=True)
        await trio.wrap_file(sys.stdin).read()


if __name__ == "__main__":
    trio.run(main, Path(sys.argv[1]))
