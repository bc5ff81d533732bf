"""Measure the project next to its baselines, in one run on one machine.

    python scripts/bench.py [--quick] [--only NAME ...] [--json FILE] [--write-docs] [--strict] [--list]

Every scenario of issue 8 is listed in the output, measured or with the reason it is not
(``missing``: its feature has not landed; ``skipped``: not selected, or this machine cannot run
it).  Baselines are real programs measured in the same run; ratios are project / baseline.

Exit status: 0 when every selected scenario ran or was honestly missing/skipped; 1 when one
raised or timed out (``error``), when a child process was left behind, or, with ``--strict``,
when a measured scenario missed its target; 2 for bad arguments; 128 + N when signal N (INT,
TERM, HUP) stopped the run, after every child process was stopped.

To see where a scenario's time goes, across its child processes too (docs/benchmarks.md):
``py-spy record --subprocesses --format raw -o prof.txt -- python scripts/bench.py --only NAME``
then ``PYTHONPATH=scripts python -m benchlib.spy_summary prof.txt ROOT``.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import signal
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
DOCS = REPO / "docs" / "benchmarks.md"


def _arguments(names: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="smaller sizes, fewer repetitions (< 2 min)")
    parser.add_argument("--only", nargs="+", metavar="NAME", choices=names, help="run only these scenarios")
    parser.add_argument("--json", type=Path, metavar="FILE", help="write the results as JSON to FILE")
    parser.add_argument("--write-docs", action="store_true", help=f"update the results table in {DOCS}")
    parser.add_argument(
        "--strict", action="store_true", help="exit 1 when a measured scenario misses its target"
    )
    parser.add_argument("--list", action="store_true", help="list the scenarios and exit")
    return parser.parse_args()


def _stray_children() -> list[str]:
    """Kill and describe any child process still alive (a runner failed to stop what it started)."""
    import psutil

    stray = psutil.Process().children(recursive=True)
    described = [f"{p.pid} {' '.join(p.cmdline())}" for p in stray if p.is_running()]
    for process in stray:
        process.kill()
    psutil.wait_procs(stray, timeout=5)
    return described


def _commit() -> dict[str, Any]:
    """The commit measured, and whether the working tree differs from it."""

    def git(*args: str) -> str | None:
        try:
            done = subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True, check=True)
        except (OSError, subprocess.CalledProcessError) as exc:
            print(f"bench: git {' '.join(args)} failed: {exc}", file=sys.stderr)
            return None
        return done.stdout.strip()

    status = git("status", "--porcelain", "--untracked-files=no")
    return {"commit": git("rev-parse", "HEAD"), "modified": bool(status) if status is not None else None}


def main() -> int:
    # Measure the working tree this script lives in, installed or not.
    sys.path.insert(1, str(REPO))
    import trio

    from benchlib.machine import machine_facts
    from benchlib.model import Context
    from benchlib.registry import SCENARIOS
    from benchlib.report import console_line, write_docs
    from benchlib.runner import Interrupted, exit_code, run_interruptible

    args = _arguments([s.name for s in SCENARIOS])
    if args.list:
        for scenario in SCENARIOS:
            print(f"{scenario.name:<22} {scenario.unit:<8} {scenario.description}")
        return 0
    command = shlex.join(["python", os.path.relpath(sys.argv[0], REPO), *sys.argv[1:]])
    document: dict[str, Any] = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": command,
        "quick": args.quick,
        "machine": machine_facts(),
        "source": _commit(),
    }
    selected = set(args.only or [s.name for s in SCENARIOS])
    print(f"bench: {command}", flush=True)
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="p2p-bench-") as workdir:
        ctx = Context(quick=args.quick, workdir=Path(workdir))

        def report(result: dict[str, Any]) -> None:
            print(console_line(result), flush=True)

        try:
            results = trio.run(run_interruptible, ctx, SCENARIOS, selected, report)
        except (Interrupted, KeyboardInterrupt) as exc:
            print(f"bench: {exc or 'interrupted'}; no results written", file=sys.stderr)
            return 128 + (exc.signum if isinstance(exc, Interrupted) else signal.SIGINT)
        finally:
            stray = _stray_children()
            if stray:
                print(f"bench: killed {len(stray)} child process(es) left behind: {stray}", file=sys.stderr)
    document["seconds"] = round(time.monotonic() - started, 1)
    document["scenarios"] = results
    document["summary"] = {
        s: sum(r["status"] == s for r in results) for s in ("ok", "missing", "skipped", "error")
    }
    document["stray_processes"] = stray
    if args.json:
        args.json.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
    if args.write_docs:
        write_docs(DOCS, document)
        print(f"bench: results table written to {DOCS}")
    print(f"bench: {document['summary']} in {document['seconds']} s")
    return 1 if stray else exit_code(results, args.strict)


if __name__ == "__main__":
    sys.exit(main())
