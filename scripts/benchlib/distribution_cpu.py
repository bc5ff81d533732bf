"""Where the CPU of ``distribute_parallel_8`` and its sequential baseline goes, per process.

    .venv/bin/python scripts/benchlib/distribution_cpu.py parallel --rounds 3
    .venv/bin/python scripts/benchlib/distribution_cpu.py sequential --rounds 3

The same layout as the scenario (:func:`benchlib.project_transfer.bench_nodes`: the origin in
this process, 8 target nodes in processes of their own, a new 16 MiB archive each round).  Each
round prints its wall time, the origin's CPU seconds, each target's (its process and the
processes it started: the fork server and the service, from ``/proc``), the CPU its installs
reported, and all that CPU over the wall time: how many of the machine's cores the round kept
busy.  Run it under ``py-spy record --subprocesses --gil`` for the profile of each side
(``spy_summary ... ROOT`` is the origin, ``... orchestrator_node`` the targets).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

if __package__ in (None, ""):
    sys.path[:0] = [str(Path(__file__).resolve().parent.parent), str(Path(__file__).resolve().parents[2])]

import psutil
import trio

from benchlib.model import Context
from benchlib.procs import own_cpu_seconds
from benchlib.project_transfer import MIB, archives, bench_nodes

__all__ = ["tree_cpu_seconds"]


def tree_cpu_seconds(pid: int) -> float:
    """CPU seconds of ``pid`` and its living descendants, user + system."""
    process = psutil.Process(pid)
    total = 0.0
    for member in [process, *process.children(recursive=True)]:
        try:
            times = member.cpu_times()
        except psutil.Error:
            continue
        total += times.user + times.system
    return total


async def _rounds(parallel: bool, rounds: int) -> None:
    ctx = Context(quick=False, workdir=Path(tempfile.mkdtemp(prefix="distribution-cpu-")))
    paths = await archives(ctx, "cpu", rounds + 1, 16 * MIB)
    async with bench_nodes(ctx, "cpu", 8, report_install_cpu=True) as bench:
        for number, path in enumerate(paths):
            await bench.install(path)
            before = [tree_cpu_seconds(t.pid) for t in bench.targets]
            origin_before, started = own_cpu_seconds(), time.perf_counter()
            if parallel:
                results = [await bench.distribute(bench.targets)]
            else:
                results = [await bench.distribute([target]) for target in bench.targets]
            wall = time.perf_counter() - started
            origin = own_cpu_seconds() - origin_before
            targets = [tree_cpu_seconds(t.pid) - b for t, b in zip(bench.targets, before, strict=True)]
            installs = sum(
                float(entry["result"]["bench_install_cpu_seconds"])
                for result in results
                for entry in result["results"].values()
            )
            label = "warm-up" if number == 0 else f"round {number}"
            print(
                f"{label}: wall {wall:.2f} s, origin {origin:.2f} s, targets {sum(targets):.2f} s "
                f"({' '.join(f'{t:.2f}' for t in targets)}), of which installs {installs:.2f} s, "
                f"CPU over wall {(origin + sum(targets)) / wall:.2f}",
                flush=True,
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("mode", choices=["parallel", "sequential"])
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    trio.run(_rounds, args.mode == "parallel", args.rounds)


if __name__ == "__main__":
    main()
