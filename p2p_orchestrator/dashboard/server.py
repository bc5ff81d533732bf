"""``serve_dashboard``: the dashboard of a running node, served with hypercorn on the node's trio loop.

:func:`serve_dashboard` runs in the node's nursery (``p2p-orchestrator node`` starts it when
``[dashboard] listen`` is set)::

    async with Node.open(home) as node, trio.open_nursery() as nursery:
        url = await nursery.start(serve_dashboard, node, config.dashboard)

It makes (or reads) the home's token first, binds, then knows the port and so the ``Host`` names
it answers to (:class:`~.guard.Guard`), and follows the node's events for the distributions the
operations page draws.  A non-loopback address was refused when the configuration was read unless
``allow_remote = true``; it is logged as a warning here each time the node starts.
"""

from __future__ import annotations

import logging
from functools import partial
from typing import TYPE_CHECKING, Any, cast

import trio

from p2p_orchestrator.config import DashboardSettings
from p2p_orchestrator.dashboard.app import GuardSlot, create_app
from p2p_orchestrator.dashboard.errors import DashboardError
from p2p_orchestrator.dashboard.fleet import FleetView
from p2p_orchestrator.dashboard.guard import Guard, loopback_hosts
from p2p_orchestrator.dashboard.token import load_or_create_token
from p2p_orchestrator.dashboard.tracker import Distributions
from p2p_orchestrator.events import EventBus

if TYPE_CHECKING:
    from trio_typing import TaskStatus

    from p2p_orchestrator.node import Node

__all__ = ["serve_dashboard"]

log = logging.getLogger("p2p_orchestrator.dashboard")


async def serve_dashboard(
    node: Node, settings: DashboardSettings, *, task_status: TaskStatus[str] = trio.TASK_STATUS_IGNORED
) -> None:
    """Serve the dashboard on ``settings.listen`` until cancelled; ``task_status`` gets its URL."""
    from hypercorn.config import Config
    from hypercorn.trio import serve

    token = await trio.to_thread.run_sync(load_or_create_token, node.orchestrator.home)
    view = FleetView(node)
    slot = GuardSlot()
    config = Config()
    config.bind = [settings.listen]
    config.accesslog = None
    config.errorlog = _http_log()
    config.include_server_header = False
    config.graceful_timeout = 1.0
    async with trio.open_nursery() as nursery:
        nursery.start_soon(_follow_distributions, node.orchestrator.events, view.distributions)
        try:
            app = cast(Any, create_app(node, view, slot))  # starlette's ASGI types are not hypercorn's
            binds = await nursery.start(partial(serve, app, config))
        except* OSError as group:
            raise DashboardError(
                f"[dashboard] listen = {settings.listen!r}: cannot listen there: {group.exceptions[0]}",
                code="dashboard_listen",
            ) from None
        url = str(binds[0])
        port = int(url.rsplit(":", 1)[1])
        slot.guard = Guard(token, None if settings.remote else loopback_hosts(port))
        if settings.remote:
            log.warning(
                "The dashboard listens on %s, beyond loopback (allow_remote = true): every page needs the "
                "token, which travels in clear over plain HTTP; put TLS in front of it",
                url,
            )
        log.info("Serving the dashboard on %s/", url)
        task_status.started(f"{url}/")


def _http_log() -> logging.Logger:
    """Where hypercorn logs: its errors, not its "Running on ... (CTRL + C to quit)" (we say where)."""
    http = logging.getLogger("p2p_orchestrator.dashboard.http")
    if http.level == logging.NOTSET:
        http.setLevel(logging.WARNING)
    return http


async def _follow_distributions(bus: EventBus, distributions: Distributions) -> None:
    """Feed every ``distribution_progress`` event to ``distributions`` (the recent ones first)."""
    async with bus.subscribe(buffer=1024) as subscription:
        for event in bus.recent(1000):
            distributions.feed(event)
        async for event in subscription:
            distributions.feed(event)
