"""``ArchivePusher``: ``distribute_service``'s push -- one archive to many peers at once.

For one :class:`~p2p_orchestrator.orchestrator.distribution.DistributionRequest` it builds the archive's
manifest once (cached), holds the file open, and serves every target concurrently, at most
``request.concurrency`` at a time.  Each target gets its own stream and
:class:`~p2p_orchestrator.node.distribution._send.SendSession` (``offer``, purpose ``install``, with the
caller's ``force_reinstall``/``auto_start``); the target installs the archive and answers
``result``.

Per target, a failure is that target's outcome, never the distribution's:

==========================  ===============================================================
outcome                     when
==========================  ===============================================================
install result              the target installed it (``"transfer"`` added: bytes, attempts)
``bad_peer_id``             not a peer ID; ``bad_target``: this node itself
``peer_unreachable``        no known address, the dial failed, or it does not speak transfer
``permission_denied``       the target does not give this node the ``deploy`` permission
install errors              the target refused the archive (validation, version policy...)
``transfer_timeout``        the target stopped asking for chunks (``read_timeout``), retried
``install_timeout``         the target holds the archive but gave no result in time
``busy``                    the target's transfer limits stayed full, retried
``transfer_cut``            the stream kept breaking mid-transfer, retried
==========================  ===============================================================

A cut stream, a stall and ``busy``/``transfer_in_progress`` are retried, up to
``[node] transfer_attempts`` tries in all, after a short pause (0.1 s, then 0.4 s, ...): each
new stream resumes from what the target verified (its first ``have``), so only missing chunks
travel again.  A target that answered (installed or refused) is never retried.

Progress: each chunk sent is reported to the distribution's ``progress`` (``sent``), and so is
what each target holds (``received``): the chunks written to it and those its ``have``s list,
across tries -- in a swarm the target's reports of what it verified, from the origin or from
its peers (:mod:`p2p_orchestrator.node.distribution.swarm_member`), so its progress is not only the origin's
share.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any

import trio

from p2p_orchestrator._backoff import exponential_delay
from p2p_orchestrator.errors import Busy, OrchestratorError, RemoteError, ServiceDistributionError
from p2p_orchestrator.node.distribution._archives import ArchiveFile
from p2p_orchestrator.node.distribution._send import SendSession
from p2p_orchestrator.node.distribution._transfer_stream import TransferStream
from p2p_orchestrator.node.distribution.context import TransferContext
from p2p_orchestrator.orchestrator.distribution import (
    DistributionProgress,
    DistributionRequest,
    TargetOutcome,
)
from p2p_orchestrator.transfer import Bitfield, TransferOptions, TransferSender

__all__ = ["RETRYABLE", "ArchivePusher", "retry_delay"]

log = logging.getLogger("p2p_orchestrator.transfer")

RETRYABLE = frozenset({"transfer_cut", "transfer_timeout", "busy", "transfer_in_progress"})
"""Error codes after which a target is tried again (resuming from what it verified)."""


def retry_delay(first: float, attempt: int) -> float:
    """The pause before try number ``attempt`` (2, 3, ...): ``first``, then x4 each time, at most 2 s."""
    return exponential_delay(first, 4.0, attempt - 2, 2.0)


def exhausted(error: OrchestratorError, attempts: int) -> OrchestratorError:
    """``error`` (same type and code) saying it was the last of ``attempts`` tries."""
    return type(error)(f"{error.message} (gave up after {attempts} tries)", code=error.code)


@dataclass
class _Job:
    """One distribution in progress: what every target's task shares."""

    request: DistributionRequest
    archive: ArchiveFile
    options: TransferOptions
    limiter: trio.CapacityLimiter
    progress: DistributionProgress
    peers: tuple[str, ...] = ()
    outcomes: dict[str, TargetOutcome] = field(default_factory=dict)
    held: dict[str, _Held] = field(default_factory=dict)
    """Per target: what it holds as far as the origin knows, across tries (for ``progress``)."""

    def delivered(self, target: str, chunks: Bitfield) -> None:
        """``target`` holds ``chunks`` (one try's figures): report the bytes it holds in all."""
        held = self.held.get(target)
        if held is None:
            held = self.held[target] = _Held(Bitfield(chunks.size))
        added = held.chunks.merge(chunks)
        if added:
            manifest = self.archive.manifest
            held.size += sum(manifest.chunk_length(index) for index in added)
            self.progress.received(target, held.size)


@dataclass
class _Held:
    """The chunks one target holds, as far as the origin knows, and their bytes."""

    chunks: Bitfield
    size: int = 0


class ArchivePusher:
    """Pushes archives for one node's ``distribute_service``; see the module docstring.

    Hooks for variants (the swarm's :class:`~p2p_orchestrator.node.distribution.swarm_origin.SwarmPusher`):
    :attr:`chunk_size`, :meth:`offer_peers`, :meth:`concurrency`.
    """

    chunk_size: int | None = None
    """Chunk size of the manifests sent (``None``: the node's, ``TransferContext.chunk_size``)."""

    def __init__(self, transfers: TransferContext) -> None:
        self._transfers = transfers

    def offer_peers(self, request: DistributionRequest) -> tuple[str, ...]:
        """The peers listed in every offer (none: a plain push)."""
        return ()

    def concurrency(self, request: DistributionRequest) -> int:
        """Targets served at once."""
        return request.concurrency

    async def distribute(
        self, request: DistributionRequest, progress: DistributionProgress
    ) -> dict[str, TargetOutcome]:
        """Push to every target of ``request``; one outcome each (never raises for a target)."""
        manifest = await self._transfers.manifest_of(request.archive_path, self.chunk_size)
        if manifest.archive_hash != request.archive_hash:
            raise ServiceDistributionError(
                f"the cached archive {request.archive_path} has sha256 {manifest.archive_hash}, "
                f"not {request.archive_hash}: the store's cache is damaged",
                code="source_changed",
            )
        options = TransferOptions(force_reinstall=request.force_reinstall, auto_start=request.auto_start)
        with ArchiveFile(request.archive_path, manifest) as archive:
            limiter = trio.CapacityLimiter(self.concurrency(request))
            job = _Job(request, archive, options, limiter, progress, peers=self.offer_peers(request))
            async with trio.open_nursery() as nursery:
                for target in request.targets:
                    nursery.start_soon(self._one, job, target)
        return job.outcomes

    async def _one(self, job: _Job, target: str) -> None:
        outcome: TargetOutcome
        try:
            async with job.limiter:
                outcome = await self._push(job, target)
        except OrchestratorError as exc:
            outcome = exc
        except Exception as exc:  # a bug here must cost one target, not the distribution
            log.exception("Pushing %s to %s failed unexpectedly", job.request.service_name, target)
            outcome = RemoteError(f"{type(exc).__name__}: {exc}", code="internal_error")
        job.outcomes[target] = outcome
        job.progress.finished(target, outcome)

    async def _push(self, job: _Job, target: str) -> TargetOutcome:
        transfers = self._transfers
        transfers.check_target(target)
        settings = transfers.settings
        name = job.request.service_name
        tries: list[dict[str, Any]] = []
        started = time.monotonic()
        last: OrchestratorError | None = None
        for attempt in range(1, settings.attempts + 1):
            if attempt > 1:
                await trio.sleep(retry_delay(settings.retry_delay, attempt))
            try:
                stream = await transfers.open_stream(target)
            except OrchestratorError as exc:
                if last is None:
                    raise
                # reached before, then not again (a peer that stalled a stream may refuse the
                # next): a try that failed, with the earlier failure as the reason to report
                tries.append({"bytes_sent": 0, "receiver_had": 0, "outcome": exc.code})
                log.info("Pushing %s to %s: try %d could not open a stream: %s", name, target, attempt, exc)
                continue
            session = self._session(job, stream, target)
            try:
                result = await session.run()
            except OrchestratorError as exc:
                tries.append(_try(session, exc.code))
                await stream.reset()
                if exc.code not in RETRYABLE:
                    return exc
                log.info("Pushing %s to %s: try %d failed: %s", name, target, attempt, exc)
                last = exc
                continue
            await stream.close()
            if result.ok and result.result is not None:
                tries.append(_try(session, "ok"))
                return _with_transfer(result.result, tries, time.monotonic() - started)
            error = result.error or ServiceDistributionError("the target refused the archive")
            tries.append(_try(session, error.code))
            if not isinstance(error, Busy) and error.code not in RETRYABLE:
                return error
            log.info("Pushing %s to %s: try %d refused: %s", name, target, attempt, error)
            last = error
        assert last is not None
        return exhausted(last, settings.attempts)

    def _session(self, job: _Job, stream: TransferStream, target: str) -> SendSession:
        hook = self._transfers.hooks.chunk_sent
        settings = self._transfers.settings

        async def on_chunk(size: int) -> None:
            job.progress.sent(target, size)
            if hook is not None and hook(target, session.bytes_sent):
                log.info("Test hook: cutting the transfer stream to %s", target)
                await stream.reset()

        sender = TransferSender(
            job.archive.manifest,
            job.archive.read_chunk,
            purpose=job.request.purpose,
            options=job.options,
            peers=job.peers,
            release=job.request.release,
        )
        session = SendSession(
            stream,
            sender,
            read_timeout=settings.read_timeout,
            install_timeout=settings.install_timeout,
            on_chunk=on_chunk,
            on_delivered=lambda chunks: job.delivered(target, chunks),
        )
        return session


def _try(session: SendSession, outcome: str) -> dict[str, Any]:
    return {"bytes_sent": session.bytes_sent, "receiver_had": session.receiver_had, "outcome": outcome}


def _with_transfer(result: dict[str, Any], tries: list[dict[str, Any]], seconds: float) -> dict[str, Any]:
    """The target's install result, with what the transfer took under ``"transfer"``."""
    result = dict(result)
    received = result.pop("received", None)
    transfer: dict[str, Any] = {
        "bytes_sent": sum(t["bytes_sent"] for t in tries),
        "attempts": len(tries),
        "tries": tries,
        "seconds": round(seconds, 4),
    }
    if isinstance(received, dict):
        transfer["receiver"] = received
    return {**result, "transfer": transfer}
