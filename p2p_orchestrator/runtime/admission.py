"""``CallAdmission``: which calls from the network a service process takes, so no queue grows without bound.

A service process runs at most ``max_concurrent_calls`` (*M*) calls at once; the
others wait in the node for a turn, within their own deadline.  Calls from
this node (the API, the control socket, services' proxy calls) are trusted and
always wait.  Calls from other nodes are *admitted* first -- counted from
their arrival until their answer, running or waiting -- and answered at once
with :class:`~p2p_orchestrator.errors.Busy` (code ``busy``) beyond these bounds:

=====================================  =========  ==========================================
who                                    admitted   why
=====================================  =========  ==========================================
all remote callers together            4 M        the queue in the node stays bounded (each
                                                  waiting call holds its parameters, up to
                                                  one frame)
all peers without a role together      3 M / 4    strangers (peer IDs cost nothing) cannot
                                                  take every slot: a quarter of them is
                                                  always free for trusted peers and this node
one peer without a role                M / 2      one stranger cannot take all of that
=====================================  =========  ==========================================

Peers with a role are not limited one by one: they are trusted, and a node that
fans calls in from many users (a gateway) is one peer.  Everything here is
per service process (a new process starts with empty counts).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from p2p_orchestrator.callers import Caller
from p2p_orchestrator.errors import Busy

__all__ = ["AdmissionLimits", "CallAdmission"]


@dataclass(frozen=True)
class AdmissionLimits:
    """The bounds of the module docstring, for one service process."""

    remote: int
    unknown_peers: int
    per_unknown_peer: int

    @classmethod
    def for_slots(cls, slots: int) -> AdmissionLimits:
        """The bounds for a process that runs ``slots`` (``max_concurrent_calls``) calls at once."""
        slots = max(1, slots)
        return cls(
            remote=4 * slots, unknown_peers=max(1, slots * 3 // 4), per_unknown_peer=max(1, slots // 2)
        )


class CallAdmission:
    """Counts the remote calls a service process has admitted; see the module docstring."""

    def __init__(self, service: str, limits: AdmissionLimits) -> None:
        self.service = service
        self.limits = limits
        self._remote = 0
        self._unknown = 0
        self._per_peer: Counter[str] = Counter()
        self.refused = 0
        """Calls answered ``busy`` so far."""
        self.peak = 0
        """The most remote calls admitted at once so far."""

    @property
    def admitted(self) -> int:
        """Remote calls admitted now (running or waiting for a turn)."""
        return self._remote

    @contextmanager
    def admit(self, caller: Caller) -> Iterator[None]:
        """Count ``caller``'s call while inside, or raise :class:`Busy` if it is over a bound."""
        if caller.is_local:
            yield
            return
        peer = caller.peer_id or ""
        unknown = not caller.permissions
        self._check(peer, unknown)
        self._remote += 1
        self.peak = max(self.peak, self._remote)
        if unknown:
            self._unknown += 1
            self._per_peer[peer] += 1
        try:
            yield
        finally:
            self._remote -= 1
            if unknown:
                self._unknown -= 1
                self._per_peer[peer] -= 1
                if not self._per_peer[peer]:
                    del self._per_peer[peer]

    def _check(self, peer: str, unknown: bool) -> None:
        limits, name = self.limits, self.service
        why = None
        if self._remote >= limits.remote:
            why = f"{name} has {self._remote} calls from other nodes running or waiting (at most {limits.remote})"
        elif unknown and self._unknown >= limits.unknown_peers:
            why = (
                f"{name} runs {self._unknown} calls of peers without a role (at most {limits.unknown_peers})"
            )
        elif unknown and self._per_peer[peer] >= limits.per_unknown_peer:
            why = (
                f"{name} runs {self._per_peer[peer]} calls of peer {peer}, which has no role on this node "
                f"(at most {limits.per_unknown_peer})"
            )
        if why is not None:
            self.refused += 1
            raise Busy(f"{why}; retry later")
