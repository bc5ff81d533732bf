"""Run P2P Core services, unmodified, on a fresh orchestrator: install, start, stay up, answer.

Point it at a folder of service directories (P2P Core's ``dist/services/``)::

    python scripts/p2p_core_acceptance.py --services path/to/dist/services [--only NAME ...] [--json]

For each service directory it does what a P2P Core user would: packs it with
``tar -czf NAME.tar.gz NAME/``, installs it on a new orchestrator (its own
temporary home), and then checks that it

* started (the install starts it: P2P Core started every service it loaded);
* is still running ``--stay`` seconds later (default 5), with no restart;
* answers its built-in ``ping`` and ``get_service_info``;
* answers each of its own read-only methods: those named ``get_*`` or
  ``list_*`` that take no required parameters (found by reading ``main.py``).

It prints one line per service (or ``--json``), and the last lines of the
service's log when something failed.  Exit status 0 when every service passed.
"""

from __future__ import annotations

import argparse
import ast
import json
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import trio

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from p2p_orchestrator import Orchestrator, OrchestratorConfig, OrchestratorError  # noqa: E402
from p2p_orchestrator.config import RuntimeSettings, StoreSettings  # noqa: E402


def read_only_methods(main_py: Path) -> list[str]:
    """``get_*``/``list_*`` methods decorated with ``service_method`` that need no parameters."""
    tree = ast.parse(main_py.read_text(encoding="utf-8", errors="replace"))
    found = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.AsyncFunctionDef) or not node.name.startswith(("get_", "list_")):
            continue
        decorated = any(
            isinstance(d, ast.Call) and getattr(d.func, "id", getattr(d.func, "attr", "")) == "service_method"
            for d in node.decorator_list
        )
        required = len(node.args.args) - 1 - len(node.args.defaults)
        if decorated and required == 0 and not node.args.kwonlyargs:
            found.append(node.name)
    return sorted(set(found))


def pack(service_dir: Path, out: Path) -> Path:
    target = out / f"{service_dir.name}.tar.gz"
    subprocess.run(
        ["tar", "-czf", str(target), "--exclude=__pycache__", f"{service_dir.name}/"],
        cwd=service_dir.parent,
        check=True,
    )
    return target


async def try_service(service_dir: Path, stay: float, work: Path) -> dict[str, Any]:
    name = service_dir.name
    result: dict[str, Any] = {"service": name, "passed": False, "answers": {}, "problems": []}
    config = OrchestratorConfig(
        store=StoreSettings(fsync=False), runtime=RuntimeSettings(start_timeout=30.0, call_timeout=15.0)
    )
    home = work / f"home-{name}"
    archive = pack(service_dir, work)
    async with Orchestrator(home, config=config) as orch:
        try:
            installed = await orch.install_service(archive)
        except OrchestratorError as exc:
            result["problems"].append(f"install refused [{exc.code}]: {exc.message}")
            return result
        result["warnings"] = installed.get("warnings", [])
        if not installed.get("auto_started"):
            result["problems"].append(f"did not start: {installed.get('auto_start_error')}")
        else:
            await trio.sleep(stay)
            info = await orch.get_service_info(name)
            if info["state"] != "running" or info["restart_count"]:
                result["problems"].append(
                    f"not up after {stay:g} s: state {info['state']}, restarts {info['restart_count']}, "
                    f"last error {info['last_error']}"
                )
            for method in ["ping", "get_service_info", *read_only_methods(service_dir / "main.py")]:
                try:
                    answer = await orch.rpc.call(f"{name}/{method}", {})
                    result["answers"][method] = "ok"
                    if method == "ping" and answer.get("status") != "alive":
                        result["problems"].append(f"ping answered {answer!r}")
                except OrchestratorError as exc:
                    result["answers"][method] = f"[{exc.code}] {exc.message}"
                    result["problems"].append(f"{method}: [{exc.code}] {exc.message}")
        if result["problems"]:
            result["log_tail"] = await orch.service_logs(name, 15)
    result["passed"] = not result["problems"]
    return result


async def main(args: argparse.Namespace) -> int:
    root = Path(args.services)
    dirs = sorted(p for p in root.iterdir() if (p / "main.py").is_file())  # noqa: ASYNC240 - a one-off listing
    if args.only:
        dirs = [p for p in dirs if p.name in args.only]
    results = []
    with tempfile.TemporaryDirectory(prefix="p2p-core-acceptance-") as tmp:
        for service_dir in dirs:
            results.append(await try_service(service_dir, args.stay, Path(tmp)))
    if args.json:
        print(json.dumps(results, indent=2, default=str))
    else:
        for entry in results:
            verdict = "PASS" if entry["passed"] else "FAIL"
            answered = ", ".join(f"{m}={a}" if a != "ok" else m for m, a in entry["answers"].items())
            print(f"{verdict} {entry['service']}: answered {answered or 'nothing'}")
            for problem in entry["problems"]:
                print(f"    problem: {problem}")
            for warning in entry.get("warnings", []):
                print(f"    warning: {warning}")
            for line in entry.get("log_tail", []) if not entry["passed"] else []:
                print(f"    log: {line}")
    return 0 if all(entry["passed"] for entry in results) else 1


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--services", required=True, help="a folder of service directories")
    parser.add_argument("--only", nargs="*", help="only these services")
    parser.add_argument("--stay", type=float, default=5.0, help="seconds each must stay up")
    parser.add_argument("--json", action="store_true")
    sys.exit(trio.run(main, parser.parse_args()))
