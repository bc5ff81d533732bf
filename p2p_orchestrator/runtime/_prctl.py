"""What a service process asks of the kernel about itself through ``prctl``: die with its parent, its name."""

from __future__ import annotations

import ctypes
import os
import signal

from p2p_orchestrator.runtime.protocol import EXIT_PARENT_GONE

__all__ = ["die_with_parent", "name_process"]

_PR_SET_PDEATHSIG = 1
_PR_SET_NAME = 15


def die_with_parent(parent: int) -> None:
    """``PR_SET_PDEATHSIG``: SIGKILL this process when ``parent`` (the thread that forked it) dies.

    Exits at once with :data:`~p2p_orchestrator.runtime.protocol.EXIT_PARENT_GONE` if ``parent``
    died before the request took effect; raises :class:`OSError` if the kernel refuses it.
    """
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, f"prctl(PR_SET_PDEATHSIG) failed: {os.strerror(errno)}")
    if os.getppid() != parent:
        os._exit(EXIT_PARENT_GONE)


def name_process(name: str) -> None:
    """``PR_SET_NAME``: the name ``ps -o comm`` and ``top`` show (its first 15 bytes)."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_NAME, name.encode()[:15], 0, 0, 0)
