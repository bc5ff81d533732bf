"""Soak: a swarm of 5 nodes cycling install / call / uninstall; nothing grows beyond a stated bound.

Each cycle puts a service on other nodes -- through the RPC protocol
(``install_service`` with the archive) on even cycles, by ``distribute_service``
(the transfer protocol) to two nodes on odd ones --, starts it there, the
other nodes call it 20 times each, then it is stopped and uninstalled.  Resources are read
after cycle 10 (warm: imports done, caches filled, every kind of connection
open) and at the end, which comes after ``P2P_SOAK_SECONDS`` seconds (default
300; ``make soak`` runs it):

==========================  ==================================================
what                        bound on the growth from cycle 10 to the end
==========================  ==================================================
RSS of the process          ``RSS_BOUND`` (the 5 nodes share this process)
open file descriptors       ``FD_BOUND``
threads                     ``THREAD_BOUND`` (trio's idle worker threads come and go)
child processes             none at either point (every service is stopped)
disk of the five homes      ``DISK_BOUND`` (logs grow a line per start, rotated)
each ``state.db-wal``       ``WAL_BOUND`` in all (sqlite's auto-checkpoint)
==========================  ==================================================

and every home is consistent at the end (:func:`~tests.reliability.consistency.check_store`).
"""

from __future__ import annotations

import gc
import os
import threading
import time
from collections.abc import Awaitable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import trio

from p2p_orchestrator import OrchestratorError
from p2p_orchestrator.node import Node
from p2p_orchestrator.testing import swarm
from tests.node.support import fast_config
from tests.reliability.consistency import check_store
from tests.reliability.procs import descendants
from tests.reliability.support import LOAD_SERVICE, rss_bytes, service_archive

MIB = 1 << 20
RSS_BOUND = 48 * MIB
FD_BOUND = 16
THREAD_BOUND = 8
DISK_BOUND = 2 * MIB
WAL_BOUND = 5 * MIB
"""sqlite checkpoints its write-ahead log every 1000 pages (4 MiB) and then reuses the file."""
NAMES = ("soak_a", "soak_b", "soak_c")


@dataclass(frozen=True)
class Usage:
    rss: int
    fds: int
    threads: int
    children: int
    disk: int

    def growth(self, later: Usage) -> dict[str, int]:
        return {key: getattr(later, key) - getattr(self, key) for key in ("rss", "fds", "threads", "disk")}


def disk_bytes(root: Path) -> int:
    """Bytes of the files under ``root``, sqlite's write-ahead logs excepted (see :data:`WAL_BOUND`)."""
    total = 0
    for dirpath, _dirnames, filenames in os.walk(root):
        for name in filenames:
            if name.endswith(("-wal", "-shm")):
                continue
            try:
                total += os.lstat(os.path.join(dirpath, name)).st_size
            except FileNotFoundError:
                continue  # removed meanwhile (the trash is emptied in a worker thread)
    return total


async def usage(root: Path) -> Usage:
    gc.collect()
    await trio.sleep(0.5)  # let closed streams and emptied trash settle
    return Usage(
        rss=rss_bytes(os.getpid()),
        fds=len(os.listdir("/proc/self/fd")),
        threads=threading.active_count(),
        children=len(descendants()),
        disk=disk_bytes(root),
    )


async def step(cycle: int, what: str, call: Awaitable[Any]) -> Any:
    """``await call``; a failure names the cycle and the step (the soak runs for minutes)."""
    try:
        return await call
    except OrchestratorError as exc:
        raise AssertionError(f"cycle {cycle}: {what}: {exc!r}") from exc


async def one_cycle(nodes: list[Node], cycle: int, archives: dict[str, bytes]) -> None:
    """Put a service on other nodes, call it from the rest, stop and uninstall it.

    Even cycles install it on the next node through the RPC protocol
    (``install_service`` with the archive); odd cycles install it here and
    ``distribute_service`` it to the next two nodes (the transfer protocol).
    """
    name = NAMES[cycle % len(NAMES)]
    origin = nodes[cycle % 5]
    params = {"service_name": name}
    if cycle % 2 == 0:
        targets = [nodes[(cycle + 1) % 5]]
        remote = origin.proxy(targets[0].peer_id)
        installed = await step(
            cycle,
            "install",
            remote.call_method("orchestrator/install_service", {"archive_data": archives[name]}),
        )
        assert installed["service_name"] == name
        await step(cycle, "start", remote.call_method("orchestrator/start_service", params))
    else:
        targets = [nodes[(cycle + 1) % 5], nodes[(cycle + 2) % 5]]
        await step(cycle, "local install", origin.orchestrator.install_service(archives[name]))
        peers = [target.peer_id for target in targets]
        result = await step(
            cycle, "distribute", origin.orchestrator.distribute_service(name, peers, auto_start=True)
        )
        assert result["successful_distributions"] == 2, result
        await step(cycle, "local uninstall", origin.orchestrator.uninstall_service(name))

    async def calls(caller: Node, target: Node) -> None:
        proxy = caller.proxy(target.peer_id)
        for x in range(20 // len(targets)):
            answer = await step(
                cycle, f"call from {caller.peer_id}", proxy.call_method(f"{name}/work", {"x": x})
            )
            assert answer == {"x": x, "double": 2 * x}

    async with trio.open_nursery() as nursery:
        for caller in nodes:
            for target in targets:
                if caller not in targets:
                    nursery.start_soon(calls, caller, target)
    for target in targets:
        remote = origin.proxy(target.peer_id)
        await step(cycle, "stop", remote.call_method("orchestrator/stop_service", params))
        await step(cycle, "uninstall", remote.call_method("orchestrator/uninstall_service", params))


@pytest.mark.slow
async def test_soak_five_nodes(tmp_path: Path) -> None:
    seconds = float(os.environ.get("P2P_SOAK_SECONDS", "300"))
    archives = {
        name: service_archive(tmp_path / "src", name, LOAD_SERVICE.replace("load_service", name))
        for name in NAMES
    }
    root = tmp_path / "swarm"
    with trio.fail_after(seconds + 180):
        async with swarm(5, tmp_dir=root, config=fast_config()) as nodes:
            deadline = time.monotonic() + seconds
            warm: Usage | None = None
            cycle = 0
            while cycle < 12 or time.monotonic() < deadline:
                await one_cycle(list(nodes), cycle, archives)
                cycle += 1
                if cycle == 10:
                    warm = await usage(root)
            end = await usage(root)
            wals = {wal: wal.stat().st_size for wal in root.glob("*/state.db-wal")}
            for node in nodes:
                check_store(node.orchestrator, {})
    assert warm is not None
    growth = warm.growth(end)
    print(f"soak: {cycle} cycles in {seconds:g} s; from cycle 10 to the end: {growth}")
    assert warm.children == end.children == 0
    assert growth["rss"] <= RSS_BOUND, growth
    assert growth["fds"] <= FD_BOUND, growth
    assert growth["threads"] <= THREAD_BOUND, growth
    assert growth["disk"] <= DISK_BOUND, growth
    assert all(size <= WAL_BOUND for size in wals.values()), wals
