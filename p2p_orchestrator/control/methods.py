"""The control socket's own methods, under ``node/``: what only the node's operator may ask.

The control socket answers every path of the node's RPC table
(``orchestrator/<method>``, ``<service>/<method>``) as the node's admin
(:data:`~p2p_orchestrator.rpc.LOCAL_CALLER`), plus these, which the peer
protocol never serves (a peer's ``node/...`` call goes to the RPC table, where
``node`` is just a service name):

==================  =================================================  ==========================
method              params                                             answer
==================  =================================================  ==========================
``node/id``         none                                               ``{peer_id, listen_addrs,
                                                                       home, pid, control_socket}``
``node/peers``      none                                               ``{peers: [{peer_id,
                                                                       connected, addrs, pinned,
                                                                       role}]}``
``node/trust``      ``peer_id``, ``role`` (``admin``, ``deployer``,    ``{peer_id, role,
                    ``reader`` or null to remove it)                   previous_role}``
``node/call``       ``method``, ``params`` (map), ``peer`` (peer ID,   the method's result
                    optional)
``node/export``     ``service_name``, ``path`` (absolute),             ``{service_name, archive,
                    ``peer`` (optional)                                size, archive_hash}``
``node/logs``       ``service_name``, ``lines`` (default 50),          a stream of lines
                    ``follow`` (default false)
``node/events``     ``limit`` (recent events first, default 20),       a stream of events
                    ``follow`` (default false), ``types`` (list)
==================  =================================================  ==========================

One addition to an RPC method, on this socket only: ``orchestrator/install_service``
(directly or through ``node/call``) takes ``archive_path`` (an absolute path the
node reads) instead of ``archive_data``, so the CLI never copies a large archive
through the socket.  The node streams the file into its store when it installs
locally, and reads it into the call when it forwards it to a peer.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from p2p_orchestrator.rpc import Param

__all__ = ["CONTROL_METHODS", "CONTROL_NAMESPACE", "ControlMethod"]

CONTROL_NAMESPACE = "node"


@dataclass(frozen=True)
class ControlMethod:
    """One ``node/<name>`` method: its parameters and whether it answers with a stream."""

    name: str
    params: Mapping[str, Param]
    streams: bool = False


_PEER = {"peer": Param((str,), required=False)}
_TEXT = (str,)

CONTROL_METHODS: dict[str, ControlMethod] = {
    method.name: method
    for method in (
        ControlMethod("id", {}),
        ControlMethod("peers", {}),
        ControlMethod("trust", {"peer_id": Param(_TEXT), "role": Param((str, type(None)))}),
        ControlMethod(
            "call",
            {"method": Param(_TEXT), "params": Param((dict,), required=False), **_PEER},
        ),
        ControlMethod("export", {"service_name": Param(_TEXT), "path": Param(_TEXT), **_PEER}),
        ControlMethod(
            "logs",
            {
                "service_name": Param(_TEXT),
                "lines": Param((int,), required=False),
                "follow": Param((bool,), required=False),
            },
            streams=True,
        ),
        ControlMethod(
            "events",
            {
                "limit": Param((int,), required=False),
                "follow": Param((bool,), required=False),
                "types": Param((list,), required=False),
            },
            streams=True,
        ),
    )
}
