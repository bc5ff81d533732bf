"""The project side of ``hundred_services_pss`` (issue 18): what 100 idle services cost in memory.

A node runs in a process of its own (:mod:`benchlib.programs.services_node`, the default
configuration) with 100 copies of the example service (asyncio, Landlock on), each under its own
name; once all run and :data:`~benchlib.baselines_process.IDLE_SETTLE` seconds have passed, the
``Pss`` of every service process and its descendants is summed from ``/proc/<pid>/smaps_rollup``,
a few times, :data:`~benchlib.baselines_process.IDLE_READINGS_APART` seconds apart, with the
``Pss`` of the node's fork server (which the services are forked from) added.  PSS counts
a page shared by k processes as 1/k in each, so the sum is what the services take together; the
RSS sum (every shared page counted in each process) and the node process's own RSS and PSS are
reported beside it.
"""

from __future__ import annotations

import json
import statistics
from pathlib import Path

import psutil
import trio

from benchlib.baselines_process import IDLE_READINGS_APART, IDLE_SETTLE, sum_memory
from benchlib.model import Context, Measurement
from benchlib.procs import LineReader, child, memory_rollup_mib, program_argv, program_env
from benchlib.project import example_archive

__all__ = ["hundred_services_pss"]

_STOP_ALL = 120.0
"""Seconds the node may take to stop every service and exit once its stdin closes."""


def _write_archives(root: Path, names: list[str]) -> list[Path]:
    """One archive file ``NAME.tar.gz`` per name: the example service (asyncio) under that name."""
    folder = root / "archives"
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for name in names:
        path = folder / f"{name}.tar.gz"
        path.write_bytes(example_archive(root / "src", name))
        paths.append(path)
    return paths


def _with_descendants(pids: list[int]) -> list[int]:
    """``pids`` and every living descendant of theirs (a service that starts processes pays for them)."""
    found = list(pids)
    for pid in pids:
        try:
            found += [child.pid for child in psutil.Process(pid).children(recursive=True)]
        except psutil.NoSuchProcess:
            continue
    return found


def _kill_leftovers(pids: list[int]) -> list[int]:
    """SIGKILL any of the service processes ``pids`` still alive after their node exited; those pids."""
    left = []
    for pid in pids:
        try:
            process = psutil.Process(pid)
            if "runner.py" in " ".join(process.cmdline()):
                process.kill()
                left.append(pid)
        except psutil.NoSuchProcess:
            continue
    return left


async def hundred_services_pss(ctx: Context, count: int = 100) -> Measurement:
    """Total PSS of ``count`` idle example services on one node (a node process of its own), in MiB."""
    names = [f"svc_{number:03d}" for number in range(count)]
    root = ctx.workdir / "pss"
    archives = await trio.to_thread.run_sync(_write_archives, root, names)
    samples, rss_sums, node_rss, node_pss, fork_pss, counted = [], [], [], [], [], []
    argv = program_argv("services_node", str(root / "home"), *map(str, archives))
    async with child(argv, env=program_env()) as process:
        if process.stdout is None or process.stdin is None:
            raise RuntimeError("services_node started without pipes")
        with trio.fail_after(300):
            ready = json.loads(await LineReader(process.stdout).line())
        services: dict[str, int | None] = ready["services"]
        if sorted(services) != names or not all(isinstance(pid, int) for pid in services.values()):
            raise RuntimeError(f"services_node did not report a pid for every service: {services}")
        service_pids = [int(pid) for pid in services.values() if pid is not None]
        await trio.sleep(IDLE_SETTLE)
        for number in range(ctx.pick(3, 5)):
            if number:
                await trio.sleep(IDLE_READINGS_APART)
            pids = _with_descendants(service_pids)
            totals = sum_memory(pids)
            node = memory_rollup_mib(int(ready["node"]))
            # the fork server exists for the services: its share of the pages they share counts with theirs
            forks = memory_rollup_mib(int(ready["fork_server"])) if ready.get("fork_server") else {"Pss": 0.0}
            samples.append(totals["Pss"] + forks["Pss"])
            fork_pss.append(forks["Pss"])
            rss_sums.append(totals["Rss"])
            node_rss.append(node["Rss"])
            node_pss.append(node["Pss"])
            counted.append(len(pids))
        await process.stdin.aclose()  # the node stops every service, then exits
        with trio.move_on_after(_STOP_ALL):
            await process.wait()
    leftovers = _kill_leftovers(service_pids)
    if leftovers:
        raise RuntimeError(f"{len(leftovers)} service process(es) outlived their node: {leftovers}")
    pss = statistics.median(samples)
    return Measurement(
        samples,
        {
            "services": count,
            "processes_counted": max(counted),
            "rss_sum_mib": round(statistics.median(rss_sums), 1),
            "per_service_pss_mib": round(pss / count, 2),
            "per_service_rss_mib": round(statistics.median(rss_sums) / count, 2),
            "node_rss_mib": round(statistics.median(node_rss), 1),
            "node_pss_mib": round(statistics.median(node_pss), 1),
            "fork_server_pss_mib": round(statistics.median(fork_pss), 1),
            "install_and_start_all_seconds": round(float(ready["start_all_seconds"]), 2),
        },
    )
