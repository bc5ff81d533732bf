"""Both sides of ``rollout_16`` (issue 17): ``rollout_archive`` to 16 targets, 1 canary then waves of 4.

One run: a testbed of 17 hosts (:mod:`testbed`: 20 Mbit/s each way per host link, 5 ms one
way, as for ``swarm_n16``), one node process per host (:mod:`benchlib.programs.swarm_node`):
the coordinator on host 0, a target on each of hosts 1..16.  Roles: every target gives the
coordinator ``admin`` (a rollout pushes, asks ``get_service_info`` and reverts with
``rollback_service``) and every other target ``reader`` (what a swarm needs: targets fetch
from each other); unknown peers get nothing.  Every node dials every later one first, then a
small seed archive is swarmed to all 16 with ``auto_start=True``, so every sample is an upgrade
of a running service.

**Sample** (the project side): a new random archive (16 MiB payload, 4 MiB quick, so nothing is
deduplicated), then ``rollout_archive(path, targets, canary=1, wave=4, health_wait=1.0)`` on the
coordinator, timed there around the call: 5 waves (the canary, then 4 waves of 4), each probed,
pushed (a push for the canary, the swarm for a wave of 4), installed and started, then after the
health wait checked (version, running, health, no restart).  The sample includes the 5 health
waits (5 s); ``extra`` also has the time without them (``minus_health_waits_seconds``) and, from
the rollout's ``rollout_progress`` events, each wave's time and its push time (from the end of
the wave before to the last of its targets ``upgraded``: probe, transfer, install and start).
The rollout's account must say ``succeeded`` with all 16 targets ``healthy``, and every target
must then run the new version, or the run fails (with the account's reasons).

**Baseline**, in the same testbed with the same processes, interleaved with the samples: the
coordinator installs another new archive of the same size, then ``distribute_service(...,
strategy="swarm", auto_start=True)`` to the same 16 targets, timed around that call (as
``swarm_n16`` does).  The scenario's ratio is the median rollout over the median swarm.

**Coordinator upload** in copies of the archive: the bytes the coordinator's transfer streams
sent during the call (the node's own counter, every transfer frame), over the archive's size; a
rollout sends about one copy per wave.  When ``swarm_n16`` ran earlier in the same bench run,
its median and the ratio to it are in ``extra`` too.

Usable alone too (as root)::

    .venv/bin/python scripts/benchlib/project_rollout.py --mib 4 --reps 1
"""

from __future__ import annotations

import json
import statistics
import sys
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path[:0] = [str(Path(__file__).resolve().parent.parent)]


import testbed
from benchlib import capabilities
from benchlib.bittorrent import MIB, BaselineError
from benchlib.model import Context
from benchlib.paired_run import PairedRun
from benchlib.project_swarm import SERVICE, Distribution, _checked, _summary, _Swarm, make_archive
from testbed import Testbed

__all__ = ["CANARY", "HEALTH_WAIT", "TARGETS", "WAVE", "baseline", "measure", "project", "requires"]

TARGETS = 16
CANARY = 1
WAVE = 4
HEALTH_WAIT = 1.0
"""Seconds each wave waits before its health check: small, so the transfers and installs show."""
"""``Context.cache`` key of the run both sides of the scenario share (its figures as JSON)."""
_ENDED = ("healthy", "failed", "reverted", "revert_failed", "unreachable", "already")


@dataclass
class Rollout:
    """One ``rollout_archive`` call: its time, its waves' times and what the coordinator sent."""

    seconds: float
    waves: int
    wave_seconds: list[float]
    wave_push_seconds: list[float]
    upload: int
    archive_bytes: int


def requires_here() -> str | None:
    """Why the rollout side cannot run with this code (no ``rollout_archive``), or ``None``."""
    from p2p_orchestrator import Orchestrator

    if getattr(Orchestrator, "rollout_archive", None) is None:
        return "no rollouts yet (issue 17): Orchestrator has no rollout_archive"
    return None


async def requires(ctx: Context) -> str | None:
    """The scenario's availability check: swarm distribution (issue 6) and rollouts (issue 17)."""
    reason = await capabilities.swarm(ctx)
    return reason if reason is not None else requires_here()


def _wave_times(progress: list[dict[str, Any]], waves: int) -> tuple[list[float], list[float]]:
    """(each wave's seconds, each wave's push seconds) from the ``rollout_progress`` events."""
    seconds, pushes = [], []
    begin = 0.0
    for wave in range(waves):
        lines = [p for p in progress if p.get("wave") == wave]
        if not lines:
            raise BaselineError(f"no rollout_progress event for wave {wave}")
        upgraded = [p["at"] for p in lines if p["state"] == "upgraded"]
        end = max(p["at"] for p in lines if p["state"] in _ENDED)
        pushes.append(round(max(upgraded, default=begin) - begin, 3))
        seconds.append(round(end - begin, 3))
        begin = end
    return seconds, pushes


class _Rollouts(_Swarm):
    """The 17 node processes: the coordinator (``node0``) and the 16 targets."""

    ORIGIN_ROLE = "admin"

    @property
    def targets(self) -> list[str]:
        return self.names[1:]

    def sent(self) -> int:
        return int(self.command(self.names[0], {"cmd": "counters"}, "counters", 60)["sent"])

    def rollout(self, size: int, version: str, health_wait: float, timeout: float) -> Rollout:
        """One sample: ``rollout_archive`` of a new archive to every target; checked."""
        path, _ = make_archive(self.workdir, size, version)
        archive_bytes = path.stat().st_size
        sent = self.sent()
        command = {
            "cmd": "rollout",
            "path": str(path),
            "targets": [self.ids[name] for name in self.targets],
            "canary": CANARY,
            "wave": WAVE,
            "health_wait": health_wait,
        }
        try:
            answer = self.command(self.names[0], command, "rolled_out", timeout)
        finally:
            path.unlink()
        upload = self.sent() - sent
        account = answer["result"]
        healthy = [peer for peer, t in account["targets"].items() if t.get("state") == "healthy"]
        if account.get("phase") != "succeeded" or len(healthy) != len(self.targets):
            names = {self.ids[name]: name for name in self.targets}
            reasons = {
                names.get(peer, peer): f"{t.get('state')}: {t.get('reason')}"
                for peer, t in account["targets"].items()
                if t.get("state") != "healthy"
            }
            raise BaselineError(
                f"rollout {account.get('id')} of {version}: {account.get('phase')} "
                f"({account.get('reason')}); counts {account.get('counts')}; not healthy: {reasons}"
            )
        self._check_current(version)
        waves = len(account["waves"])
        wave_seconds, wave_push_seconds = _wave_times(answer["progress"], waves)
        return Rollout(
            seconds=float(answer["seconds"]),
            waves=waves,
            wave_seconds=wave_seconds,
            wave_push_seconds=wave_push_seconds,
            upload=upload,
            archive_bytes=archive_bytes,
        )

    def swarm(self, size: int, version: str, timeout: float) -> tuple[Distribution, int]:
        """One baseline sample: a new archive installed on the coordinator, swarmed to the targets."""
        path, _ = make_archive(self.workdir, size, version)
        archive_bytes = path.stat().st_size
        try:
            self.command(self.names[0], {"cmd": "install", "path": str(path)}, "installed", 120)
        finally:
            path.unlink()
        sent = self.sent()
        command = {
            "cmd": "distribute",
            "service": SERVICE,
            "targets": [self.ids[name] for name in self.targets],
            "strategy": "swarm",
            "auto_start": True,
        }
        answer = self.command(self.names[0], command, "distributed", timeout)
        run = _checked(_summary("swarm", answer["seconds"], answer["result"], archive_bytes))
        upload = self.sent() - sent
        self._check_current(version)
        return run, upload

    def _check_current(self, version: str) -> None:
        wrong = {}
        for name in self.targets:
            answer = self.command(name, {"cmd": "version", "service": SERVICE}, "version", 60)
            if answer["version"] != version or not answer["running"]:
                wrong[name] = (answer["version"], answer["running"])
        if wrong:
            raise BaselineError(f"after {version}, targets not running it: {wrong}")


def measure(
    size: int,
    workdir: Path,
    *,
    targets: int = TARGETS,
    repetitions: int = 3,
    warmups: int = 1,
    health_wait: float = HEALTH_WAIT,
    roll_out: bool = True,
    stop: threading.Event | None = None,
) -> dict[str, Any]:
    """Interleaved rollouts (when ``roll_out``) and swarm distributions: ``{"samples", "extra",
    "baseline", "baseline_extra"}`` (seconds; the first ``warmups`` of each are dropped)."""
    workdir.mkdir(parents=True, exist_ok=True)
    one_link = size * 8 / 20e6
    timeout = 120.0 + 4 * one_link * targets
    rollouts: list[Rollout] = []
    swarms: list[tuple[Distribution, int]] = []
    version = iter(range(1, 10_000))
    with Testbed(targets + 1) as bed:
        nodes = _Rollouts(bed, workdir, stop)
        try:
            nodes.start()
            nodes.swarm(1024, f"1.0.{next(version)}", timeout)  # the seed: every sample is an upgrade
            for k in range(warmups + repetitions):
                rollout = (
                    nodes.rollout(size, f"1.0.{next(version)}", health_wait, timeout) if roll_out else None
                )
                swarm = nodes.swarm(size, f"1.0.{next(version)}", timeout)
                if k >= warmups:
                    if rollout is not None:
                        rollouts.append(rollout)
                    swarms.append(swarm)
            stats = nodes.close()
        except BaseException:
            nodes.peers.close()
            raise
        shaping = bed.shaping()
        delay_line = bed.delay_stats()
    archive = swarms[0][0].archive_bytes
    common = {
        "targets": targets,
        "hosts": targets + 1,
        "archive_bytes": archive,
        "repetitions": repetitions,
        "warmups": warmups,
        "one_link_seconds": round(one_link, 3),
        "node_peak_rss_mib": max(s.get("peak_rss_mib", 0) for s in stats.values()),
        "testbed": shaping,
        "delay_line": delay_line,
    }
    swarm_seconds = [run.seconds for run, _ in swarms]
    baseline_extra = {
        **common,
        "origin_upload_over_archive": round(statistics.median([sent / archive for _, sent in swarms]), 3),
        "origin_chunk_bytes_over_archive": round(
            statistics.median([run.origin_upload / archive for run, _ in swarms]), 3
        ),
        "from_peers_over_archive": round(
            statistics.median([run.from_peers / archive for run, _ in swarms]), 3
        ),
        "layout": "distribute_service(strategy='swarm', auto_start=True) from host 0 to the 16 targets,"
        " interleaved with the rollouts",
    }
    extra: dict[str, Any] = {}
    if rollouts:
        median = statistics.median([r.seconds for r in rollouts])
        waves = rollouts[0].waves
        extra = {
            **common,
            "canary": CANARY,
            "wave": WAVE,
            "waves": waves,
            "health_wait_seconds": health_wait,
            "all_succeeded": True,  # measure() raises on any rollout that did not
            "minus_health_waits_seconds": round(median - waves * health_wait, 3),
            "wave_seconds": [r.wave_seconds for r in rollouts],
            "wave_push_seconds": [r.wave_push_seconds for r in rollouts],
            "push_seconds_total": round(statistics.median([sum(r.wave_push_seconds) for r in rollouts]), 3),
            "coordinator_upload_over_archive": round(
                statistics.median([r.upload / archive for r in rollouts]), 3
            ),
            "coordinator_upload_bytes": [r.upload for r in rollouts],
            "swarm_seconds": [round(s, 3) for s in swarm_seconds],
            "over_swarm_same_run": round(median / statistics.median(swarm_seconds), 3),
            "minus_health_waits_over_swarm": round(
                (median - waves * health_wait) / statistics.median(swarm_seconds), 3
            ),
            "layout": "1 coordinator node + 1 target node per other testbed host, each its own process",
        }
    return {
        "samples": [r.seconds for r in rollouts],
        "extra": extra,
        "baseline": swarm_seconds,
        "baseline_extra": baseline_extra,
    }


def _measure(
    size: int, workdir: Path, *, repetitions: int, warmups: int, with_project: bool, stop: threading.Event
) -> dict[str, Any]:
    return measure(size, workdir, repetitions=repetitions, warmups=warmups, roll_out=with_project, stop=stop)


_RUN = PairedRun("rollout_16", _measure, requires)
baseline = _RUN.baseline
project = _RUN.project


def unavailable_reason() -> str | None:
    reason = testbed.unavailable_reason()
    if reason is not None:
        return f"the testbed cannot run here: {reason}"
    return requires_here()


def main() -> int:
    """``project_rollout.py [--mib M] [--reps R] [--warmups W] [--health-wait H]``: print the figures."""
    import argparse
    import tempfile

    parser = argparse.ArgumentParser(description="Measure a rollout in waves against a swarm distribution.")
    parser.add_argument("--targets", type=int, default=TARGETS)
    parser.add_argument("--mib", type=float, default=16.0)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--warmups", type=int, default=1)
    parser.add_argument("--health-wait", type=float, default=HEALTH_WAIT)
    args = parser.parse_args()
    reason = unavailable_reason()
    if reason is not None:
        print(reason, file=sys.stderr)
        return 1
    with tempfile.TemporaryDirectory(prefix="p2p-rollout-bench-") as work:
        figures = measure(
            int(args.mib * MIB), Path(work), targets=args.targets, repetitions=args.reps,
            warmups=args.warmups, health_wait=args.health_wait,
        )  # fmt: skip
    samples, swarm = figures["samples"], figures["baseline"]
    print(json.dumps({
        "seconds": samples, "median": statistics.median(samples),
        "swarm_seconds": swarm, "swarm_median": statistics.median(swarm),
        "ratio": round(statistics.median(samples) / statistics.median(swarm), 3),
        **figures["extra"], "swarm": figures["baseline_extra"],
    }, indent=2))  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
