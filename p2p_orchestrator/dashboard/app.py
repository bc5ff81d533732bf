"""The dashboard's HTTP routes (starlette): the page, its assets, its JSON, the live feed, actions.

==================================  =======  =================================================
path                                method   answer
==================================  =======  =================================================
``/``                               GET      the page (``static/index.html``)
``/static/<name>``                  GET      its CSS and JavaScript
``/api/info``                       GET      this node, whether reading needs the token
``/api/fleet``                      GET      :meth:`FleetView.fleet`
``/api/nodes/<peer>``               GET      :meth:`FleetView.node`
``/api/nodes/<peer>/logs/<name>``   GET      :meth:`FleetView.logs`
``/api/services/<name>``            GET      :meth:`FleetView.service`
``/api/operations``                 GET      :meth:`FleetView.operations`
``/api/events``                     GET      :meth:`FleetView.events`
``/api/stream``                     GET      the live feed (:mod:`.feed`), at most :data:`MAX_STREAMS` at once
``/api/token``                      POST     ``{"ok": true}`` if the token is right (the page checks it)
``/api/actions``                    POST     :mod:`.actions`
==================================  =======  =================================================

Every request passes :class:`~.guard.Guard` first (the page and its assets, which hold no data,
only its ``Host`` check: a browser loads them before it has the token).  Refusals are JSON, ``{"error": {"code",
"message"}}``, with the status of :data:`~.errors.STATUS_OF` (an operation's own refusal: 403
for ``permission_denied``, 404 for ``not_installed``, else 409).  Every answer forbids framing
and scripts from elsewhere (``Content-Security-Policy``) and is never cached.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from importlib import resources
from typing import TYPE_CHECKING, Any

import trio
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from p2p_orchestrator.dashboard.actions import ACTIONS, parse_action, run_action
from p2p_orchestrator.dashboard.errors import DashboardError
from p2p_orchestrator.dashboard.feed import event_stream, sse_message
from p2p_orchestrator.dashboard.fleet import FleetView, short_peer_id
from p2p_orchestrator.dashboard.guard import Guard
from p2p_orchestrator.errors import OrchestratorError

if TYPE_CHECKING:
    from p2p_orchestrator.node import Node

__all__ = ["ASSETS", "GuardSlot", "create_app"]

log = logging.getLogger("p2p_orchestrator.dashboard")

ASSETS = {
    "index.html": "text/html; charset=utf-8",
    "dom.js": "text/javascript; charset=utf-8",
    "pages.js": "text/javascript; charset=utf-8",
    "app.js": "text/javascript; charset=utf-8",
    "style.css": "text/css; charset=utf-8",
    "favicon.svg": "image/svg+xml",
}
"""The files of ``static/``, and their media types: nothing else is served."""

MAX_BODY = 64 * 1024
MAX_STREAMS = 32
"""Live feeds open at once (each holds a subscription to the node's events)."""
HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}
_OPERATION_STATUS = {"permission_denied": 403, "not_installed": 404}


@dataclass
class GuardSlot:
    """The server's :class:`Guard`, set once the port is bound (it names the port)."""

    guard: Guard | None = field(default=None)

    def get(self) -> Guard:
        if self.guard is None:
            raise DashboardError("the dashboard is starting", code="starting")
        return self.guard


def _json(data: Any, status: int = 200) -> Response:
    body = json.dumps(data, default=_portable, separators=(",", ":"))
    return Response(body, status_code=status, media_type="application/json", headers=HEADERS)


def _portable(value: Any) -> Any:
    if isinstance(value, bytes | bytearray):
        return f"<{len(value)} bytes>"
    return repr(value)


def _refusal(exc: OrchestratorError) -> Response:
    status = exc.status if isinstance(exc, DashboardError) else _OPERATION_STATUS.get(exc.code, 409)
    return _json({"error": {"code": exc.code, "message": exc.message}}, status)


def create_app(node: Node, view: FleetView, slot: GuardSlot) -> Starlette:
    """The dashboard's ASGI application for ``node``."""
    static = resources.files("p2p_orchestrator.dashboard").joinpath("static")
    assets = {name: (static.joinpath(name).read_bytes(), kind) for name, kind in ASSETS.items()}

    def guarded(
        check: Callable[[Guard, Request], None], work: Callable[[Request], Awaitable[Response]]
    ) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            try:
                check(slot.get(), request)
                return await work(request)
            except OrchestratorError as exc:
                return _refusal(exc)

        return endpoint

    def read(work: Callable[[Request], Awaitable[Response]]) -> Callable[[Request], Awaitable[Response]]:
        """Data: the token too where the guard wants it for reading."""
        return guarded(lambda guard, request: guard.check_read(request.headers), work)

    def public(work: Callable[[Request], Awaitable[Response]]) -> Callable[[Request], Awaitable[Response]]:
        """The page and its assets, which hold no data: a browser loads them before it has a token."""
        return guarded(lambda guard, request: guard.check_host(request.headers), work)

    def data(fetch: Callable[[Request], Awaitable[Any]]) -> Callable[[Request], Awaitable[Response]]:
        async def work(request: Request) -> Response:
            return _json(await fetch(request))

        return read(work)

    async def page(request: Request) -> Response:
        return _asset("index.html")

    async def asset(request: Request) -> Response:
        name = request.path_params["name"]
        if name not in assets:
            raise DashboardError(f"no asset {name!r}", code="not_found")
        return _asset(name)

    def _asset(name: str) -> Response:
        body, kind = assets[name]
        return Response(body, media_type=kind, headers=HEADERS)

    async def info(request: Request) -> dict[str, Any]:
        guard = slot.get()
        return {
            "peer_id": node.peer_id,
            "short": short_peer_id(node.peer_id),
            "read_needs_token": guard.remote,
            "actions": list(ACTIONS),
        }

    streams = trio.Semaphore(MAX_STREAMS)

    async def stream(request: Request) -> Response:
        if streams.value == 0:
            raise DashboardError(f"{MAX_STREAMS} live feeds are open already", code="busy")

        async def feed() -> AsyncIterator[str]:
            # taken here, not before the response: a feed whose client left before it began never
            # runs its body, and would never give its place back
            try:
                streams.acquire_nowait()
            except trio.WouldBlock:
                yield "retry: 5000\n" + sse_message("busy", {"limit": MAX_STREAMS})
                return
            try:
                async for message in event_stream(node.orchestrator.events):
                    yield message
            finally:
                streams.release()

        return StreamingResponse(
            feed(), media_type="text/event-stream", headers={**HEADERS, "X-Accel-Buffering": "no"}
        )

    async def act(request: Request) -> Response:
        try:
            slot.get().check_action(request.method, request.headers)
            body = await _body(request)
            if request.url.path == "/api/token":
                return _json({"ok": True})
            action = parse_action(body)
            try:
                result = await run_action(node, action)
            finally:
                view.forget(action.peer)
        except OrchestratorError as exc:
            return _refusal(exc)
        return _json({"ok": True, "result": result})

    routes = [
        Route("/", public(page)),
        Route("/static/{name}", public(asset)),
        Route("/api/info", data(info)),
        Route("/api/fleet", data(lambda r: view.fleet())),
        Route("/api/nodes/{peer}", data(lambda r: view.node(r.path_params["peer"]))),
        Route(
            "/api/nodes/{peer}/logs/{service}",
            data(lambda r: view.logs(r.path_params["peer"], r.path_params["service"])),
        ),
        Route("/api/services/{name}", data(lambda r: view.service(r.path_params["name"]))),
        Route("/api/operations", data(lambda r: view.operations())),
        Route("/api/events", data(lambda r: view.events())),
        Route("/api/stream", read(stream)),
        Route("/api/token", act, methods=["GET", "POST", "PUT", "PATCH", "DELETE"]),
        Route("/api/actions", act, methods=["GET", "POST", "PUT", "PATCH", "DELETE"]),
    ]
    return Starlette(routes=routes, exception_handlers={404: _not_found, 405: _not_found})


async def _not_found(request: Request, exc: Exception) -> Response:
    """A path no route serves (or a method it does not take): the same JSON refusals."""
    return _refusal(DashboardError(f"nothing at {request.url.path}", code="not_found"))


async def _body(request: Request) -> Any:
    """The request's JSON body, at most :data:`MAX_BODY` bytes (``bad_request`` otherwise)."""
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY:
            raise DashboardError(f"a body of more than {MAX_BODY} bytes", code="bad_request")
        chunks.append(chunk)
    raw = b"".join(chunks)
    if not raw:
        return {}
    try:
        return json.loads(raw)
    except (UnicodeDecodeError, ValueError):
        raise DashboardError("the body is not JSON", code="bad_request") from None
