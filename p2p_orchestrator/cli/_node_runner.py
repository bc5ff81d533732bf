"""``p2p-orchestrator node``: a node, its control socket and signal handling, in one nursery.

Imported only by the ``node`` command: it loads trio, the runtime and libp2p.
"""

from __future__ import annotations

import logging
import os
import signal
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from dataclasses import replace
from functools import partial
from pathlib import Path
from typing import Any

import trio

from p2p_orchestrator.config import OrchestratorConfig, load_config
from p2p_orchestrator.control.paths import socket_path
from p2p_orchestrator.control.server import check_socket_path, serve_control
from p2p_orchestrator.errors import OrchestratorError
from p2p_orchestrator.node import Node
from p2p_orchestrator.telemetry import serve_metrics

__all__ = ["main", "node_config", "run_node"]

log = logging.getLogger("p2p_orchestrator.cli")

Announce = Callable[[dict[str, Any]], None]
"""Called once the node and its control socket are up, with ``{peer_id, listen_addrs, home, control_socket, pid,
metrics, dashboard}`` (the last two: their URLs, or ``None`` when not served)."""


def node_config(home: Path, listen: Sequence[str], bootstrap: Sequence[str]) -> OrchestratorConfig:
    """``config.toml`` with ``--listen`` replacing ``[node] listen`` and ``--bootstrap`` added to its bootstrap."""
    config = load_config(home)
    settings = config.node
    if listen:
        settings = replace(settings, listen=tuple(listen))
    if bootstrap:
        settings = replace(settings, bootstrap=tuple(dict.fromkeys([*settings.bootstrap, *bootstrap])))
    return replace(config, node=settings)


def main(home: Path, config: OrchestratorConfig, announce: Announce) -> None:
    """Run the node (blocking); a startup or shutdown failure raises its :class:`OrchestratorError`.

    trio's nurseries (the node's, the orchestrator's, ours) wrap errors in
    exception groups; one made only of orchestrator errors is unwrapped to the
    first of them, so the command line shows ``error [code]: message``.
    """
    try:
        trio.run(run_node, home, config, announce)
    except BaseExceptionGroup as group:
        leaves = list(_leaves(group))
        if not all(isinstance(leaf, OrchestratorError) for leaf in leaves):
            raise
        for extra in leaves[1:]:
            log.warning("Also: %s", extra)
        raise leaves[0] from group


def _leaves(group: BaseExceptionGroup[BaseException]) -> Iterator[BaseException]:
    for exc in group.exceptions:
        if isinstance(exc, BaseExceptionGroup):
            yield from _leaves(exc)
        else:
            yield exc


async def run_node(home: Path, config: OrchestratorConfig, announce: Announce) -> None:
    """Run the node until SIGINT or SIGTERM, then stop it cleanly (its services too)."""
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        # fail fast, before any service starts, if the socket path is taken
        await trio.to_thread.run_sync(check_socket_path, socket_path(home))
        async with Node.open(home, config=config) as node, trio.open_nursery() as nursery:
            nursery.start_soon(_stop_on_signal, signals, nursery.cancel_scope)
            served: dict[str, str | None] = {"metrics": None, "dashboard": None}  # node/id tells them
            path = await nursery.start(partial(serve_control, node, served=served))
            if config.metrics.listen:
                host, port = await nursery.start(
                    serve_metrics, config.metrics.listen, node.orchestrator.get_metrics
                )
                served["metrics"] = f"http://{host}:{port}/metrics"
            if config.dashboard.listen:
                from p2p_orchestrator.dashboard.server import serve_dashboard  # hypercorn only when used

                served["dashboard"] = await nursery.start(serve_dashboard, node, config.dashboard)
            announce(
                {
                    "peer_id": node.peer_id,
                    "listen_addrs": node.listen_addrs,
                    "home": str(home),
                    "control_socket": str(path),
                    "pid": os.getpid(),
                    **served,
                }
            )


async def _stop_on_signal(signals: AsyncIterator[int], scope: trio.CancelScope) -> None:
    async for signum in signals:
        log.info("Received %s: stopping the node and its services", signal.Signals(signum).name)
        scope.cancel()
        return
