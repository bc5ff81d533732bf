"""Scenarios whose project side and baseline come from one testbed run (``auto_update_n16``, ``rollout_16``).

Building a 16-host testbed and starting its node processes costs more than a sample, so both sides
are measured together, samples interleaved: whichever runner asks first (the baseline, normally)
runs :attr:`PairedRun.measure` and keeps the figures in ``ctx.cache``; the other reads them.
"""

from __future__ import annotations

import json
import shutil
import statistics
import threading
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import trio

from benchlib.bittorrent import MIB
from benchlib.model import Context, Measurement

__all__ = ["Measure", "PairedRun", "sizes"]


class Measure(Protocol):
    """One testbed run: ``{"samples", "extra", "baseline", "baseline_extra"}``, the project's samples
    only when ``with_project``; ``stop`` ends it early."""

    def __call__(
        self,
        size: int,
        workdir: Path,
        *,
        repetitions: int,
        warmups: int,
        with_project: bool,
        stop: threading.Event,
    ) -> dict[str, Any]: ...


def sizes(quick: bool) -> tuple[int, int, int]:
    """(payload bytes, repetitions, warm-ups) for the mode (as ``swarm_n*``)."""
    return (4 * MIB, 2, 0) if quick else (16 * MIB, 3, 1)


@dataclass(frozen=True)
class PairedRun:
    """The runners of one paired scenario (see the module docstring)."""

    name: str
    """The scenario's name: its ``ctx.cache`` key and its work directory."""
    measure: Measure
    requires: Callable[[Context], Awaitable[str | None]]
    """Why the project side cannot run here (``None``: it can)."""

    async def _run_once(self, ctx: Context, *, with_project: bool) -> dict[str, Any]:
        cached = ctx.cache.get(self.name)
        if isinstance(cached, str):
            figures: dict[str, Any] = json.loads(cached)
            if figures["samples"] or not with_project:
                return figures
        size, repetitions, warmups = sizes(ctx.quick)
        workdir = ctx.workdir / self.name
        stop, done = threading.Event(), threading.Event()

        def measure_here() -> dict[str, Any]:
            try:
                return self.measure(
                    size,
                    workdir,
                    repetitions=repetitions,
                    warmups=warmups,
                    with_project=with_project,
                    stop=stop,
                )
            finally:
                shutil.rmtree(workdir, ignore_errors=True)
                done.set()

        try:
            figures = await trio.to_thread.run_sync(measure_here, abandon_on_cancel=True)
        except BaseException:
            stop.set()
            with trio.CancelScope(shield=True):
                await trio.to_thread.run_sync(done.wait, 60.0)
            raise
        ctx.cache[self.name] = json.dumps(figures)
        return figures

    async def baseline(self, ctx: Context) -> Measurement:
        """The run's baseline samples (with the project's, when the project can run here)."""
        figures = await self._run_once(ctx, with_project=await self.requires(ctx) is None)
        return Measurement(figures["baseline"], figures["baseline_extra"])

    async def project(self, ctx: Context) -> Measurement:
        """The run's project samples, with ``swarm_n16``'s median next to them when it ran before."""
        figures = await self._run_once(ctx, with_project=True)
        extra = figures["extra"]
        swarm_n16 = ctx.cache.get("swarm_n16")
        if isinstance(swarm_n16, str):
            extra["swarm_n16_seconds"] = round(float(swarm_n16), 3)
            extra["over_swarm_n16"] = round(statistics.median(figures["samples"]) / float(swarm_n16), 3)
        return Measurement(figures["samples"], extra)
