"""`make demo`: a walk through the local life cycle of the bundled example service.

Each step prints the command a user would type, then runs exactly that command
against a temporary node home, so what you see is what the CLI does.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
CLI = Path(sys.executable).with_name("p2p-orchestrator")


def step(title: str, *args: str, env: dict[str, str]) -> None:
    print(f"\n== {title}\n$ p2p-orchestrator {shlex.join(args)}", flush=True)
    subprocess.run([str(CLI), *args], check=True, env=env, cwd=env["DEMO_DIR"])


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="p2p-orchestrator-demo-") as tmp:
        env = {**os.environ, "P2P_ORCHESTRATOR_HOME": str(Path(tmp) / "home"), "DEMO_DIR": tmp}
        print(f"(demo node home: {env['P2P_ORCHESTRATOR_HOME']})")
        step(
            "Pack the example service",
            "pack",
            str(REPO / "examples" / "example_service"),
            "-o",
            "example_service.tar.gz",
            env=env,
        )
        step("Install it", "install", "example_service.tar.gz", env=env)
        step("List installed services", "list", env=env)
        step("Describe it", "info", "example_service", env=env)
        step(
            "Export it again (byte-identical to what was installed)",
            "export",
            "example_service",
            "-o",
            "exported.tar.gz",
            env=env,
        )
        same = (Path(tmp) / "exported.tar.gz").read_bytes() == (
            Path(tmp) / "example_service.tar.gz"
        ).read_bytes()
        print(f"exported archive identical to the installed one: {same}")
        step("Orchestrator status", "status", env=env)
        return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
