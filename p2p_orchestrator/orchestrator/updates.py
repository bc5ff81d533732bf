"""``UpdateFollower``: a node that follows services installs their newer trusted releases itself.

``[updates] follow = ["web"]`` makes this node watch for releases of ``web``.  It learns of
them two ways:

* **announcements**: a node that publishes a release (``p2p-orchestrator publish``), or that
  has just installed one as a follower, calls ``orchestrator/announce_release`` on each peer it
  is connected to with the release statement (:meth:`UpdateFollower.announced`);
* **polling**: every ``[updates] check_interval`` seconds it asks its connected peers
  ``orchestrator/list_releases`` (the statements of their current versions), and it asks a peer
  with a role here as soon as it connects, so a node that was offline or not connected when a
  release was announced catches up.

Every statement it hears is untrusted input until :meth:`TrustPolicy.verify
<p2p_orchestrator.release.TrustPolicy.verify>` says otherwise, and the cheap checks come first:
announcements are rate limited per peer (:class:`PeerRateLimit`, before a byte is parsed), the
statement is parsed within its size bound, and only one for a followed service that is newer
than anything known, not a version that failed here before and not below the release floor
has its signature checked.  What is kept is bounded: per followed service (at most
:data:`~p2p_orchestrator.config.MAX_FOLLOWED`), the newest trusted statement, up to
:data:`MAX_HOLDERS` peers that hold it, the last attempt and up to :data:`MAX_FAILED` failed
versions.

When the newest trusted release of a followed service is newer than its installed version (or
the service is not installed at all) and the local time is within ``[updates] window``, the
follower gets it one of two ways:

* **delivered**: a publisher announces with ``deliver``; a follower that wants the release
  answers ``delivery: true`` and waits (up to :data:`DELIVERY_WAIT` seconds for it to begin)
  while the publisher sends it to every such follower at once with the swarm
  (``distribute_service``'s ``strategy="swarm"``, offers of purpose ``update``): the followers
  pass chunks to each other and the publisher's uplink carries the archive about once.  A
  delivery is accepted from any peer with a role here, but only of the very statement the
  follower chose (:meth:`UpdateFollower.delivery`): it is the follower's choice that installs,
  not the sender's permission to deploy;
* **fetched**: otherwise (an announcement without delivery, a poll, a delivery that did not come
  or failed) from one of its holders, chosen at random (so a publisher does not serve every
  follower), with the fetch path (``fetch_service``'s): the holder serves it only if this node
  may read there, and the statement it sends is verified before a byte is written and must be
  the very statement the follower chose.  The install is ``install_service``'s own: an upgrade
that does not start is reverted at once, and one that fails within ``revert_window`` is reverted
by :mod:`~p2p_orchestrator.orchestrator.upgrades` (``service_reverted``).  Either way, and when
the install refuses the archive itself, the follower publishes ``update_failed`` with the reason
and never tries that version again (kept in ``<home>/updates.json`` across restarts); a newer
release is tried.  A statement that no longer holds when it is installed (it expired while the
update waited for its window, its publisher was removed) is forgotten instead (outcome
``refused``): the version is not at fault, and a fresh statement of it is accepted again.
A successful update is announced on to the connected peers, so a release spreads beyond the
publisher's neighbours.
"""

from __future__ import annotations

import collections
import contextlib
import datetime
import json
import logging
import random
import time
from collections.abc import Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import trio

from p2p_orchestrator._clock import utc_now_iso
from p2p_orchestrator._files import write_atomically
from p2p_orchestrator._replies import ITEM_BYTES, REPLY_BYTES
from p2p_orchestrator.archive import Version
from p2p_orchestrator.config import UpdateSettings
from p2p_orchestrator.errors import (
    Busy,
    OrchestratorError,
    ReleaseError,
    ServiceCallError,
    ServiceDistributionError,
    ServiceInstallationError,
)
from p2p_orchestrator.orchestrator.distribution import Distribution
from p2p_orchestrator.orchestrator.release_gate import ReleaseGate
from p2p_orchestrator.orchestrator.shared import Part, Shared
from p2p_orchestrator.release import ReleaseStatement

if TYPE_CHECKING:
    from pathlib import Path

    from trio_typing import TaskStatus

__all__ = [
    "ANNOUNCE_BURST",
    "ANNOUNCE_RATE",
    "DELIVERY_WAIT",
    "MAX_FAILED",
    "MAX_HOLDERS",
    "MAX_POLLED",
    "UPDATES_FILE",
    "PeerRateLimit",
    "UpdateFollower",
    "UpdateNetwork",
]

log = logging.getLogger("p2p_orchestrator")

UPDATES_FILE = "updates.json"
"""In the node's home: the versions that failed here, and each followed service's last attempt."""
MAX_HOLDERS = 32
"""Peers remembered as holding the newest release of one service (the oldest heard is forgotten)."""
MAX_FAILED = 32
"""Failed versions remembered per service (the oldest is forgotten; only newer ones are tried anyway)."""
MAX_POLLED = 32
"""Peers asked ``list_releases`` in one round (a random choice when more are connected)."""
POLL_CONCURRENCY = 4
"""Peers asked at once in a round."""
ANNOUNCE_TIMEOUT = 10.0
"""Seconds a round of announcements (after a publish or an update) may take in all."""
ANNOUNCE_RATE = 1.0
"""Announcements per second one peer may make in the long run..."""
ANNOUNCE_BURST = 10
"""...and at once; more are refused ``rate_limited`` before they are read."""
MAX_RATE_PEERS = 1024
"""Peers whose announcement budget is kept (the least recently seen is forgotten)."""
DELIVERY_WAIT = 30.0
"""Seconds a follower that agreed to a delivery waits for it to begin before it fetches instead."""
_MAX_REASON = 500


@dataclass(frozen=True)
class UpdateNetwork:
    """What the follower needs of the network: who is connected, and a call to one of them."""

    peers: Callable[[], list[str]]
    call_peer: Callable[[str, str, dict[str, Any]], Any]
    """``(peer_id, method, params) -> awaitable result``."""


class PeerRateLimit:
    """A token bucket per peer, ``rate`` tokens a second up to ``burst``, for at most ``max_peers``.

    The table is an LRU: a flood of new peer IDs forgets the least recently seen ones (which
    start again with a full bucket), so it costs bounded memory whatever the number of peers.
    """

    def __init__(
        self,
        *,
        rate: float = ANNOUNCE_RATE,
        burst: int = ANNOUNCE_BURST,
        max_peers: int = MAX_RATE_PEERS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._rate, self._burst, self._max_peers, self._clock = rate, burst, max_peers, clock
        self._buckets: collections.OrderedDict[str, tuple[float, float]] = collections.OrderedDict()
        self.refused = 0
        """Calls refused since this limiter was made."""

    def __len__(self) -> int:
        return len(self._buckets)

    def take(self, peer: str) -> bool:
        """Spend one token of ``peer``'s bucket; ``False`` (and counted) when it is empty."""
        now = self._clock()
        tokens, then = self._buckets.pop(peer, (float(self._burst), now))
        tokens = min(float(self._burst), tokens + (now - then) * self._rate)
        allowed = tokens >= 1.0
        self._buckets[peer] = (tokens - 1.0 if allowed else tokens, now)
        while len(self._buckets) > self._max_peers:
            self._buckets.popitem(last=False)
        if not allowed:
            self.refused += 1
        return allowed


@dataclass
class _Followed:
    """What the follower knows of one followed service."""

    name: str
    newest: ReleaseStatement | None = None
    newest_bytes: bytes = b""
    source: str | None = None
    """Who told this node of ``newest`` first (a peer ID, or ``"local"``)."""
    holders: collections.OrderedDict[str, None] = field(default_factory=collections.OrderedDict)
    failed: dict[str, str] = field(default_factory=dict)
    """``{version: reason}``, oldest first."""
    last_attempt: dict[str, Any] | None = None
    trial_until: float | None = None
    """While an installed update may still be reverted: until this ``trio.current_time()``."""
    waiting: str | None = None
    """The version ``update_waiting`` was published for (once per version)."""
    delivery_until: float | None = None
    """A delivery of ``newest`` was agreed: no fetch before this ``trio.current_time()``..."""
    deliveries: int = 0
    """...nor while one is being received."""
    installing: bool = False
    """An update of this service is being fetched or installed (one at a time)."""

    def awaits_delivery(self) -> bool:
        if self.deliveries:
            return True
        return self.delivery_until is not None and trio.current_time() < self.delivery_until

    def add_holder(self, peer: str | None) -> None:
        if peer is None:
            return
        self.holders.pop(peer, None)
        self.holders[peer] = None
        while len(self.holders) > MAX_HOLDERS:
            self.holders.popitem(last=False)


def _seconds_until(now: datetime.time, then: datetime.time) -> float:
    """Seconds from local time ``now`` to the next ``then`` (a day, when they are equal)."""

    def seconds(moment: datetime.time) -> float:
        return moment.hour * 3600 + moment.minute * 60 + moment.second + moment.microsecond / 1e6

    day = 24 * 3600.0
    return (seconds(then) - seconds(now)) % day or day


class UpdateFollower(Part):
    """Follows the services of ``[updates] follow``; see the module docstring."""

    def __init__(
        self,
        shared: Shared,
        *,
        distribution: Distribution,
        releases: ReleaseGate,
        network: Callable[[], UpdateNetwork | None],
        local_time: Callable[[], datetime.time] = lambda: datetime.datetime.now().time(),
    ) -> None:
        super().__init__(shared)
        self._distribution = distribution
        self._releases = releases
        self._network = network
        self._local_time = local_time
        self._path = self._catalog.home / UPDATES_FILE
        self._followed = {name: _Followed(name) for name in self.settings.follow}
        self._limit = PeerRateLimit()
        self._wake = trio.Event()
        self._fresh: collections.OrderedDict[str, None] = collections.OrderedDict()
        """Peers that connected since the last round: asked at once, not at the next interval."""
        self._last_check: str | None = None
        self._background: trio.Nursery | None = None
        """Where announcements after an update run (the loop's nursery, while it runs)."""
        self._load()

    @property
    def settings(self) -> UpdateSettings:
        return self._catalog.config.updates

    @property
    def rate_limit(self) -> PeerRateLimit:
        """The per-peer budget of ``announce_release``."""
        return self._limit

    # -- what peers tell us -------------------------------------------------------------------

    def announced(
        self, release: bytes, *, budget: str | None, holder: str | None, deliver: bool = False
    ) -> dict[str, Any]:
        """``announce_release``, charged to ``budget`` and heard from ``holder``.

        ``budget`` is whose rate limit it spends: a peer ID, ``"service:<name>"`` for a service
        of this node, ``None`` for this node's operator (not limited).  ``holder`` is the peer
        that announced it, taken to hold the release (``None``: nobody to fetch it from yet).
        ``deliver``: the holder offers to send it; when this node wants it and is not already
        getting it, the answer says ``"delivery": true`` and the follower waits
        :data:`DELIVERY_WAIT` seconds for the delivery to begin before fetching it itself.
        Returns ``{"accepted": bool, "reason": str, "delivery": bool}``; raises ``Busy`` (``rate_limited``) when the
        budget is spent (:data:`ANNOUNCE_RATE`, bursts of :data:`ANNOUNCE_BURST`), and the
        :class:`~p2p_orchestrator.errors.ReleaseError` of a statement that is malformed or not
        trusted (when it would otherwise have been kept).
        """
        if budget is not None and not self._limit.take(budget):
            raise Busy(
                f"announcements from {budget} come faster than {ANNOUNCE_RATE:g} a second "
                f"(bursts of {ANNOUNCE_BURST}); try again later",
                code="rate_limited",
            )
        reason = self._consider(release, holder)
        delivery = False
        if deliver and holder is not None and reason in ("accepted", "known") and self._in_window():
            followed = self._wanting(release)
            if followed is not None and not followed.installing:
                followed.delivery_until = trio.current_time() + DELIVERY_WAIT
                delivery = True
        return {"accepted": reason == "accepted", "reason": reason, "delivery": delivery}

    def _wanting(self, release: bytes) -> _Followed | None:
        """The followed service whose newest trusted release is ``release``, if it still needs it."""
        for followed in self._followed.values():
            if followed.newest is not None and followed.newest_bytes == release:
                version = followed.newest.version
                record = self._store.records.get(followed.name)
                if version in followed.failed or (
                    record is not None and Version.parse(record.current.version) >= Version.parse(version)
                ):
                    return None
                return followed
        return None

    @contextlib.contextmanager
    def delivery(self, release: bytes | None, *, archive_sha256: str) -> Iterator[None]:
        """While a peer sends this node ``release``'s archive as an update (an offer of purpose ``update``).

        Refused (``update_not_expected``, before a byte is written) unless ``release`` is the newest
        trusted release of a followed service that this node still needs, names this archive, and
        is not being fetched already.  Inside, the follower does not fetch it itself.
        """
        followed = self._wanting(release) if release is not None else None
        if followed is None or followed.installing or followed.newest is None or not self._in_window():
            raise ServiceDistributionError(
                "this node did not ask for this release: it is not the newest trusted release of a "
                "service it follows and still needs, it is getting it already, or it is outside its "
                "update window",
                code="update_not_expected",
            )
        if followed.newest.archive_sha256 != archive_sha256:
            raise ServiceDistributionError(
                f"the offered archive is not the one the release of {followed.name} names",
                code="release_mismatch",
            )
        followed.deliveries += 1
        try:
            yield
        finally:
            followed.deliveries -= 1
            if not followed.deliveries:
                followed.delivery_until = None
                self._wake.set()  # fetch it after all, if the delivery did not install it

    async def install_delivered(self, path: Path, release: bytes, *, peer: str) -> dict[str, Any]:
        """Install a delivered update (inside :meth:`delivery`): as a fetched one, health gate included."""
        followed = self._wanting(release)
        if followed is None or followed.installing or followed.newest is None:
            raise ServiceDistributionError(
                "this node no longer needs this release (installed, failed, or a newer one is known)",
                code="update_not_expected",
            )
        statement = followed.newest

        async def install() -> dict[str, Any]:
            return await self._distribution.install_update(path, release)

        outcome = await self._update(followed, statement, release, peer, install)
        if isinstance(outcome, OrchestratorError):
            raise outcome
        return outcome

    def _consider(self, release: bytes, peer: str | None) -> str:
        """Keep ``release`` if it is a newer trusted release of a followed service; why (not)."""
        statement = ReleaseStatement.from_bytes(release)  # bounded; bad_release
        followed = self._followed.get(statement.name)
        if followed is None:
            return "not_followed"
        version = Version.parse(statement.version)
        if followed.newest is not None:
            newest = Version.parse(followed.newest.version)
            if version < newest:
                return "older_than_known"
            if version == newest:
                if release != followed.newest_bytes:
                    return "conflicting_statement"  # the first trusted one stays
                followed.add_holder(peer)
                return "known"
        record = self._store.records.get(statement.name)
        if record is not None and version <= Version.parse(record.current.version):
            return "not_newer"
        floor = self._store.release_floor(statement.name)
        if floor is not None and version < Version.parse(floor):
            return "below_release_floor"
        if statement.version in followed.failed:
            return "failed_before"
        self._releases.policy.verify(statement, now=time.time())  # raises if untrusted
        followed.newest, followed.newest_bytes, followed.source = statement, bytes(release), peer or "local"
        followed.holders.clear()
        followed.add_holder(peer)
        log.info("Release %s is available (from %s)", statement.describe(), peer or "this node")
        self._wake.set()
        return "accepted"

    # -- the loop -------------------------------------------------------------------------------

    async def run(self) -> None:
        """Follow the services until cancelled: poll every ``check_interval``, install when woken.

        A node runs it in its nursery while it is linked; it returns at once when nothing is
        followed.
        """
        if not self._followed:
            return
        async with trio.open_nursery() as nursery:
            await nursery.start(self._watch_reverts)
            self._background = nursery
            next_poll = trio.current_time()
            while True:
                self._wake = trio.Event()
                try:
                    if trio.current_time() >= next_poll:
                        next_poll = trio.current_time() + self.settings.check_interval
                        self._fresh.clear()
                        await self.poll()
                    elif self._fresh:
                        fresh, self._fresh = list(self._fresh), collections.OrderedDict()
                        await self.poll(fresh)
                    await self.apply_all()
                except OrchestratorError as exc:  # each step handles its own; this is a backstop
                    log.warning("Following updates: %s", exc)
                except Exception:  # a bug here must not take the node down: it waits for the next round
                    log.exception("Following updates failed; trying again at the next round")
                with trio.move_on_at(min(next_poll, self._next_decision())):
                    await self._wake.wait()

    def _next_decision(self) -> float:
        """When to look again without being woken: a trial's end, or the window's start."""
        ends = [f.trial_until for f in self._followed.values() if f.trial_until is not None]
        ends += [f.delivery_until for f in self._followed.values() if f.delivery_until is not None]
        window = self.settings.window
        if window is not None and any(f.waiting is not None for f in self._followed.values()):
            ends.append(trio.current_time() + _seconds_until(self._local_time(), window[0]))
        return min(ends, default=float("inf"))

    def peer_connected(self, peer: str) -> None:
        """A peer with a role here connected: ask it soon (a node back online catches up at once).

        Called from the network's connection callbacks: it only notes the peer (at most
        :data:`MAX_POLLED` wait) and wakes the loop.
        """
        if not self._followed:
            return
        self._fresh.pop(peer, None)
        self._fresh[peer] = None
        while len(self._fresh) > MAX_POLLED:
            self._fresh.popitem(last=False)
        self._wake.set()

    async def poll(self, peers: list[str] | None = None) -> None:
        """Ask ``peers`` (default: the connected ones, up to :data:`MAX_POLLED`) which releases they hold."""
        network = self._network()
        if network is None:
            return
        peers = network.peers() if peers is None else peers  # the link's order: known peers first
        limiter = trio.CapacityLimiter(POLL_CONCURRENCY)
        names = list(self._followed)

        async def ask(peer: str) -> None:
            async with limiter:
                try:
                    answer = await network.call_peer(peer, "orchestrator/list_releases", {"names": names})
                except OrchestratorError as exc:
                    log.debug("Peer %s did not list its releases: %s", peer, exc)
                    return
            releases = answer.get("releases") if isinstance(answer, Mapping) else None
            if not isinstance(releases, Mapping):
                return
            for name in names:
                release = releases.get(name)
                if isinstance(release, bytes):
                    try:
                        self._consider(release, peer)
                    except OrchestratorError as exc:
                        log.info(
                            "Peer %s lists a release of %s this node does not trust: %s", peer, name, exc
                        )

        async with trio.open_nursery() as nursery:
            for peer in peers[:MAX_POLLED]:
                nursery.start_soon(ask, peer)
        self._last_check = utc_now_iso()

    async def apply_all(self) -> None:
        """Install the newest trusted release of each followed service that needs it."""
        for followed in self._followed.values():
            self._end_trial_if_over(followed)
            await self._apply(followed)

    def _end_trial_if_over(self, followed: _Followed) -> None:
        if followed.trial_until is not None and trio.current_time() >= followed.trial_until:
            followed.trial_until = None
            attempt = followed.last_attempt
            if attempt is not None and attempt.get("outcome") == "on_trial":
                attempt["outcome"] = "succeeded"
                self._events.publish(
                    "update_succeeded",
                    followed.name,
                    attempt.get("version"),
                    from_peer=attempt.get("from_peer"),
                )
                self._save_soon()

    async def _apply(self, followed: _Followed) -> None:
        statement = followed.newest
        if statement is None or statement.version in followed.failed:
            return
        name, version, wanted = followed.name, statement.version, followed.newest_bytes
        record = self._store.records.get(name)
        if record is not None and Version.parse(record.current.version) >= Version.parse(version):
            return
        if not self.settings.in_window(self._local_time()):
            if followed.waiting != version:
                followed.waiting = version
                log.info("Update of %s to %s waits for the window %s", name, version, self._window_text())
                self._events.publish("update_waiting", name, version, window=self._window_text())
            return
        followed.waiting = None
        if followed.awaits_delivery():
            return
        holders = list(followed.holders)
        random.shuffle(holders)
        for peer in holders:

            async def fetch(peer: str = peer) -> dict[str, Any]:
                return await self._distribution.fetch(
                    name, peer, force_reinstall=False, expect=wanted, start=True
                )

            outcome = await self._update(followed, statement, wanted, peer, fetch)
            if isinstance(outcome, OrchestratorError) and not isinstance(
                outcome, ServiceInstallationError
            ):  # this holder: unreachable, refused, no longer holds it
                log.info("Could not fetch %s %s from %s: %s", name, version, peer, outcome)
                followed.holders.pop(peer, None)
                continue
            return
        log.info("No peer that holds %s %s could serve it now; trying again later", name, version)

    async def _update(
        self,
        followed: _Followed,
        statement: ReleaseStatement,
        release: bytes,
        peer: str,
        install: Callable[[], Awaitable[dict[str, Any]]],
    ) -> dict[str, Any] | OrchestratorError:
        """Install ``statement`` with ``install`` (a fetch or a delivery) and account for the outcome.

        Returns the install result, or the error: a ``ServiceInstallationError`` has been
        recorded (``refused`` for a statement that no longer holds, ``failed`` otherwise); any
        other error is the transfer's, for the caller to try elsewhere.
        """
        name, version = followed.name, statement.version
        record = self._store.records.get(name)
        previous = record.current.version if record else None
        followed.installing = True
        try:
            result = await install()
        except ReleaseError as exc:  # the statement no longer holds here (expired, publisher removed)
            log.warning("Forgetting the release %s %s: %s", name, version, exc)
            self._attempt(followed, version, peer, "refused", f"[{exc.code}] {exc.message}"[:_MAX_REASON])
            if followed.newest is statement:  # not a newer one heard meanwhile
                followed.newest, followed.newest_bytes, followed.source = None, b"", None
                followed.holders.clear()
            self._events.publish("update_refused", name, version, reason=f"[{exc.code}] {exc.message}")
            await self._save()
            return exc
        except ServiceInstallationError as exc:  # the release itself: it will not do better elsewhere
            await self._failed(followed, version, peer, f"[{exc.code}] {exc.message}")
            return exc
        except OrchestratorError as exc:
            return exc
        finally:
            followed.installing = False
        await self._installed(followed, version, release, peer=peer, result=result, previous=previous)
        return result

    async def _installed(
        self,
        followed: _Followed,
        version: str,
        release: bytes,
        *,
        peer: str,
        result: dict[str, Any],
        previous: str | None,
    ) -> None:
        name = followed.name
        if result.get("reverted"):
            await self._failed(followed, version, peer, str(result.get("revert_reason", "reverted")))
            return
        error = result.get("auto_start_error")
        if error is not None or not result.get("auto_started"):
            await self._failed(
                followed, version, peer, f"version {version} did not start: {error or 'not started'}"
            )
            return
        window = self._revert_window(name) if previous else None
        followed.trial_until = trio.current_time() + window if window else None
        outcome = "on_trial" if window else "succeeded"
        self._attempt(followed, version, peer, outcome)
        log.info("Updated %s to %s (from %s)", name, version, peer)
        self._events.publish("update_installed", name, version, from_peer=peer, previous_version=previous)
        await self._save()
        if self._background is not None:  # not inline: a delivery's sender waits for this result
            self._background.start_soon(self._announce_on, release, peer)

    async def _announce_on(self, release: bytes, peer: str) -> None:
        await self.announce(release, exclude={peer})

    def _revert_window(self, name: str) -> float | None:
        """Seconds an update of ``name`` is on trial (``None``: auto-revert is off for it)."""
        settings, runtime = self._catalog.config.service(name), self._catalog.config.runtime
        enabled = settings.auto_revert if settings.auto_revert is not None else runtime.auto_revert
        window = settings.revert_window if settings.revert_window is not None else runtime.revert_window
        return window if enabled and window > 0 else None

    async def _failed(self, followed: _Followed, version: str, peer: str | None, reason: str) -> None:
        reason = reason[:_MAX_REASON]
        followed.failed.pop(version, None)
        followed.failed[version] = reason
        while len(followed.failed) > MAX_FAILED:
            del followed.failed[next(iter(followed.failed))]
        followed.trial_until = None
        self._attempt(followed, version, peer, "failed", reason)
        log.warning(
            "Update of %s to %s failed and will not be tried again: %s", followed.name, version, reason
        )
        self._events.publish("update_failed", followed.name, version, reason=reason, from_peer=peer)
        await self._save()

    def _attempt(
        self, followed: _Followed, version: str, peer: str | None, outcome: str, reason: str | None = None
    ) -> None:
        followed.last_attempt = {
            "version": version,
            "from_peer": peer,
            "outcome": outcome,
            "reason": reason,
            "at": utc_now_iso(),
        }

    async def _watch_reverts(self, *, task_status: TaskStatus[None]) -> None:
        """A followed update reverted within its window (``service_reverted``) failed."""
        async with self._events.subscribe(buffer=4096) as events:
            task_status.started()
            async for event in events:
                if event.type != "service_reverted" or event.service not in self._followed:
                    continue
                followed = self._followed[event.service]
                attempt = followed.last_attempt
                if (
                    attempt is not None
                    and attempt.get("outcome") == "on_trial"
                    and attempt.get("version") == event.data.get("from_version")
                ):
                    reason = str(event.data.get("reason", "reverted"))
                    await self._failed(followed, attempt["version"], attempt.get("from_peer"), reason)

    # -- telling peers ----------------------------------------------------------------------------

    async def announce(
        self, release: bytes, *, exclude: set[str] | None = None, deliver: bool = False
    ) -> dict[str, Any]:
        """Announce ``release`` to every connected peer (but ``exclude``); each peer's answer.

        ``deliver``: offer to send it (the caller then delivers it to the peers whose answer says
        ``"delivery": true``).  ``{peer: {"accepted", "reason", "delivery"} | {"error": "[code] message"}}``, within
        :data:`ANNOUNCE_TIMEOUT` seconds in all (peers that did not answer by then are left out).
        """
        network = self._network()
        if network is None:
            return {}
        answers: dict[str, Any] = {}

        async def tell(peer: str) -> None:
            try:
                params: dict[str, Any] = {"release": release}
                if deliver:
                    params["deliver"] = True
                answers[peer] = await network.call_peer(peer, "orchestrator/announce_release", params)
            except OrchestratorError as exc:
                answers[peer] = {"error": str(exc)}

        with trio.move_on_after(ANNOUNCE_TIMEOUT):
            async with trio.open_nursery() as nursery:
                for peer in network.peers():
                    if peer not in (exclude or set()):
                        nursery.start_soon(tell, peer)
        return answers

    # -- reports ----------------------------------------------------------------------------------

    def releases(self, names: list[str] | None) -> dict[str, Any]:
        """``list_releases``: the statements of this node's current versions (signed ones only).

        At most :data:`~p2p_orchestrator._replies.REPLY_BYTES` of them, by name (``truncated``
        says whether some were left out; a follower names the services it follows).
        """
        if names is not None and not all(isinstance(name, str) for name in names):
            raise ServiceCallError("names must be a list of service names", code="bad_params")
        wanted = set(names) if names is not None else None
        held, size, truncated = {}, 0, False
        for name, record in sorted(self._store.records.items()):
            release = record.current.release
            if (wanted is None or name in wanted) and release is not None:
                size += len(name) + len(release) + ITEM_BYTES
                if size > REPLY_BYTES:
                    truncated = True
                    break
                held[name] = release
        return {"releases": held, "truncated": truncated}

    def report(self) -> dict[str, Any]:
        """``get_updates``: where each followed service stands."""
        services = {}
        for name, followed in self._followed.items():
            self._end_trial_if_over(followed)
            record = self._store.records.get(name)
            newest = followed.newest
            services[name] = {
                "current_version": record.current.version if record is not None else None,
                "newest_version": newest.version if newest is not None else None,
                "publisher": newest.publisher_text if newest is not None else None,
                "from_peer": followed.source,
                "holders": len(followed.holders),
                "last_attempt": dict(followed.last_attempt) if followed.last_attempt else None,
                "failed_versions": list(followed.failed),
            }
        return {
            "services": services,
            "check_interval": self.settings.check_interval,
            "window": self._window_text(),
            "in_window": self.settings.in_window(self._local_time()),
            "last_check": self._last_check,
            "announcements_refused": self._limit.refused,
        }

    def _in_window(self) -> bool:
        return self.settings.in_window(self._local_time())

    def _window_text(self) -> str | None:
        window = self.settings.window
        return None if window is None else f"{window[0]:%H:%M}-{window[1]:%H:%M}"

    # -- persistence ------------------------------------------------------------------------------

    def _load(self) -> None:
        """Read ``updates.json`` (a damaged file is logged and read as empty: it only saves retries)."""
        try:
            data = json.loads(self._path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return
        except (OSError, ValueError) as exc:
            log.warning("Ignoring %s: %s", self._path, exc)
            return
        services = data.get("services") if isinstance(data, dict) else None
        if not isinstance(services, dict):
            return
        for name, followed in self._followed.items():
            saved = services.get(name)
            if not isinstance(saved, dict):
                continue
            failed = saved.get("failed")
            if isinstance(failed, dict):
                followed.failed = {
                    str(v): str(r)[:_MAX_REASON] for v, r in list(failed.items())[-MAX_FAILED:]
                }
            attempt = saved.get("last_attempt")
            if isinstance(attempt, dict):
                if attempt.get("outcome") == "on_trial":  # the node stopped during the trial
                    attempt["outcome"] = "succeeded"
                    attempt["reason"] = "the node restarted within the revert window: its end was not watched"
                followed.last_attempt = attempt

    def _snapshot(self) -> bytes:
        services = {
            name: {"failed": followed.failed, "last_attempt": followed.last_attempt}
            for name, followed in self._followed.items()
            if followed.failed or followed.last_attempt
        }
        return json.dumps({"services": services}, indent=1, sort_keys=True).encode()

    async def _save(self) -> None:
        data = self._snapshot()
        try:
            await trio.to_thread.run_sync(lambda: write_atomically(self._path, data))
        except OSError as exc:  # the failed versions stay known until the node stops
            log.warning("Could not save %s: %s", self._path, exc)

    def _save_soon(self) -> None:
        """Save from a synchronous report (a trial that ended): best effort, right here."""
        try:
            write_atomically(self._path, self._snapshot())
        except OSError as exc:
            log.warning("Could not save %s: %s", self._path, exc)
