"""``NetworkLink``: what a network layer gives the orchestrator while it runs.

The orchestrator knows nothing of libp2p.  A node that puts it on the network hands it
one link for as long as the node runs::

    with orchestrator.linked(NetworkLink(call_peer=..., distributor=..., metrics=..., peers=...)):
        ...   # calls with peer=, distribute_service, fetch_service, the node's metrics
        await orchestrator.follow_updates()   # in the node's nursery: [updates] follow

Outside that block, calls to other nodes and distributions are refused with
``no_network``, and ``get_metrics`` has no network figures.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from p2p_orchestrator.callers import Permission
from p2p_orchestrator.orchestrator.distribution import Distributor

__all__ = ["NetworkLink", "RemoteCall"]

RemoteCall = Callable[[str, str, dict[str, Any]], Awaitable[Any]]
"""``(peer_id, method, params) -> result``: how a call addressed to another node leaves this one."""


@dataclass(frozen=True)
class NetworkLink:
    """The network's part of the orchestrator (see the module docstring)."""

    call_peer: RemoteCall
    distributor: Distributor
    """Moves archives for ``distribute_service``, ``fetch_service`` and ``install_on_peer``."""
    metrics: Callable[[], dict[str, Any]]
    """The network's figures in ``get_metrics``' ``node`` (peers, transfer bytes)."""
    peers: Callable[[], list[str]] = list
    """The peer IDs this node is connected to now (whom the update follower asks and tells), those
    with a role on this node first, each group in random order (the follower asks the first few)."""
    peer_id: str = ""
    """This node's peer ID."""
    sign: Callable[[bytes], bytes] | None = None
    """Sign with this node's identity key (replica rules)."""
    verify: Callable[[str, bytes, bytes], bool] | None = None
    """``(peer ID, data, signature)``: whether that peer's identity key signed ``data``."""
    permissions_of: Callable[[str], frozenset[Permission]] | None = None
    """The permissions a peer has on this node (none for a stranger)."""
