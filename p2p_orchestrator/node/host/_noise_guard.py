"""A guard around py-libp2p 0.8.1's Noise writes: a cancelled write must not kill the connection.

The bug.  ``BaseNoiseMsgReadWriter.write_msg`` encrypts a message -- which advances the
session's nonce -- and only then awaits the socket's write lock.  A task cancelled at that
await has spent a nonce on a message that is never sent; every later message then carries a
nonce the peer does not expect, the peer fails to authenticate it ("Failed authentication of
message"), and the whole connection dies, with every stream on it.  Any task can be that task:
Yamux sends window updates from inside ``read()``, so a cancelled *read* is enough (a read
deadline, a nursery cancelled at the end of a transfer, ``NetStream.reset()`` waking a
reader).  Found by cutting transfer streams at random points while chunks flowed: about one
cut in five took the connection down.

The guard.  :func:`install` wraps ``write_msg`` so that each Noise message is encrypted and
written whole, shielded from cancellation.  A write that cannot finish within
:data:`WRITE_LIMIT` seconds (the peer stopped reading the TCP connection altogether) closes the
connection -- it could not be used any more anyway -- and raises ``ConnectionClosedError``.
Cancellation then reaches the task at its next checkpoint, after the message is out.

It patches the class once per process (idempotent); the node's transfer layer installs it.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any, NoReturn

import trio
from libp2p.io.exceptions import ConnectionClosedError
from libp2p.security.noise.io import BaseNoiseMsgReadWriter

__all__ = ["WRITE_LIMIT", "give_up", "install", "write_scope"]

log = logging.getLogger("p2p_orchestrator.node")

WRITE_LIMIT = 30.0
"""Seconds one Noise message may take to write before its connection is given up."""

_MARK = "_p2p_orchestrator_guarded"


def write_scope() -> trio.CancelScope:
    """The scope to encrypt and write Noise messages in: shielded from outside cancellation, not from
    its own deadline of :data:`WRITE_LIMIT` seconds (then call :func:`give_up`)."""
    return trio.CancelScope(shield=True, deadline=trio.current_time() + WRITE_LIMIT)


async def give_up(writer: Any) -> NoReturn:
    """Close the connection of a Noise ``writer`` whose write did not finish in time, and raise."""
    with trio.CancelScope(shield=True):
        log.warning("A Noise write took over %g s; closing its connection", WRITE_LIMIT)
        with trio.move_on_after(2.0):
            try:
                await writer.close()
            except Exception as exc:
                log.debug("closing a stuck connection failed: %s", exc)
    raise ConnectionClosedError(f"a write did not finish within {WRITE_LIMIT:g} s; the connection is closed")


def install() -> None:
    """Make every Noise message write atomic with respect to cancellation (see the module docstring)."""
    original: Callable[..., Awaitable[None]] = BaseNoiseMsgReadWriter.write_msg
    if getattr(original, _MARK, False):
        return

    async def write_msg(self: Any, msg: bytes, prefix_encoded: bool = False) -> None:
        # One scope per message (a window update per read goes through here: keep it cheap).
        with write_scope() as timer:
            await original(self, msg, prefix_encoded)
        if timer.cancelled_caught:
            await give_up(self)

    setattr(write_msg, _MARK, True)
    write_msg.__doc__ = original.__doc__
    BaseNoiseMsgReadWriter.write_msg = write_msg  # type: ignore[method-assign]
