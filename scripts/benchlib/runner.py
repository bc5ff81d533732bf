"""Run the selected scenarios into result dicts; a scenario that fails is reported, never fatal.

Status of a scenario:

* ``skipped``: not selected, or this machine cannot run it (``needs``), or the project side
  could run but its baseline's tool is not installed (no ratio without a baseline).
* ``missing``: the project feature is not there yet (its baseline is still measured when it can
  be, so baselines do not rot while they wait).
* ``error``: the scenario raised or timed out; the message is in ``reason``, the run goes on.
* ``ok``: measured; ``ok`` then says whether the target is met.
"""

from __future__ import annotations

import signal
import sys
import traceback
from collections.abc import Callable
from typing import Any

import trio

from benchlib.model import Context, Measurement, Outcome, Scenario, describe_error, summarize

__all__ = ["Interrupted", "exit_code", "run_interruptible", "run_scenario", "run_selected"]

NOT_WRITTEN = (
    "the feature is present but the project side of this scenario is not written yet "
    "(docs/benchmarks.md, 'Adding a scenario')"
)


def _empty(scenario: Scenario) -> dict[str, Any]:
    return {
        "name": scenario.name,
        "unit": scenario.unit,
        "description": scenario.description,
        "status": "skipped",
        "reason": None,
        "value": None,
        "p99": None,
        "min": None,
        "max": None,
        "samples": 0,
        "baseline": {
            "name": scenario.baseline.name if scenario.baseline else None,
            "value": None,
            "reason": None if scenario.baseline else scenario.no_baseline,
        },
        "ratio": None,
        "target": scenario.target.text,
        "ok": False,
        "extra": {},
    }


def _fill(into: dict[str, Any], measurement: Measurement) -> None:
    into.update(summarize(measurement.samples))
    into["extra"] = measurement.extra


async def _measure(ctx: Context, scenario: Scenario, result: dict[str, Any]) -> None:
    if scenario.needs is not None and (reason := await scenario.needs(ctx)) is not None:
        result["reason"] = reason
        return
    missing = await scenario.requires(ctx)
    if missing is None and scenario.project is None:
        missing = NOT_WRITTEN
    baseline = scenario.baseline
    if baseline is not None:
        tools = await baseline.tools(ctx) if baseline.tools is not None else None
        if tools is not None:
            result["baseline"]["reason"] = tools
            if missing is None:
                result["reason"] = f"baseline cannot run: {tools}"
                return
        else:
            _fill(result["baseline"], await baseline.run(ctx))
    if missing is not None:
        result["status"], result["reason"] = "missing", missing
        return
    if scenario.project is None:  # unreachable: NOT_WRITTEN made it missing
        raise AssertionError("no project runner")
    _fill(result, await scenario.project(ctx))
    base = result["baseline"].get("value")
    result["ratio"] = result["value"] / base if base else None
    result["status"] = "ok"
    result["ok"] = bool(scenario.target.check(Outcome(result["value"], result["ratio"], result["extra"])))


async def run_scenario(ctx: Context, scenario: Scenario) -> dict[str, Any]:
    """Measure one scenario (within its time budget) into its JSON dict."""
    result = _empty(scenario)
    budget = scenario.timeout[0] if ctx.quick else scenario.timeout[1]
    try:
        with trio.fail_after(budget):
            await _measure(ctx, scenario, result)
    except trio.TooSlowError:
        result["status"], result["reason"] = "error", f"timed out after {budget:.0f} s"
    except Exception as exc:
        print(f"bench: {scenario.name} failed:", file=sys.stderr)
        traceback.print_exc()
        result["status"], result["reason"] = "error", describe_error(exc)
    return result


async def run_selected(
    ctx: Context,
    scenarios: tuple[Scenario, ...],
    selected: set[str],
    report: Callable[[dict[str, Any]], None],
) -> list[dict[str, Any]]:
    """Every scenario's result, in order; those not ``selected`` are ``skipped``. ``report`` sees each."""
    results = []
    for scenario in scenarios:
        if scenario.name in selected:
            result = await run_scenario(ctx, scenario)
        else:
            result = _empty(scenario)
            result["reason"] = "not selected (--only)"
        report(result)
        results.append(result)
    return results


class Interrupted(Exception):
    """The run was stopped by a signal (after every child it started was stopped)."""

    def __init__(self, signum: int) -> None:
        super().__init__(f"interrupted by {signal.Signals(signum).name}")
        self.signum = signum


async def run_interruptible(
    ctx: Context,
    scenarios: tuple[Scenario, ...],
    selected: set[str],
    report: Callable[[dict[str, Any]], None],
) -> list[dict[str, Any]]:
    """:func:`run_selected`, cancelled cleanly on SIGTERM or SIGHUP (then raises :class:`Interrupted`).

    Cancelling unwinds every ``async with`` that started a process, so each child is stopped;
    SIGINT does the same through trio's ``KeyboardInterrupt``.
    """
    results: list[dict[str, Any]] = []
    received: list[int] = []

    async def watch(cancel_scope: trio.CancelScope) -> None:
        with trio.open_signal_receiver(signal.SIGTERM, signal.SIGHUP) as signals:
            async for signum in signals:
                received.append(signum)
                cancel_scope.cancel()
                return

    async with trio.open_nursery() as nursery:
        nursery.start_soon(watch, nursery.cancel_scope)
        results = await run_selected(ctx, scenarios, selected, report)
        nursery.cancel_scope.cancel()
    if received:
        raise Interrupted(received[0])
    return results


def exit_code(results: list[dict[str, Any]], strict: bool) -> int:
    """1 when a scenario errored, or (``strict``) when a measured scenario missed its target."""
    if any(r["status"] == "error" for r in results):
        return 1
    if strict and any(r["status"] == "ok" and not r["ok"] for r in results):
        return 1
    return 0
