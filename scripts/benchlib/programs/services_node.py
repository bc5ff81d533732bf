"""A p2p-orchestrator node in its own process running idle services (``hundred_services_pss``).

``python -m benchlib.programs.services_node HOME ARCHIVE...``: opens a node at ``HOME`` with the
default configuration (127.0.0.1, Landlock on), installs every archive file given, each a copy
of the example service named as the file (``NAME.tar.gz``), 8 at a time (an install starts its
service, by default), starts any that did not start, waits until every one runs, then prints one
JSON line ``{"node": pid, "fork_server": pid, "services": {name: pid}, "start_all_seconds": s}`` and idles until
its stdin closes; it then stops every service (8 at a time) and exits.

The archives are built by the bench process, so this process imports nothing a node does not.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import trio

from p2p_orchestrator.node import Node


async def _wait_running(node: Node, name: str) -> None:
    with trio.fail_after(120):
        while not node.orchestrator.is_running(name):  # noqa: ASYNC110 (no event to wait on)
            await trio.sleep(0.01)


async def main(home: Path, archives: list[Path]) -> None:
    async with Node.open(home) as node:
        orch = node.orchestrator
        names = [archive.name.removesuffix(".tar.gz") for archive in archives]
        limiter = trio.CapacityLimiter(8)

        async def install(archive: Path, name: str) -> None:
            async with limiter:
                result = await orch.install_service(archive)
                if not result.get("auto_started"):
                    await orch.start_service(name)

        started = time.perf_counter()
        async with trio.open_nursery() as nursery:
            for archive, name in zip(archives, names, strict=True):
                nursery.start_soon(install, archive, name)
        for name in names:
            await _wait_running(node, name)
        start_all = time.perf_counter() - started
        pids = {name: (await orch.get_service_info(name)).get("pid") for name in names}
        forks = orch.supervisor.forks
        ready = {
            "node": os.getpid(),
            "fork_server": forks.pid if forks is not None else None,
            "services": pids,
            "start_all_seconds": start_all,
        }
        print(json.dumps(ready), flush=True)
        stdin = trio.lowlevel.FdStream(os.dup(sys.stdin.fileno()))
        while await stdin.receive_some(4096):
            pass

        async def stop(name: str) -> None:
            async with limiter:
                await orch.stop_service(name)

        async with trio.open_nursery() as nursery:
            for name in names:
                nursery.start_soon(stop, name)


if __name__ == "__main__":
    trio.run(main, Path(sys.argv[1]), [Path(argument) for argument in sys.argv[2:]])
