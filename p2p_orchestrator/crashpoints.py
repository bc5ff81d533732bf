"""Named points where a multi-step operation can be interrupted on purpose.

Crash-consistency tests need to stop an install, rollback or uninstall *between*
its steps.  Each step boundary calls :func:`crashpoint` with a stable name such as
``"store.install.after_move"``.  It does nothing unless

* a test registered a hook with :func:`set_crash_hook` (the hook may raise to
  simulate a failure in the middle of the operation), or
* the environment variable ``P2P_ORCHESTRATOR_CRASHPOINT`` names this point, in
  which case the process kills itself with SIGKILL, exactly like a power cut of the
  process (used by the fault-injection suite on real node processes).
"""

from __future__ import annotations

import os
import signal
from collections.abc import Callable

__all__ = ["CRASHPOINT_ENV", "crashpoint", "set_crash_hook"]

CRASHPOINT_ENV = "P2P_ORCHESTRATOR_CRASHPOINT"

_hooks: list[Callable[[str], None]] = []


def set_crash_hook(hook: Callable[[str], None] | None) -> None:
    """Install (or remove, with ``None``) a function called at every crash point."""
    _hooks[:] = [] if hook is None else [hook]


def crashpoint(name: str) -> None:
    """Mark a step boundary called ``name``; see the module docstring."""
    for hook in _hooks:
        hook(name)
    if os.environ.get(CRASHPOINT_ENV) == name:
        os.kill(os.getpid(), signal.SIGKILL)
