"""Running a service's callbacks in the background, on whatever event loop hosts it.

The runner installs a spawner (its task group's ``start_soon``) with
:func:`set_spawner`; :func:`run_soon` calls a plain function at once and runs a
coroutine function as a task beside the service.  Outside a runner (a unit
test constructing a service by hand) a coroutine callback is scheduled with
asyncio when an asyncio loop runs, and otherwise refused with a clear error.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Callable, Coroutine
from typing import Any

__all__ = ["run_soon", "set_spawner"]

log = logging.getLogger("p2p_orchestrator.framework")

Spawner = Callable[[Callable[[], Coroutine[Any, Any, Any]]], Any]
_spawner: Spawner | None = None


def set_spawner(spawner: Spawner | None) -> None:
    """Install (or remove, with ``None``) the function that starts background tasks."""
    global _spawner  # noqa: PLW0603 - one spawner per process, installed by the runner
    _spawner = spawner


def run_soon(callback: Callable[[], Any], *, what: str) -> None:
    """Call ``callback()``; if it is a coroutine function, run it as a background task.

    Its failure is logged (naming ``what``), never raised into the caller.
    """
    if not inspect.iscoroutinefunction(callback):
        try:
            callback()
        except Exception:
            log.exception("%s failed", what)
        return

    async def guarded() -> None:
        try:
            await callback()
        except Exception:
            log.exception("%s failed", what)

    if _spawner is not None:
        _spawner(guarded)
        return
    import asyncio

    try:
        asyncio.get_running_loop().create_task(guarded())
    except RuntimeError:
        raise RuntimeError(f"{what}: an async callback needs a running event loop") from None
