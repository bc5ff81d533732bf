"""Scenarios, measurements and results: what a benchmark is and the JSON shape it reports."""

from __future__ import annotations

import math
import statistics
import traceback
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

__all__ = [
    "STATUSES",
    "Baseline",
    "Check",
    "Context",
    "Measurement",
    "Outcome",
    "Runner",
    "Scenario",
    "Status",
    "Target",
    "describe_error",
    "percentile",
    "summarize",
]

Status = Literal["ok", "missing", "skipped", "error"]
STATUSES: tuple[Status, ...] = ("ok", "missing", "skipped", "error")

P99_MIN_SAMPLES = 20
"""Below this many samples a p99 is just the maximum: report min/max only."""


@dataclass
class Context:
    """What every check and runner gets: the run's mode and a private scratch directory."""

    quick: bool
    workdir: Path
    cache: dict[str, str | Exception | None] = field(default_factory=dict)
    """Results of availability checks by check name: ``None`` (available), a reason, or what it raised."""

    def pick(self, quick: int, full: int) -> int:
        """``quick`` in ``--quick`` mode, else ``full`` (repetition counts, sizes)."""
        return quick if self.quick else full


@dataclass
class Measurement:
    """Raw samples of one side of a scenario, in the scenario's unit, plus context figures."""

    samples: list[float]
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Outcome:
    """What a target is judged on: the project's median, the ratio to the baseline, the extras."""

    value: float
    ratio: float | None
    extra: dict[str, Any]


@dataclass(frozen=True)
class Target:
    """A target as people read it (``text``) and as the script checks it (``check``)."""

    text: str
    check: Callable[[Outcome], bool]


Check = Callable[[Context], Awaitable[str | None]]
"""An availability check: ``None`` when available, else the reason it is not."""

Runner = Callable[[Context], Awaitable[Measurement]]
"""One side of a scenario: warms up, repeats, returns its samples."""


@dataclass(frozen=True)
class Baseline:
    """A real program measured in the same run as the project side."""

    name: str
    run: Runner
    tools: Check | None = None
    """Why the baseline cannot run on this machine (a tool is not installed), if it cannot."""


@dataclass(frozen=True)
class Scenario:
    """One figure: the project side, its baseline and its target."""

    name: str
    unit: str
    description: str
    target: Target
    requires: Check
    """Whether the project feature this figure needs exists (else the scenario is ``missing``)."""
    project: Runner | None
    """``None`` until someone writes the project side (the scenario then stays ``missing``)."""
    baseline: Baseline | None
    no_baseline: str = ""
    """Why there is no baseline program, when ``baseline`` is ``None``."""
    needs: Check | None = None
    """Whether this machine can run the scenario at all (else ``skipped``), e.g. the testbed."""
    timeout: tuple[float, float] = (90.0, 900.0)
    """Seconds allowed for the whole scenario (quick, full) before it is reported as an error."""


def describe_error(exc: BaseException) -> str:
    """``Type: message`` of an exception, or of each leaf of an exception group."""
    if isinstance(exc, BaseExceptionGroup):
        return "; ".join(describe_error(inner) for inner in exc.exceptions)
    return "".join(traceback.format_exception_only(exc)).strip()


def percentile(values: list[float], q: float) -> float:
    """The nearest-rank ``q``-th percentile (0 < q <= 100) of ``values``."""
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


def summarize(samples: list[float]) -> dict[str, float | int | None]:
    """Median (``value``), p99 (when there are enough samples), min, max and the sample count."""
    if not samples:
        raise ValueError("a measurement produced no samples")
    return {
        "value": statistics.median(samples),
        "p99": percentile(samples, 99) if len(samples) >= P99_MIN_SAMPLES else None,
        "min": min(samples),
        "max": max(samples),
        "samples": len(samples),
    }
