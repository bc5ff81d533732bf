"""Upgrade safety: an upgrade is on trial until it has run well for a while, and reverted if not.

Like Nomad's ``auto_revert`` or RAUC's "mark good": when an install replaces a
service's current version and starts the new one, the new version is on
*trial* for ``revert_window`` seconds (``[runtime]``, or per service).  If within
that window it fails to start, crashes, or is killed for failing its health
checks, the orchestrator switches the service back to the version that was
current before the install and starts that one, records why
(:class:`RevertRecord`, shown as ``last_revert`` by ``get_service_info``) and
publishes ``service_reverted``.  A version that lasts the window is good: later
failures are handled by the restart policy alone.

A failure to start is seen at once by the install, which reverts before it
returns (its result says ``reverted: true``); a failure later in the window is
reported by the supervisor (:meth:`UpgradeTrials.failed`) and reverted in the
background.  This module keeps the bookkeeping; the orchestrator does the
switching.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

__all__ = ["RevertRecord", "Trial", "UpgradeTrials"]


@dataclass(frozen=True)
class Trial:
    """A new version on trial, and the version to go back to."""

    new_version: str
    new_version_id: int
    good_version: str
    good_version_id: int
    until: float
    """Monotonic time the trial ends (the new version is then good)."""


@dataclass(frozen=True)
class RevertRecord:
    """One automatic revert, as ``get_service_info`` reports it (``last_revert``)."""

    from_version: str
    to_version: str
    reason: str
    at: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "from_version": self.from_version,
            "to_version": self.to_version,
            "reason": self.reason,
            "at": self.at,
        }


class UpgradeTrials:
    """The services whose upgrade is on trial (the store keeps the last revert of each)."""

    def __init__(self) -> None:
        self._trials: dict[str, Trial] = {}

    def begin(self, name: str, trial: Trial) -> None:
        """Put ``name``'s new version on trial (replacing any earlier trial)."""
        self._trials[name] = trial

    def end(self, name: str) -> None:
        """Forget ``name``'s trial (it was reverted, replaced or uninstalled)."""
        self._trials.pop(name, None)

    def on_trial(self, name: str) -> Trial | None:
        """The trial of ``name`` if one is running now."""
        trial = self._trials.get(name)
        if trial is not None and time.monotonic() >= trial.until:
            del self._trials[name]  # it lasted the window: good
            return None
        return trial

    def failed(self, name: str, version: str | None) -> Trial | None:
        """``name`` at ``version`` failed: the trial to revert, if that version is on trial now.

        The trial ends either way (a reverted version is not tried again).
        """
        trial = self.on_trial(name)
        if trial is None or trial.new_version != version:
            return None
        del self._trials[name]
        return trial
