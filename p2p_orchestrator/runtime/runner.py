"""The entry point of a service's child process.

The supervisor starts it as a script, in the service's data directory (its
working directory), with its version directory as ``--service-dir``::

    python -I -u .../p2p_orchestrator/runtime/runner.py NAME --service-dir DIR --fd 3 --parent PID --root DIR

or the node's fork server forks it from a process that imported the runtime
once (``runner.py --fork-server --fd N --parent PID --root DIR``, see
:mod:`~p2p_orchestrator.runtime._zygote`), and ``main`` runs in the forked child
with the same arguments.

``-I`` (isolated mode) keeps the environment's ``PYTHONPATH``, the user's site
directory and the current directory off ``sys.path``; ``-u`` makes the service's
prints reach its log at once.  It is run by path rather than with ``-m`` so that
the child neither needs the package installed nor runs ``p2p_orchestrator/__init__``
(which imports the store, sqlite and the archive code the child has no use
for): :func:`_bootstrap` registers the package as a lazy module whose
``__init__`` runs only if a service does ``from p2p_orchestrator import X``.

Its first act after that is ``prctl(PR_SET_PDEATHSIG, SIGKILL)``
(:mod:`~p2p_orchestrator.runtime._prctl`): the kernel kills the
child when the node's thread that started it dies, however the node dies.  If
the node is already gone (the parent pid changed) the runner exits at once.

It runs the service on the event loop its manifest chose (``--event-loop``:
``asyncio``, the default, or ``trio``), through anyio; on asyncio, trio is never
imported.  It runs under the node's interpreter, or under the interpreter of the
service's own virtual environment (see :mod:`~p2p_orchestrator.runtime.venvs`),
which finds anyio, trio and cbor2 through a ``.pth`` file placed after the
environment's own packages.
"""

from __future__ import annotations

import os
import sys


def _bootstrap(root: str) -> None:
    """Make ``p2p_orchestrator`` importable from ``root`` without running its ``__init__``."""
    import importlib.util
    from typing import Any

    package_dir = os.path.join(root, "p2p_orchestrator")
    spec = importlib.util.spec_from_file_location(
        "p2p_orchestrator", os.path.join(package_dir, "__init__.py"), submodule_search_locations=[package_dir]
    )
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    loader = spec.loader

    def load_on_first_use(name: str) -> Any:
        del module.__dict__["__getattr__"]
        loader.exec_module(module)
        return getattr(module, name)

    module.__getattr__ = load_on_first_use  # type: ignore[method-assign]
    sys.modules["p2p_orchestrator"] = module
    sys.path.append(root)  # for service_framework.py; _loader.isolate_path puts it last


def main(argv: list[str]) -> int:
    """Parse the arguments the supervisor passes, then serve the service until stopped."""
    import argparse
    import logging
    import resource
    from functools import partial
    from pathlib import Path

    parser = argparse.ArgumentParser(prog="p2p-orchestrator-runner")
    parser.add_argument("service")
    parser.add_argument("--service-dir", help="the service's version directory (default: the working one)")
    parser.add_argument("--fd", type=int, required=True, help="the inherited socket to the node")
    parser.add_argument("--parent", type=int, required=True, help="the node's pid")
    parser.add_argument("--root", required=True, help="the directory holding p2p_orchestrator")
    parser.add_argument("--memory-limit-mb", type=int, default=0, help="RLIMIT_AS in MiB; 0 for none")
    parser.add_argument("--max-calls", type=int, default=64, help="service calls the node sends at once")
    parser.add_argument("--event-loop", choices=("asyncio", "trio"), default="asyncio")
    parser.add_argument("--sandbox", action="store_true", help="confine the process with Landlock")
    parser.add_argument("--no-network", action="store_true", help="with --sandbox: forbid TCP")
    parser.add_argument(
        "--readable", action="append", default=[], help="with --sandbox: another readable path"
    )
    args = parser.parse_args(argv)

    import faulthandler
    import signal

    import anyio

    from p2p_orchestrator.runtime._host import serve

    # SIGUSR1 writes every thread's stack to the log, even while the event loop is
    # blocked: the supervisor sends it before killing a service that stopped answering.
    faulthandler.register(signal.SIGUSR1, file=sys.stderr, all_threads=True)

    logging.basicConfig(
        level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    if args.memory_limit_mb > 0:
        limit = args.memory_limit_mb * 1024 * 1024
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    service_dir = Path(args.service_dir) if args.service_dir else Path.cwd()
    sandbox: dict[str, object] = {"requested": args.sandbox, "applied": False, "abi": 0}
    if args.sandbox:  # before the event loop (it may start threads) and before the service's code
        from p2p_orchestrator.runtime._sandbox import confine

        report = confine(
            service_dir, Path(args.root), Path.cwd(), readable=args.readable, network=not args.no_network
        )
        sandbox.update(applied=report.applied, abi=report.abi, network=report.network)
        if not report.applied:
            print("[runner] WARNING: this kernel has no Landlock: the service is NOT confined", flush=True)
    return anyio.run(
        partial(serve, max_calls=max(1, args.max_calls), sandbox=sandbox),
        args.service,
        args.fd,
        service_dir,
        Path(args.root),
        backend=args.event_loop,
    )


if __name__ == "__main__":
    _bootstrap(sys.argv[sys.argv.index("--root") + 1])
    from p2p_orchestrator.runtime._prctl import die_with_parent

    try:
        die_with_parent(int(sys.argv[sys.argv.index("--parent") + 1]))
    except OSError as _exc:
        print(f"[runner] {_exc}", file=sys.stderr)
    if sys.argv[1] == "--fork-server":  # see runtime/_zygote.py: returns only in a forked child
        from p2p_orchestrator.runtime._zygote import preload, serve

        preload()
        sys.exit(main(serve(int(sys.argv[sys.argv.index("--fd") + 1]))))
    sys.exit(main(sys.argv[1:]))
