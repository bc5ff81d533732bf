"""``ArchiveFetcher``: ``fetch_service``'s pull -- a peer's current archive of a service, installed here.

The fetcher opens a transfer stream to the peer and sends ``fetch {service}``; the peer checks
that this node has the ``read`` permission there and answers ``offer`` (purpose ``fetch``) or
``abort`` with its refusal (``PermissionDenied``, ``not_installed``...), which is raised here as
its own type.  The offered archive is received by a
:class:`~p2p_orchestrator.node.distribution._receive.ReceiveSession` into this node's partial transfers --
an archive this node already holds (its store's cache, or a finished partial) is not sent
again, and a half-received one is completed -- then installed by the caller's ``install``
(``install_service``), and the install's result (or error) is the ``result`` the peer gets.

A transfer cut mid-way, or stalled, is retried like a push (``[node] transfer_attempts``), each
try resuming from the chunks already verified here.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import trio

from p2p_orchestrator.errors import Busy, OrchestratorError, ProtocolError, ServiceDistributionError
from p2p_orchestrator.node.distribution._receive import ReceiveSession, SessionOutcome
from p2p_orchestrator.node.distribution._transfer_stream import TransferStream
from p2p_orchestrator.node.distribution.context import TransferContext
from p2p_orchestrator.node.distribution.pusher import RETRYABLE, exhausted, retry_delay
from p2p_orchestrator.node.host._read_deadline import MessageDeadline
from p2p_orchestrator.node.host._stream import StreamBroken
from p2p_orchestrator.orchestrator.distribution import InstallArchive
from p2p_orchestrator.transfer import Abort, Fetch, Offer, Result, TransferReceiver

__all__ = ["ArchiveFetcher"]

log = logging.getLogger("p2p_orchestrator.transfer")


class ArchiveFetcher:
    """Fetches archives for one node's ``fetch_service``; see the module docstring."""

    def __init__(self, transfers: TransferContext) -> None:
        self._transfers = transfers

    async def fetch(self, service_name: str, from_peer: str, install: InstallArchive) -> dict[str, Any]:
        """Fetch and install; returns ``install``'s result with ``"transfer"``, or raises its error."""
        transfers = self._transfers
        transfers.check_target(from_peer)
        settings = transfers.settings
        started = time.monotonic()
        tries: list[dict[str, Any]] = []
        last: OrchestratorError | None = None
        for attempt in range(1, settings.attempts + 1):
            if attempt > 1:
                await trio.sleep(retry_delay(settings.retry_delay, attempt))
            stream = await transfers.open_stream(from_peer)
            try:
                outcome, received = await self._try(stream, service_name, install)
            finally:
                await stream.reset()  # a no-op once the session closed it cleanly
            if isinstance(outcome, OrchestratorError):
                tries.append({"bytes_received": received, "outcome": outcome.code})
                if not isinstance(outcome, Busy) and outcome.code not in RETRYABLE:
                    raise outcome
                log.info("Fetching %s from %s: try %d failed: %s", service_name, from_peer, attempt, outcome)
                last = outcome
                continue
            tries.append({"bytes_received": received, "outcome": "ok"})
            transfer = {
                "bytes_received": sum(t["bytes_received"] for t in tries),
                "attempts": len(tries),
                "tries": tries,
                "seconds": round(time.monotonic() - started, 4),
            }
            return {**outcome, "transfer": transfer}
        assert last is not None
        raise exhausted(last, settings.attempts)

    async def _try(
        self, stream: TransferStream, service_name: str, install: InstallArchive
    ) -> tuple[SessionOutcome, int]:
        """One stream: ask, receive, install.  Returns the outcome and the bytes received."""
        transfers = self._transfers
        try:
            await stream.send(Fetch(service=service_name))
            offer = await self._offer(stream)
        except StreamBroken as exc:
            return _cut(stream.peer_id, str(exc)), 0
        except OrchestratorError as exc:
            return exc, 0
        try:
            manifest = offer.manifest
            transfers.check_offered_release(
                offer.release, archive_sha256=manifest.archive_hash, archive_size=manifest.total_size
            )
            partial = await transfers.open_partial(manifest)
        except OrchestratorError as exc:
            await stream.send_last(Result.failure(exc))
            return exc, 0
        session = ReceiveSession(
            TransferReceiver(partial),
            complete=lambda path: install(path, offer.release),
            read_timeout=transfers.settings.read_timeout,
            cut_hook=transfers.hooks.chunk_stored,
        )
        outcome: SessionOutcome = _cut(stream.peer_id, "cancelled")
        try:
            outcome = await session.run(stream, offer)
        finally:
            with trio.CancelScope(shield=True):
                await transfers.release_partial(partial, discard=session.partial_spent)
        return outcome, session.bytes_received

    async def _offer(self, stream: TransferStream) -> Offer:
        """The peer's answer to our fetch: its offer, or its refusal raised."""
        seconds = self._transfers.settings.read_timeout
        deadline = MessageDeadline(seconds)
        with deadline.reading() as scope:
            message = await stream.receive()
        if scope.cancelled_caught:
            raise ServiceDistributionError(
                f"{stream.peer_id} did not answer the fetch within {seconds:g} s", code="transfer_timeout"
            )
        if message is None:
            raise _cut(stream.peer_id, "it closed the stream")
        if isinstance(message, Abort):
            raise message.error
        if not isinstance(message, Offer) or message.purpose != "fetch":
            error = ProtocolError(
                f"{stream.peer_id} answered a fetch with {message.TYPE!r}, not an offer to fetch",
                code="unexpected_message",
            )
            await stream.send_last(Result.failure(error))
            raise error
        return message


def _cut(peer: str, why: str) -> ServiceDistributionError:
    return ServiceDistributionError(f"the fetch stream from {peer} ended early ({why})", code="transfer_cut")
