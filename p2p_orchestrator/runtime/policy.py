"""Restart policy: when a service that stopped on its own is started again, and how soon.

The policy is read from the manifest's ``restart`` object, overlaid key by key by
the operator's ``[services.<name>.restart]`` table::

    {"policy": "on-failure", "initial_delay": 0.5, "max_delay": 30, "multiplier": 2,
     "jitter": 0.1, "max_restarts": 5, "window": 60, "stable_after": 10}

* ``policy``: ``never``, ``on-failure`` (restart after a non-zero exit, a signal or a
  failed restart) or ``always`` (after any exit the supervisor did not ask for).
* The n-th consecutive restart waits ``initial_delay * multiplier**n`` seconds,
  capped at ``max_delay``, spread by ``±jitter`` (a fraction) so that many
  services crashing together do not come back in lockstep.
* More than ``max_restarts`` restarts within ``window`` seconds: the service is
  ``failed`` and stays down until someone starts it.
* A run that lasted ``stable_after`` seconds resets the delay to ``initial_delay``.

This module is pure computation (no I/O, no clock of its own), so it is tested
without processes.
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any, Literal

from p2p_orchestrator._backoff import exponential_delay
from p2p_orchestrator.runtime._layers import overlay

__all__ = ["POLICIES", "RestartPolicy", "RestartTracker"]

POLICIES = ("never", "on-failure", "always")
PolicyName = Literal["never", "on-failure", "always"]


@dataclass(frozen=True)
class RestartPolicy:
    """How a service is restarted after it exits on its own; see the module docstring."""

    policy: PolicyName = "on-failure"
    initial_delay: float = 0.5
    max_delay: float = 30.0
    multiplier: float = 2.0
    jitter: float = 0.1
    max_restarts: int = 5
    window: float = 60.0
    stable_after: float = 10.0

    @classmethod
    def from_layers(cls, *layers: Mapping[str, Any] | None, where: str = "restart") -> RestartPolicy:
        """Overlay ``layers`` (manifest first, operator last) on the defaults.

        Raises :class:`ValueError` naming the offending key for an unknown key, a
        value of the wrong type or one out of range.
        """
        defaults = cls()

        def check(key: str, value: Any) -> Any:
            return _check(key, value, type(getattr(defaults, key)), where)

        return overlay(defaults, layers, check=check, where=where)

    def should_restart(self, *, failed: bool) -> bool:
        """Whether an exit the supervisor did not ask for leads to a restart."""
        if self.policy == "always":
            return True
        return self.policy == "on-failure" and failed

    def delay(self, attempt: int, rng: random.Random | None = None) -> float:
        """Seconds to wait before restart number ``attempt`` (0 for the first) of a streak."""
        return exponential_delay(
            self.initial_delay, self.multiplier, attempt, self.max_delay, jitter=self.jitter, rng=rng
        )

    def to_dict(self) -> dict[str, Any]:
        """The JSON-able form reported by ``get_service_info``."""
        return {f.name: getattr(self, f.name) for f in fields(self)}


def _check(key: str, value: Any, expected: type, where: str) -> Any:
    if key == "policy":
        if value not in POLICIES:
            raise ValueError(f"{where}: policy must be one of {', '.join(POLICIES)}, not {value!r}")
        return value
    # bool is an int subclass: refuse it explicitly for numeric fields
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValueError(f"{where}: {key} must be a number, not {value!r}")
    if expected is int:
        if value != int(value) or value < 0:
            raise ValueError(f"{where}: {key} must be a whole number >= 0, not {value!r}")
        return int(value)
    if value < 0 or (key in ("window", "multiplier") and value <= 0):
        raise ValueError(f"{where}: {key} must be positive, not {value!r}")
    if key == "jitter" and value >= 1:
        raise ValueError(f"{where}: jitter is a fraction below 1, not {value!r}")
    if key == "multiplier" and value < 1:
        raise ValueError(f"{where}: multiplier must be >= 1, not {value!r}")
    return float(value)


class RestartTracker:
    """The restart bookkeeping of one service: the streak, and restarts in the window.

    Times are monotonic seconds supplied by the caller.
    """

    def __init__(self, policy: RestartPolicy) -> None:
        self.policy = policy
        self.total = 0
        """Restarts done by the supervisor since the node opened (never reset)."""
        self._streak = 0
        self._recent: list[float] = []

    def ran_for(self, seconds: float) -> None:
        """Report how long the last run lasted; a stable run resets the streak."""
        if seconds >= self.policy.stable_after:
            self._streak = 0

    def next_delay(self, now: float, rng: random.Random | None = None) -> float | None:
        """Record a restart at ``now``: its delay, or ``None`` when the limit is reached."""
        self._recent = [t for t in self._recent if now - t < self.policy.window]
        if len(self._recent) >= self.policy.max_restarts:
            return None
        self._recent.append(now)
        delay = self.policy.delay(self._streak, rng)
        self._streak += 1
        self.total += 1
        return delay

    def reset(self) -> None:
        """Forget the streak and the window (an operator started the service by hand)."""
        self._streak = 0
        self._recent.clear()
