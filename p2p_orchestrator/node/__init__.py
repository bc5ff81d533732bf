"""The node: an orchestrator on the libp2p network.

``Node`` (and the other names that need libp2p) load lazily, so that
``import p2p_orchestrator.node.access`` (used by the CLI) stays cheap and never
imports libp2p (~0.8 s and ~57 MiB)::

    from p2p_orchestrator.node import Node

    async with Node.open(home) as node:
        await node.proxy(peer_id).call_method("orchestrator/list_services", {})

See :mod:`p2p_orchestrator.node.node` for the node, :mod:`.access` for roles,
:mod:`.proxy` for remote calls, :mod:`.identity` and :mod:`.peerbook` for what
it keeps in its home directory, and ``docs/protocol.md`` for the wire.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from p2p_orchestrator._lazy import lazy_getattr
from p2p_orchestrator.node.access import AccessControl, Role
from p2p_orchestrator.node.proxy import RemoteProxy

if TYPE_CHECKING:
    from p2p_orchestrator.node.identity import IdentityError
    from p2p_orchestrator.node.node import Node, PeerStatus

__all__ = ["AccessControl", "IdentityError", "Node", "PeerStatus", "RemoteProxy", "Role"]

_LAZY = {
    "Node": "p2p_orchestrator.node.node",
    "PeerStatus": "p2p_orchestrator.node.node",
    "IdentityError": "p2p_orchestrator.node.identity",
}


__getattr__ = lazy_getattr(__name__, _LAZY, globals())
