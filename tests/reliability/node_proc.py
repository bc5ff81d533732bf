"""A real node process for the reliability suites, driven by JSON lines on stdin.

    python -m tests.reliability.node_proc HOME      (cwd: the repository)

It opens ``Node.open(HOME)`` (so ``HOME/config.toml`` configures it, and the
services whose desired state is ``running`` come back), prints one JSON line
``{"event": "ready", "peer_id", "addrs", "pids"}``, then runs one command per
line read from stdin, each announced by ``{"event": "begin", "op"}`` (flushed
before the operation starts, so a test can kill the process *during* it) and
ended by ``{"event": "done", "op", "result"}`` or ``{"event": "error", "op",
"code", "type", "message"}``.  It closes the node and exits 0 when stdin ends.

Commands (``{"op": ..., ...}``):

* ``install`` (``archive``: a path, ``force``), ``uninstall``, ``rollback``,
  ``start``, ``stop``, ``restart`` (``name``): the orchestrator's methods;
* ``distribute`` (``name``, ``targets``): ``distribute_service`` to those peer IDs;
* ``fetch`` (``name``, ``peer``, ``force``): ``fetch_service`` from that peer ID;
* ``connect`` (``address``): dial a peer by multiaddr;
* ``role`` (``peer``, ``role``): give a peer a role (``node.set_role``);
* ``rollout`` (``archive``, ``targets``, ``canary``, ``wave``, ``health_wait``, ``max_failures``):
  start a rollout of that archive file (its first account, at once); ``rollout_wait`` (``id``):
  its account once it has ended;
* ``call`` (``peer``, ``method``, ``params``, ``time_limit``): a remote call;
* ``stats``: the node's network counters, the service pids, each service's call
  admission counters, this process's RSS, open descriptors and threads.

Crash tests set ``P2P_ORCHESTRATOR_CRASHPOINT`` so the process SIGKILLs itself
at a named step (see :mod:`p2p_orchestrator.crashpoints`): in its environment
(armed from the start), or as a command's ``crashpoint`` field (armed just
before that command runs).
"""

from __future__ import annotations

import json
import os
import sys
import threading
from pathlib import Path
from typing import Any

import trio

from p2p_orchestrator import OrchestratorError
from p2p_orchestrator.crashpoints import CRASHPOINT_ENV
from p2p_orchestrator.node import Node


def emit(event: str, **fields: Any) -> None:
    """One JSON line on stdout, flushed at once."""
    print(json.dumps({"event": event, **fields}, default=repr), flush=True)


def service_pids(node: Node) -> dict[str, int]:
    """The pid of every service process this node runs now."""
    supervisor = node.orchestrator.supervisor
    pids = {}
    for name in node.orchestrator.store.records:
        unit = supervisor.find(name)
        if unit is not None and unit.process is not None:
            pids[name] = unit.process.pid
    return pids


def admission(node: Node) -> dict[str, dict[str, int]]:
    """Per running service: remote calls admitted now, at most at once, refused ``busy``."""
    found = {}
    for name in node.orchestrator.store.records:
        unit = node.orchestrator.supervisor.find(name)
        if unit is not None and unit.process is not None:
            counts = unit.process.admission
            found[name] = {"admitted": counts.admitted, "peak": counts.peak, "refused": counts.refused}
    return found


def process_stats() -> dict[str, int]:
    """RSS (bytes), open descriptors and threads of this process."""
    rss = 0
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            rss = int(line.split()[1]) * 1024
    return {
        "rss": rss,
        "fds": len(os.listdir("/proc/self/fd")),
        "threads": threading.active_count(),
    }


async def run_command(node: Node, command: dict[str, Any]) -> Any:
    """Carry out one command; returns its result (an OrchestratorError propagates)."""
    op = command["op"]
    orch = node.orchestrator
    if op == "install":
        return await orch.install_service(Path(command["archive"]), bool(command.get("force", False)))
    if op in ("uninstall", "rollback", "start", "stop", "restart"):
        method = getattr(orch, f"{op}_service")
        return await method(command["name"])
    if op == "connect":
        return await node.connect(command["address"])
    if op == "call":
        return await node.proxy(command["peer"]).call_method(
            command["method"], command.get("params", {}), time_limit=command.get("time_limit")
        )
    if op == "distribute":
        return await orch.distribute_service(command["name"], command["targets"])
    if op == "fetch":
        return await orch.fetch_service(
            command["name"], command["peer"], force_reinstall=bool(command.get("force", False))
        )
    if op == "role":
        return await node.set_role(command["peer"], command["role"])
    if op == "rollout":
        return await orch.rollout_archive(
            Path(command["archive"]),
            command["targets"],
            canary=command.get("canary", 1),
            wave=command.get("wave", 1),
            health_wait=command.get("health_wait", 1.0),
            max_failures=command.get("max_failures", 0),
            wait=False,
        )
    if op == "rollout_wait":
        return await orch.wait_rollout(command["id"])
    if op == "stats":
        return {
            "node": node.stats(),
            "pids": service_pids(node),
            "admission": admission(node),
            **process_stats(),
        }
    raise ValueError(f"unknown command {op!r}")


async def main(home: Path) -> None:
    async with Node.open(home) as node:
        emit("ready", peer_id=node.peer_id, addrs=node.listen_addrs, pids=service_pids(node), pid=os.getpid())
        async for line in trio.wrap_file(sys.stdin):
            if not line.strip():
                continue
            command = json.loads(line)
            if command.get("crashpoint"):
                os.environ[CRASHPOINT_ENV] = command["crashpoint"]
            emit("begin", op=command["op"], pids=service_pids(node))
            try:
                result = await run_command(node, command)
            except OrchestratorError as exc:
                emit("error", op=command["op"], code=exc.code, type=type(exc).__name__, message=exc.message)
            else:
                emit("done", op=command["op"], result=result, pids=service_pids(node))


if __name__ == "__main__":
    trio.run(main, Path(sys.argv[1]))
