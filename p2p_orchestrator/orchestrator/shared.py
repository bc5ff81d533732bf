"""What the parts of an open orchestrator share: :class:`Shared`, and :class:`Part`, their base.

Opening an :class:`~p2p_orchestrator.Orchestrator` builds one :class:`Shared` and gives it to
every part (the runner, upgrades, the installer, reports, distribution) with the other parts
each one calls.  Nothing else is shared: a part never reaches through another to the rest.
"""

from __future__ import annotations

from dataclasses import dataclass

from p2p_orchestrator._keyed_locks import KeyedLocks
from p2p_orchestrator.events import EventBus
from p2p_orchestrator.orchestrator.catalog import ServiceCatalog
from p2p_orchestrator.runtime.supervisor import Supervisor

__all__ = ["Counters", "Part", "Shared"]


@dataclass
class Counters:
    """The ``statistics`` of ``get_orchestrator_status``: what this orchestrator did since it opened."""

    installs: int = 0
    failed_installs: int = 0
    uninstalls: int = 0
    rollbacks: int = 0
    reverts: int = 0


@dataclass(frozen=True)
class Shared:
    """The state of one open orchestrator that all its parts work with."""

    catalog: ServiceCatalog
    supervisor: Supervisor
    locks: KeyedLocks
    """One lock per service name: every life-cycle operation on a service holds it."""
    events: EventBus
    counters: Counters


class Part:
    """Base of the orchestrator's parts: the :class:`Shared` state, as private attributes."""

    def __init__(self, shared: Shared) -> None:
        self._catalog = shared.catalog
        self._store = shared.catalog.store
        self._supervisor = shared.supervisor
        self._locks = shared.locks
        self._events = shared.events
        self._counters = shared.counters
