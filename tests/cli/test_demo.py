"""`make demo` end to end: its script, as `make demo` runs it."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time

from tests.helpers import REPO


def test_demo_script_end_to_end() -> None:
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "demo.py")],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO,
        check=False,
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    assert time.monotonic() - started < 90, output
    for command in ("node --listen", "trust", "pack", "install", "distribute", "call example_service/greet"):
        assert f"$ p2p-orchestrator {command}" in output or f" {command}" in output, command
    assert "Hi, demo!" in done.stdout
    assert "demo done" in done.stdout
    work = re.search(r"\(working in (\S+):", done.stdout)
    assert work is not None and not os.path.exists(work.group(1))
    for pid in map(int, re.findall(r"\(pid (\d+)\)", done.stdout)):
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            continue
        raise AssertionError(f"node process {pid} outlived the demo")
    assert done.stdout.count("stopped (exit 0)") == 3
