"""The project side of ``swarm_n1`` .. ``swarm_n16`` (issue 6): ``distribute_service`` on the testbed.

One run: a testbed of N + 1 hosts (:mod:`testbed`: 20 Mbit/s each way per host link, 5 ms one
way, as for the BitTorrent baseline), one node process per host (:mod:`benchlib.programs.swarm_node`),
the origin on host 0 and a target on each of hosts 1..N.  Roles: every target gives the origin
``deployer`` and every other target ``reader`` (what a swarm needs: the origin pushes, targets
fetch from each other); unknown peers get nothing.  Every node dials every later one first.

A sample is one ``distribute_service`` call on the origin, from the call to its return -- every
target has received, verified and installed the archive (a new random 16 MiB service archive
each time, so nothing is deduplicated) -- measured for ``strategy="swarm"`` (the samples) and for
the single-origin parallel ``strategy="push"`` of issue 5 (in ``extra``), in the same testbed
run.  "Origin upload" is the chunk bytes the origin sent, from each target's ``transfer``
figures; ``from_peers`` is what targets got from each other.

Usable alone too (as root)::

    .venv/bin/python scripts/benchlib/project_swarm.py 4 --reps 2
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path[:0] = [str(Path(__file__).resolve().parent.parent)]

import trio

import testbed
from benchlib.bittorrent import MIB, BaselineError, _Peers
from benchlib.model import Context, Measurement
from benchlib.procs import PYTHONPATH, copy_example, program_argv
from testbed import Testbed

__all__ = ["SERVICE", "measure", "project"]

SERVICE = "swarm_bench"
_PORT = 4001
_STARTUP = 120.0


@dataclass
class Distribution:
    """One ``distribute_service`` call: its time and what moved."""

    strategy: str
    seconds: float
    ok: bool
    origin_upload: int
    from_peers: int
    archive_bytes: int
    errors: dict[str, str]
    cancelled: int = 0
    """Bytes of chunks the targets received after cancelling them (endgame duplicates), all together."""
    cpu: dict[str, float] = field(default_factory=dict)
    """CPU seconds spent during the call: ``origin``, ``targets`` (their sum), ``delay_line``."""


def make_archive(workdir: Path, size: int, version: str) -> tuple[Path, str]:
    """A service archive of about ``size`` bytes (random, incompressible payload); (path, sha256)."""
    from p2p_orchestrator import pack_service

    source = copy_example(workdir / f"src-{version}" / SERVICE)
    manifest = json.loads((source / "manifest.json").read_text(encoding="utf-8"))
    manifest.update({"name": SERVICE, "version": version})
    (source / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
    (source / "assets").mkdir(exist_ok=True)
    (source / "assets" / "payload.bin").write_bytes(os.urandom(size))
    path = workdir / f"{SERVICE}-{version}.tar.gz"
    with path.open("wb") as out:
        digest = pack_service(source, out)
    shutil.rmtree(source.parent)
    return path, digest


def _summary(strategy: str, seconds: float, result: dict[str, Any], size: int) -> Distribution:
    origin = peers = cancelled = 0
    errors = {}
    for target, entry in result["results"].items():
        if not entry["success"]:
            errors[target] = entry["error"]
            continue
        transfer = entry["result"].get("transfer", {})
        origin += transfer.get("bytes_sent", 0)
        peers += transfer.get("bytes_from_peers", 0)
        cancelled += transfer.get("bytes_cancelled", 0)
    return Distribution(strategy, seconds, not errors, origin, peers, size, errors, cancelled=cancelled)


class _Swarm:
    """The node processes of one testbed; every command answered or raised."""

    ORIGIN_ROLE = "deployer"
    """The role every target gives the origin (``rollout_16``'s coordinator needs ``admin``)."""

    def __init__(self, bed: Testbed, workdir: Path, stop: threading.Event | None) -> None:
        self.peers = _Peers(bed, stop)
        self.bed = bed
        self.workdir = workdir
        self.names = [f"node{i}" for i in range(len(bed.hosts))]
        self.ids: dict[str, str] = {}

    def start(self) -> None:
        from p2p_orchestrator.node.identity import load_or_create_identity, peer_id_of

        homes = {name: self.workdir / name for name in self.names}
        for name, home in homes.items():
            self.ids[name] = peer_id_of(load_or_create_identity(home))
        origin = self.ids[self.names[0]]
        for i, name in enumerate(self.names):
            roles = {} if i == 0 else {origin: self.ORIGIN_ROLE}
            roles.update({self.ids[o]: "reader" for o in self.names[1:] if o != name})
            settings = homes[name] / "bench-settings.json"
            listen = f"/ip4/{self.bed.address(i)}/tcp/{_PORT}"
            settings.write_text(json.dumps({"listen": listen, "roles": roles}), encoding="utf-8")
            argv = program_argv("swarm_node", str(homes[name]), str(settings))
            self.peers.start(name, i, ["env", f"PYTHONPATH={PYTHONPATH}", *argv])
        ready = self.peers.wait_for(self.names, "ready", time.monotonic() + _STARTUP)
        for i, name in enumerate(self.names[:-1]):
            later = [ready[other]["addr"] for other in self.names[i + 1 :]]
            self.command(name, {"cmd": "connect", "addrs": later}, "connected", 60)

    def command(self, name: str, command: dict[str, Any], event: str, timeout: float) -> dict[str, Any]:
        self.peers.send(name, json.dumps(command))
        return self.peers.wait_for([name], event, time.monotonic() + timeout)[name]

    def distribute(
        self, targets: int, strategy: str, size: int, version: str, timeout: float
    ) -> Distribution:
        path, _ = make_archive(self.workdir, size, version)
        archive_bytes = path.stat().st_size
        try:
            self.command(self.names[0], {"cmd": "install", "path": str(path)}, "installed", 120)
        finally:
            path.unlink()
        command = {
            "cmd": "distribute",
            "service": SERVICE,
            "targets": [self.ids[name] for name in self.names[1 : targets + 1]],
            "strategy": strategy,
        }
        nodes = self.names[: targets + 1]
        before, line_before = self.cpu(nodes), self.delay_line_cpu()
        answer = self.command(self.names[0], command, "distributed", timeout)
        after, line_after = self.cpu(nodes), self.delay_line_cpu()
        run = _summary(strategy, answer["seconds"], answer["result"], archive_bytes)
        run.cpu = {
            "origin": after[nodes[0]] - before[nodes[0]],
            "targets": sum(after[name] - before[name] for name in nodes[1:]),
            "delay_line": line_after - line_before,
        }
        return run

    def cpu(self, names: list[str]) -> dict[str, float]:
        """Each node process's own CPU seconds so far (not its services')."""
        for name in names:
            self.peers.send(name, json.dumps({"cmd": "cpu"}))
        answers = self.peers.wait_for(names, "cpu", time.monotonic() + 30)
        return {name: float(answers[name]["cpu_seconds"]) for name in names}

    def delay_line_cpu(self) -> float:
        """The userspace delay line's CPU seconds so far (0 with netem: the kernel's, not counted)."""
        stats = self.bed.delay_stats() or {}
        return float(stats.get("keeper_user_seconds", 0.0)) + float(stats.get("keeper_system_seconds", 0.0))

    def close(self) -> dict[str, Any]:
        try:
            return self.peers.stop(self.names, time.monotonic() + 60)
        finally:
            self.peers.close()


def _checked(run: Distribution) -> Distribution:
    if not run.ok:
        raise BaselineError(f"a {run.strategy} distribution failed: {run.errors}")
    return run


def measure(
    targets: int,
    size: int,
    workdir: Path,
    *,
    repetitions: int = 3,
    warmups: int = 1,
    push_repetitions: int = 1,
    also_one: bool = False,
    stop: threading.Event | None = None,
) -> tuple[list[float], dict[str, Any]]:
    """Swarm ``repetitions`` times (after ``warmups``), push ``push_repetitions`` times; (swarm s, extra)."""
    workdir.mkdir(parents=True, exist_ok=True)
    one_link = size * 8 / 20e6
    timeout = 120.0 + 4 * one_link * targets
    runs: list[Distribution] = []
    pushes: list[Distribution] = []
    ones: list[Distribution] = []
    version = iter(range(1, 10_000))
    with Testbed(targets + 1) as bed:
        swarm = _Swarm(bed, workdir, stop)
        try:
            swarm.start()
            for k in range(warmups + repetitions):
                run = _checked(swarm.distribute(targets, "swarm", size, f"1.0.{next(version)}", timeout))
                if k >= warmups:
                    runs.append(run)
                if also_one and k >= warmups:
                    ones.append(swarm.distribute(1, "swarm", size, f"1.0.{next(version)}", timeout))
            for _ in range(push_repetitions):
                pushes.append(swarm.distribute(targets, "push", size, f"1.0.{next(version)}", timeout))
            stats = swarm.close()
        except BaseException:
            swarm.peers.close()
            raise
        shaping = bed.shaping()
        delay_line = bed.delay_stats()
    archive = runs[0].archive_bytes
    extra: dict[str, Any] = {
        "targets": targets,
        "hosts": targets + 1,
        "archive_bytes": archive,
        "repetitions": repetitions,
        "warmups": warmups,
        "origin_upload_bytes": statistics.median(r.origin_upload for r in runs),
        "origin_upload_over_archive": round(statistics.median(r.origin_upload for r in runs) / archive, 3),
        "from_peers_over_archive": round(statistics.median(r.from_peers for r in runs) / archive, 3),
        "cancelled_over_archive": round(statistics.median(r.cancelled for r in runs) / archive, 3),
        "push_seconds": [round(p.seconds, 3) for p in pushes],
        "push_origin_upload_over_archive": [round(p.origin_upload / archive, 3) for p in pushes],
        "push_ok": all(p.ok for p in pushes),
        "one_link_seconds": round(one_link, 3),
        "node_peak_rss_mib": max(s.get("peak_rss_mib", 0) for s in stats.values()),
        "cpu_seconds": {  # medians over the swarm runs: where the machine's two cores went
            part: round(statistics.median(r.cpu[part] for r in runs), 2) for part in runs[0].cpu
        },
        "cpu_over_wall": round(statistics.median(sum(r.cpu.values()) / r.seconds for r in runs), 2),
        "testbed": shaping,
        "delay_line": delay_line,
        "layout": "1 origin node + 1 target node per other testbed host, each its own process",
    }
    if ones:
        extra["t1_seconds"] = round(statistics.median(o.seconds for o in ones), 3)
    return [r.seconds for r in runs], extra


def _sizes(quick: bool) -> tuple[int, int, int]:
    """(payload bytes, repetitions, warm-ups) for the mode."""
    return (4 * MIB, 2, 0) if quick else (16 * MIB, 3, 1)


def project(hosts: int) -> Any:
    """The project runner of ``swarm_n<hosts>`` (registered in :mod:`benchlib.registry`)."""

    async def run(ctx: Context) -> Measurement:
        size, repetitions, warmups = _sizes(ctx.quick)
        workdir = ctx.workdir / f"swarm-n{hosts}"
        stop, done = threading.Event(), threading.Event()
        t1 = ctx.cache.get("swarm_t1")
        also_one = hosts > 1 and not isinstance(t1, str)

        def measure_here() -> tuple[list[float], dict[str, Any]]:
            try:
                return measure(hosts, size, workdir, repetitions=repetitions, warmups=warmups,
                               also_one=also_one, stop=stop)  # fmt: skip
            finally:
                shutil.rmtree(workdir, ignore_errors=True)
                done.set()

        try:
            samples, extra = await trio.to_thread.run_sync(measure_here, abandon_on_cancel=True)
        except BaseException:
            stop.set()
            with trio.CancelScope(shield=True):
                await trio.to_thread.run_sync(done.wait, 60.0)
            raise
        median = statistics.median(samples)
        ctx.cache[f"swarm_n{hosts}"] = str(median)  # auto_update_n16 reports swarm_n16 next to its own
        if hosts == 1:
            ctx.cache["swarm_t1"] = str(median)
            extra["t1_seconds"] = round(median, 3)
        elif isinstance(t1, str):
            extra["t1_seconds"] = float(t1)
        if "t1_seconds" in extra:
            extra[f"t{hosts}_over_t1"] = round(median / extra["t1_seconds"], 3)
        return Measurement(samples, extra)

    return run


def unavailable_reason() -> str | None:
    reason = testbed.unavailable_reason()
    return None if reason is None else f"the testbed cannot run here: {reason}"


def main() -> int:
    """``project_swarm.py N [--mib M] [--reps R]``: measure and print the JSON figures."""
    import argparse
    import tempfile

    parser = argparse.ArgumentParser(description="Measure swarm and push distribution on the testbed.")
    parser.add_argument("targets", type=int)
    parser.add_argument("--mib", type=float, default=16.0)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--warmups", type=int, default=1)
    parser.add_argument("--push-reps", type=int, default=1)
    parser.add_argument("--with-one", action="store_true", help="also measure N = 1 after each swarm run")
    args = parser.parse_args()
    reason = unavailable_reason()
    if reason is not None:
        print(reason, file=sys.stderr)
        return 1
    with tempfile.TemporaryDirectory(prefix="p2p-swarm-bench-") as work:
        samples, extra = measure(
            args.targets, int(args.mib * MIB), Path(work), repetitions=args.reps, warmups=args.warmups,
            push_repetitions=args.push_reps, also_one=args.with_one,
        )  # fmt: skip
    print(json.dumps({"seconds": samples, "median": statistics.median(samples), **extra}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
