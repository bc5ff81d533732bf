"""``SwarmMembers``: the swarms a node is a target of, by archive hash -- where a peer's fetch finds one.

A :class:`~p2p_orchestrator.node.distribution.swarm_member.SwarmMembership` is registered from the origin's
offer until it neither receives nor serves any more; a ``fetch {archive_hash}`` from another
target of that distribution is then served from it (:meth:`SwarmMembers.serving`).
"""

from __future__ import annotations

import trio

from p2p_orchestrator.callers import Permission
from p2p_orchestrator.node.distribution.context import TransferContext
from p2p_orchestrator.node.distribution.swarm_member import JOIN_SECONDS, SwarmMembership
from p2p_orchestrator.transfer import Fetch, Offer, PartialTransfer

__all__ = ["SwarmMembers"]


class SwarmMembers:
    """The swarms this node is a target of, by archive hash (a fetch finds its swarm here)."""

    def __init__(self, transfers: TransferContext) -> None:
        self._transfers = transfers
        self._members: dict[str, SwarmMembership] = {}
        self._changed = trio.Event()

    def get(self, archive_hash: str) -> SwarmMembership | None:
        return self._members.get(archive_hash)

    def add(self, membership: SwarmMembership) -> None:
        self._members[membership.archive_hash] = membership
        self._changed.set()
        self._changed = trio.Event()

    def join(self, offer: Offer, origin: str, partial: PartialTransfer) -> SwarmMembership | None:
        """The membership an origin's ``offer`` makes this node part of, or ``None`` (a plain push).

        An origin that pushes again (its retry after a cut stream) continues the membership it
        started -- the peers being served keep their streams and hear of the new chunks.
        """
        if self._transfers.peer_id not in offer.peers or origin in offer.peers:
            return None
        known = self.get(offer.manifest.archive_hash)
        if known is not None and (known.origin, known.manifest, known.plan.targets) == (
            origin,
            offer.manifest,
            offer.peers,
        ):
            known.begin_receive()
            return known
        member = SwarmMembership(self._transfers, offer, origin, partial, forget=self.remove)
        self.add(member)
        return member

    def remove(self, membership: SwarmMembership) -> None:
        if self._members.get(membership.archive_hash) is membership:
            del self._members[membership.archive_hash]

    async def serving(self, peer: str, fetch: Fetch) -> SwarmMembership | None:
        """The swarm a fetch of ``peer`` belongs to, if ``peer`` may fetch from it; else ``None``.

        ``peer`` must be another target of that distribution and have the ``read`` permission
        here.  A fetch for an archive this node neither holds nor swarms yet waits up to
        :data:`JOIN_SECONDS` (the origin's offer may still be on its way here).
        """
        archive_hash = fetch.archive_hash
        if archive_hash is None:
            return None
        member = self.get(archive_hash)
        if member is None and await self._transfers.cached_archive(archive_hash) is None:
            member = await self.wait(archive_hash)
        caller = self._transfers.access.caller_for(peer)
        if member is None or not member.may_fetch(peer):
            return None
        if caller is None or Permission.READ not in caller.permissions:
            return None  # the plain path refuses it, saying why
        return member

    async def wait(self, archive_hash: str, seconds: float = JOIN_SECONDS) -> SwarmMembership | None:
        """The membership of ``archive_hash``, waiting up to ``seconds`` for it to appear."""
        with trio.move_on_after(seconds):
            while (found := self._members.get(archive_hash)) is None:
                await self._changed.wait()
            return found
        return None
