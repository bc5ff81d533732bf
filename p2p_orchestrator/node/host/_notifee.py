"""``Notifee``: a py-libp2p notifee that ignores every event its subclass does not handle."""

from __future__ import annotations

from typing import Any

from libp2p.abc import INetConn, INetStream, INetwork, INotifee

__all__ = ["Notifee"]


class Notifee(INotifee):
    """Every callback of :class:`INotifee`, doing nothing; override the ones you need.

    The callbacks run inside the swarm's own tasks: they must not block or raise.
    """

    async def connected(self, network: INetwork, conn: INetConn) -> None:
        pass

    async def disconnected(self, network: INetwork, conn: INetConn) -> None:
        pass

    async def opened_stream(self, network: INetwork, stream: INetStream) -> None:
        pass

    async def closed_stream(self, network: INetwork, stream: INetStream) -> None:
        pass

    async def listen(self, network: INetwork, multiaddr: Any) -> None:
        pass

    async def listen_close(self, network: INetwork, multiaddr: Any) -> None:
        pass
