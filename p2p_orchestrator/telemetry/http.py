"""``serve_metrics``: ``GET /metrics`` over HTTP/1.1, with trio and h11.

The endpoint is for a Prometheus server to scrape, so it is small on purpose:
one request per connection, ``GET`` (or ``HEAD``) of ``/metrics`` only, a
request head of at most :data:`MAX_REQUEST_BYTES` that must arrive within
:data:`REQUEST_TIMEOUT` seconds, and at most :data:`MAX_CONNECTIONS`
connections at once (more wait in the listen backlog).  It binds loopback by
default (``[metrics] listen``): the figures say what runs on the node.

Each scrape asks ``collect()`` for a fresh report, so the figures are those of
the moment of the scrape.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any

import h11
import trio

from p2p_orchestrator.errors import ConfigError
from p2p_orchestrator.telemetry.prometheus import CONTENT_TYPE, render_report

if TYPE_CHECKING:
    from trio_typing import TaskStatus

__all__ = ["MAX_CONNECTIONS", "MAX_REQUEST_BYTES", "REQUEST_TIMEOUT", "serve_metrics"]

log = logging.getLogger("p2p_orchestrator.metrics")

MAX_REQUEST_BYTES = 16 * 1024
REQUEST_TIMEOUT = 10.0
MAX_CONNECTIONS = 16

Collect = Callable[[], Awaitable[Mapping[str, Any]]]
"""Returns a fresh ``get_metrics`` report."""


async def serve_metrics(
    listen: str,
    collect: Collect,
    *,
    task_status: TaskStatus[tuple[str, int]] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve ``/metrics`` on ``listen`` (``HOST:PORT``) until cancelled; ``task_status`` gets the bound address."""
    host, _, port = listen.rpartition(":")
    try:
        listeners = await trio.open_tcp_listeners(int(port), host=host.strip("[]"))
    except OSError as exc:
        raise ConfigError(
            f"[metrics] listen = {listen!r}: cannot listen there: {exc}", code="metrics_listen"
        ) from exc
    bound = listeners[0].socket.getsockname()
    log.info("Serving metrics on http://%s:%d/metrics", bound[0], bound[1])
    slots = trio.Semaphore(MAX_CONNECTIONS)

    async def handle(stream: trio.SocketStream) -> None:
        async with slots:
            await _serve_one(stream, collect)

    task_status.started((str(bound[0]), int(bound[1])))
    await trio.serve_listeners(handle, listeners)


async def _serve_one(stream: trio.SocketStream, collect: Collect) -> None:
    conn = h11.Connection(h11.SERVER, max_incomplete_event_size=MAX_REQUEST_BYTES)
    try:
        with trio.move_on_after(REQUEST_TIMEOUT) as timer:
            request = await _read_request(stream, conn)
        if timer.cancelled_caught or request is None:
            return
        status, headers, body = await _answer(request, collect)
        await _send(stream, conn, status, headers, b"" if request.method == b"HEAD" else body)
    except h11.RemoteProtocolError as exc:
        log.debug("a metrics client sent a bad request: %s", exc)
        if conn.our_state in (h11.IDLE, h11.SEND_RESPONSE):
            await _send(stream, conn, 400, [], b"bad request\n")
    except (trio.BrokenResourceError, trio.ClosedResourceError):
        pass  # the client went away
    finally:
        await stream.aclose()


async def _read_request(stream: trio.SocketStream, conn: h11.Connection) -> h11.Request | None:
    while True:
        event = conn.next_event()
        if event is h11.NEED_DATA:
            conn.receive_data(await stream.receive_some(4096))
            continue
        if isinstance(event, h11.Request):
            return event
        return None  # the client closed before a whole request


async def _answer(request: h11.Request, collect: Collect) -> tuple[int, list[tuple[str, str]], bytes]:
    path = request.target.split(b"?", 1)[0]
    if request.method not in (b"GET", b"HEAD"):
        return 405, [("Allow", "GET, HEAD")], b"only GET\n"
    if path != b"/metrics":
        return 404, [], b"the metrics are at /metrics\n"
    try:
        body = render_report(await collect())
    except Exception:
        log.exception("Collecting the metrics failed")
        return 500, [], b"collecting the metrics failed; see the node's log\n"
    return 200, [("Content-Type", CONTENT_TYPE)], body


async def _send(
    stream: trio.SocketStream, conn: h11.Connection, status: int, headers: list[tuple[str, str]], body: bytes
) -> None:
    head = [*headers, ("Content-Length", str(len(body))), ("Connection", "close")]
    if not any(name == "Content-Type" for name, _ in headers):
        head.append(("Content-Type", "text/plain; charset=utf-8"))
    data = conn.send(h11.Response(status_code=status, headers=head))
    data += conn.send(h11.Data(data=body)) or b""
    data += conn.send(h11.EndOfMessage()) or b""
    with trio.move_on_after(REQUEST_TIMEOUT):
        await stream.send_all(data)
