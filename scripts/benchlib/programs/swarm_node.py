"""One p2p-orchestrator node on a testbed host, driven by JSON lines (``swarm_n*``, ``auto_update_n16``,
``rollout_16``).

``python -m benchlib.programs.swarm_node HOME SETTINGS_JSON``: opens a node on ``HOME`` with the
listen address and roles in the settings file (``{"listen": multiaddr, "roles": {peer: role}}``,
optionally ``"publishers": [{"label", "public_key", "services"}]`` (trusted release keys, the
key as ``public_key_text`` writes it), ``"follow": [service, ...]`` with ``"check_interval"``
(``[updates]``) and ``"watch": true``), prints ``{"event": "ready", "peer": ..., "addr": ...}``,
then obeys one JSON command per stdin line, answering each with one event line:

* ``{"cmd": "connect", "addrs": [...]}`` -> ``connected`` (dials every address);
* ``{"cmd": "install", "path": ..., "release"?: ...}`` -> ``installed`` (``install_service`` of
  that archive file, with that release statement file if given);
* ``{"cmd": "distribute", "service", "targets", "strategy", "auto_start"?}`` -> ``distributed``
  with ``seconds`` (the ``distribute_service`` call, measured here) and the ``result``;
* ``{"cmd": "publish", "path", "release"}`` -> ``published`` with ``started_at`` (this process's
  ``time.monotonic()`` just before the ``publish_release`` call), ``seconds`` (the call) and the
  ``result``;
* ``{"cmd": "rollout", "path", "targets", "canary", "wave", "health_wait", "max_failures"?}`` ->
  ``rolled_out`` with ``seconds`` (the ``rollout_archive`` call of that archive file, measured
  here), the ``result`` (the rollout's account) and ``progress``: its ``rollout_progress`` events
  as ``{"at", "peer", "wave", "state"}`` (``at``: seconds since just before the call);
* ``{"cmd": "version", "service"}`` -> ``version`` with the service's current ``version`` and
  whether it is ``running`` (``None``/``False`` when it is not installed);
* ``{"cmd": "counters"}`` -> ``counters``: ``sent``/``received``, the bytes this node's transfer
  streams moved since it started (every frame: chunks, offers, results);
* ``{"cmd": "cpu"}`` -> ``cpu`` (every event line carries the process's ``cpu_seconds`` so far).

With ``"watch": true`` it also prints, unasked, ``{"event": "running", "service", "version",
"at"}`` each time a service's process reaches ``running`` (the runtime's ``service_started`` or
``service_restarted`` event; ``at`` is this process's ``time.monotonic()`` when it saw it, one
clock for every process of the machine), and ``{"event": "updated", "service", "version",
"from_peer", "at"}`` for each ``update_installed``.

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
from typing import TYPE_CHECKING, Any

import trio

from p2p_orchestrator import OrchestratorConfig
from p2p_orchestrator.config import AccessSettings, UpdateSettings
from p2p_orchestrator.errors import OrchestratorError
from p2p_orchestrator.node import Node
from p2p_orchestrator.release import Publisher, parse_public_key

if TYPE_CHECKING:
    from trio_typing import TaskStatus


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return round(usage.ru_utime + usage.ru_stime, 3)


def _say(**event: Any) -> None:
    """One event line, with this process's CPU seconds so far."""
    print(json.dumps({**event, "cpu_seconds": _cpu()}, default=str), flush=True)


async def _obey(node: Node, command: dict[str, Any]) -> None:
    kind = command["cmd"]
    if kind == "connect":
        for address in command["addrs"]:
            await node.connect(address)
        _say(event="connected")
    elif kind == "install":
        release = command.get("release")
        result = await node.orchestrator.install_service(
            Path(command["path"]), force_reinstall=True, release=None if release is None else Path(release)
        )
        _say(event="installed", version=result.get("version"))
    elif kind == "distribute":
        started = time.perf_counter()
        result = await node.orchestrator.distribute_service(
            command["service"], command["targets"], strategy=command["strategy"],
            auto_start=command.get("auto_start"),
        )  # fmt: skip
        _say(event="distributed", seconds=time.perf_counter() - started, result=result)
    elif kind == "rollout":
        await _rollout(node, command)
    elif kind == "publish":
        started = time.monotonic()
        result = await node.orchestrator.publish_release(Path(command["path"]), Path(command["release"]))
        _say(event="published", started_at=started, seconds=time.monotonic() - started, result=result)
    elif kind == "version":
        service = (await node.orchestrator.list_services())["services"].get(command["service"])
        running = service is not None and node.orchestrator.is_running(command["service"])
        _say(event="version", version=service and service["version"], running=running)
    elif kind == "counters":
        moved = node.transfers.bytes_moved
        _say(event="counters", sent=moved.sent, received=moved.received)
    elif kind == "cpu":
        _say(event="cpu")
    else:
        _say(event="error", message=f"unknown command {kind!r}")


async def _rollout(node: Node, command: dict[str, Any]) -> None:
    """``rollout``: the ``rollout_archive`` call, timed, with its ``rollout_progress`` events."""
    progress: list[dict[str, Any]] = []
    finished = trio.Event()
    started = time.monotonic()

    async def note(events: Any) -> None:
        async for event in events:
            if event.type == "rollout_progress":
                data = event.data
                at = round(time.monotonic() - started, 3)
                progress.append({"at": at, "peer": data.get("peer"), "wave": data.get("wave"),
                                 "state": data.get("state")})  # fmt: skip
            elif event.type == "rollout_finished":
                finished.set()

    failure: OrchestratorError | None = None
    async with node.orchestrator.events.subscribe(buffer=4096) as events, trio.open_nursery() as nursery:
        nursery.start_soon(note, events)
        started = time.monotonic()
        try:
            result = await node.orchestrator.rollout_archive(
                Path(command["path"]),
                command["targets"],
                canary=int(command["canary"]),
                wave=int(command["wave"]),
                health_wait=float(command["health_wait"]),
                max_failures=int(command.get("max_failures", 0)),
            )
        except OrchestratorError as exc:  # answered as an error line, outside the nursery
            failure = exc
        seconds = time.monotonic() - started
        if failure is None:
            with trio.move_on_after(10):  # rollout_finished is published right as the call returns
                await finished.wait()
        nursery.cancel_scope.cancel()
    if failure is not None:
        raise failure
    _say(event="rolled_out", seconds=seconds, result=result, progress=progress, dropped=events.dropped)


async def _watch(node: Node, *, task_status: TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
    """Print ``running`` and ``updated`` lines as the node's events happen (``"watch": true``)."""
    async with node.orchestrator.events.subscribe(buffer=4096) as events:
        task_status.started()
        async for event in events:
            if event.type in ("service_started", "service_restarted"):
                _say(event="running", service=event.service, version=event.version, at=time.monotonic())
            elif event.type == "update_installed":
                _say(event="updated", service=event.service, version=event.version,
                     from_peer=event.data.get("from_peer"), at=time.monotonic())  # fmt: skip


def _config(settings: dict[str, Any]) -> OrchestratorConfig:
    base = OrchestratorConfig()
    publishers = tuple(
        Publisher(p["label"], parse_public_key(p["public_key"]), tuple(p["services"]))
        for p in settings.get("publishers", ())
    )
    updates = UpdateSettings(
        follow=tuple(settings.get("follow", ())),
        check_interval=float(settings.get("check_interval", UpdateSettings.check_interval)),
    )
    return replace(
        base,
        node=replace(base.node, listen=(settings["listen"],)),
        access=AccessSettings(roles=settings["roles"], unknown_peers="none"),
        publishers=publishers,
        updates=updates,
    )


async def main(home: Path, settings: dict[str, Any]) -> None:
    stdin = trio.lowlevel.FdStream(os.dup(0))
    async with Node.open(home, config=_config(settings)) as node, trio.open_nursery() as nursery:
        if settings.get("watch"):
            await nursery.start(_watch, node)
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
        nursery.cancel_scope.cancel()
        _say(event="stats", peak_rss_mib=round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1))


if __name__ == "__main__":
    trio.run(main, Path(sys.argv[1]), json.loads(Path(sys.argv[2]).read_text(encoding="utf-8")))
