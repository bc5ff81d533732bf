"""One p2p-orchestrator node on a testbed host, driven by JSON lines (the project side of ``swarm_n*``).

``python -m benchlib.programs.swarm_node HOME SETTINGS_JSON``: opens a node on ``HOME`` with the
listen address and roles in the settings file (``{"listen": multiaddr, "roles": {peer: role}}``),
prints ``{"event": "ready", "peer": ..., "addr": ...}``, then obeys one JSON command per stdin
line, answering each with one event line:

* ``{"cmd": "connect", "addrs": [...]}`` -> ``connected`` (dials every address);
* ``{"cmd": "install", "path": ...}`` -> ``installed`` (``install_service`` of that archive file);
* ``{"cmd": "distribute", "service", "targets", "strategy"}`` -> ``distributed`` with ``seconds``
  (the ``distribute_service`` call, measured here) and the ``result``;
* ``{"cmd": "cpu"}`` -> ``cpu`` (every event line carries the process's ``cpu_seconds`` so far).

A command that fails answers ``{"event": "error", "message": ...}``.  When stdin closes it prints
``stats`` (peak RSS) and stops the node.  Laid out like :mod:`benchlib.bt_peer`, the BitTorrent
baseline's peer, so that both sides of the scenario are driven alike.
"""

from __future__ import annotations

import json
import os
import resource
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import trio

from p2p_orchestrator import OrchestratorConfig
from p2p_orchestrator.config import AccessSettings
from p2p_orchestrator.errors import OrchestratorError
from p2p_orchestrator.node import Node


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return round(usage.ru_utime + usage.ru_stime, 3)


def _say(**event: Any) -> None:
    """One event line, with this process's CPU seconds so far."""
    print(json.dumps({**event, "cpu_seconds": _cpu()}), flush=True)


async def _obey(node: Node, command: dict[str, Any]) -> None:
    kind = command["cmd"]
    if kind == "connect":
        for address in command["addrs"]:
            await node.connect(address)
        _say(event="connected")
    elif kind == "install":
        result = await node.orchestrator.install_service(Path(command["path"]), force_reinstall=True)
        _say(event="installed", version=result.get("version"))
    elif kind == "distribute":
        started = time.perf_counter()
        result = await node.orchestrator.distribute_service(
            command["service"], command["targets"], strategy=command["strategy"]
        )
        _say(event="distributed", seconds=time.perf_counter() - started, result=result)
    elif kind == "cpu":
        _say(event="cpu")
    else:
        _say(event="error", message=f"unknown command {kind!r}")


async def main(home: Path, settings: dict[str, Any]) -> None:
    base = OrchestratorConfig()
    config = replace(
        base,
        node=replace(base.node, listen=(settings["listen"],)),
        access=AccessSettings(roles=settings["roles"], unknown_peers="none"),
    )
    stdin = trio.lowlevel.FdStream(os.dup(0))
    async with Node.open(home, config=config) as node:
        _say(event="ready", peer=node.peer_id, addr=node.listen_addrs[0])
        buffer = b""
        while data := await stdin.receive_some(65536):
            buffer += data
            while b"\n" in buffer:
                line, _, buffer = buffer.partition(b"\n")
                try:
                    await _obey(node, json.loads(line))
                except OrchestratorError as exc:
                    _say(event="error", message=str(exc))
        _say(event="stats", peak_rss_mib=round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1))


if __name__ == "__main__":
    trio.run(main, Path(sys.argv[1]), json.loads(Path(sys.argv[2]).read_text(encoding="utf-8")))
