"""Summarize a py-spy ``--format raw`` profile: the frames that hold most samples, per process.

    py-spy record --subprocesses --rate 500 --format raw -o prof.txt -- \\
        .venv/bin/python scripts/bench.py --only install_to_running
    PYTHONPATH=scripts python -m benchlib.spy_summary prof.txt runtime/runner.py

MATCH selects the processes whose command line contains it (``ROOT`` selects the profiled
process itself, without its children).  Each line is a frame with the share of the selected
samples in which it is on the stack (inclusive time), file line numbers folded together; with
``--self``, the share in which it is the innermost frame (where the time is spent), lines kept.
``--exclude TEXT`` leaves out the samples with a frame containing TEXT (e.g. the install a
figure takes out: ``--exclude ServiceStore.stage``).  Record with ``--gil`` to keep only the
samples of a thread holding the GIL: a thread waiting in ``epoll`` or on a lock is otherwise
often counted as running.
"""

from __future__ import annotations

import argparse
import re
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

__all__ = ["summarize_profile"]

ROOT = "ROOT"


def summarize_profile(
    path: Path, match: str, top: int = 40, *, innermost: bool = False, exclude: Sequence[str] = ()
) -> list[str]:
    """The report lines for the processes of ``path`` whose command line contains ``match``.

    ``innermost``: count each sample's innermost frame only (self time), not every frame on the
    stack.  ``exclude``: leave out the samples with a frame containing any of these texts.
    """
    inclusive: Counter[str] = Counter()
    total = 0
    processes = set()
    for line in path.read_text(encoding="utf-8").splitlines():
        stack, _, count = line.rpartition(" ")
        frames = stack.split(";")
        owners = [f for f in frames if f.startswith("process ")]
        if not owners or (len(owners) != 1 if match == ROOT else match not in owners[-1]):
            continue
        if any(text in frame for frame in frames for text in exclude):
            continue
        if innermost and frames[-1].startswith("process "):
            continue  # no Python frame: nothing to say where the time went
        processes.add(owners[-1])
        total += int(count)
        if innermost:
            inclusive[frames[-1]] += int(count)
            continue
        seen = {re.sub(r":\d+\)$", ")", f) for f in frames if not f.startswith("process ")}
        for frame in seen:
            inclusive[frame] += int(count)
    lines = [f"{len(processes)} process(es), {total} samples"]
    lines += [f"{n:7d} {100 * n / total:5.1f}%  {frame}" for frame, n in inclusive.most_common(top)]
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("profile", type=Path, help="py-spy record --format raw output")
    parser.add_argument("match", help=f"a piece of the processes' command line, or {ROOT}")
    parser.add_argument("--top", type=int, default=40, help="how many frames to show")
    parser.add_argument("--self", dest="innermost", action="store_true", help="innermost frames only")
    parser.add_argument("--exclude", action="append", default=[], help="drop samples with such a frame")
    args = parser.parse_args()
    print(
        "\n".join(
            summarize_profile(
                args.profile, args.match, args.top, innermost=args.innermost, exclude=args.exclude
            )
        )
    )


if __name__ == "__main__":
    main()
