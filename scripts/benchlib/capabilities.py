"""Availability checks: is a project feature there, can this machine run a scenario?

Each check looks at what the code can do (an import, an attribute, a refusal code), never at
a flag, so a scenario turns from ``missing`` to measured the day its feature lands.  Results
are cached per run in :attr:`Context.cache`.
"""

from __future__ import annotations

import importlib
import inspect
import os
import shutil
import subprocess
from collections.abc import Awaitable, Callable

import trio

from benchlib.model import Check, Context, describe_error

__all__ = ["all_of", "node", "runtime", "swarm", "testbed", "transfer"]

SYSTEM_PYTHON = "/usr/bin/python3"
"""Debian's Python, where ``python3-libtorrent`` installs (the swarm baseline)."""


def _cached(name: str) -> Callable[[Callable[[Context], Awaitable[str | None]]], Check]:
    def wrap(check: Callable[[Context], Awaitable[str | None]]) -> Check:
        async def cached(ctx: Context) -> str | None:
            if name not in ctx.cache:
                try:
                    ctx.cache[name] = await check(ctx)
                except Exception as exc:
                    ctx.cache[name] = exc  # each scenario that needs this check reports the same error
            found = ctx.cache[name]
            if found is None or isinstance(found, str):
                return found
            raise RuntimeError(f"the {name} availability check failed: {describe_error(found)}") from found

        cached.__doc__ = check.__doc__
        cached.__name__ = check.__name__
        return cached

    return wrap


def all_of(*checks: Check) -> Check:
    """A check that passes when every one of ``checks`` does (the first reason otherwise)."""

    async def combined(ctx: Context) -> str | None:
        for check in checks:
            reason = await check(ctx)
            if reason is not None:
                return reason
        return None

    return combined


@_cached("runtime")
async def runtime(ctx: Context) -> str | None:
    """The service runtime (issue 3): ``start_service`` runs the example instead of refusing."""
    from benchlib.project import EXAMPLE, example_archive, private_config
    from p2p_orchestrator import Orchestrator, ServiceManagementError

    archive = example_archive(ctx.workdir / "probe-src")
    async with Orchestrator(ctx.workdir / "probe-home", config=private_config()) as orch:
        await orch.install_service(archive)
        try:
            await orch.start_service(EXAMPLE)
        except ServiceManagementError as exc:
            if exc.code == "runtime_unavailable":
                return f"no service runtime yet (issue 3): start_service says {exc}"
            raise
        await orch.stop_service(EXAMPLE)
    return None


@_cached("node")
async def node(ctx: Context) -> str | None:
    """The network node (issue 4): ``p2p_orchestrator.testing.swarm`` starts connected nodes."""
    try:
        testing = importlib.import_module("p2p_orchestrator.testing")
    except ModuleNotFoundError as exc:
        if exc.name != "p2p_orchestrator.testing":
            raise
        return "no network node yet (issue 4): p2p_orchestrator.testing does not exist"
    if not hasattr(testing, "swarm"):
        return "no network node yet (issue 4): p2p_orchestrator.testing has no swarm()"
    return None


@_cached("transfer")
async def transfer(ctx: Context) -> str | None:
    """Archive transfer (issue 5): the node exists and ``Orchestrator.distribute_service`` too."""
    from p2p_orchestrator import Orchestrator

    reason = await node(ctx)
    if reason is not None:
        return reason
    if getattr(Orchestrator, "distribute_service", None) is None:
        return "no archive transfer yet (issue 5): Orchestrator has no distribute_service"
    return None


@_cached("swarm")
async def swarm(ctx: Context) -> str | None:
    """Swarm distribution (issue 6): the node's transfers accept ``strategy="swarm"``."""
    from p2p_orchestrator import Orchestrator

    reason = await transfer(ctx)
    if reason is not None:
        return reason
    distribute = getattr(Orchestrator, "distribute_service", None)
    if distribute is None or "strategy" not in inspect.signature(distribute).parameters:
        return "no swarm distribution yet (issue 6): distribute_service has no strategy parameter"
    from p2p_orchestrator.node.distribution.transfers import NodeTransfers

    if "swarm" not in NodeTransfers.STRATEGIES:
        known = ", ".join(sorted(NodeTransfers.STRATEGIES))
        return f"no swarm distribution yet (issue 6): distribute_service strategies are {known}"
    return None


async def _run(argv: list[str]) -> subprocess.CompletedProcess[bytes]:
    return await trio.run_process(argv, capture_stdout=True, capture_stderr=True, check=False)


@_cached("testbed")
async def testbed(ctx: Context) -> str | None:
    """Whether the swarm testbed can run: root, iproute2, network namespaces, libtorrent."""
    problems = []
    if os.geteuid() != 0:
        problems.append("not root")
    problems += [f"no {tool} (iproute2)" for tool in ("ip", "tc") if shutil.which(tool) is None]
    if shutil.which("unshare") is None:
        problems.append("no unshare (util-linux) to probe network namespaces")
    elif os.geteuid() == 0:
        probe = await _run(["unshare", "--net", "true"])
        if probe.returncode != 0:
            problems.append(f"cannot create a network namespace ({probe.stderr.decode().strip()})")
    try:
        libtorrent = (await _run([SYSTEM_PYTHON, "-c", "import libtorrent"])).returncode == 0
    except FileNotFoundError:  # no Debian Python at all
        libtorrent = False
    if not libtorrent:
        problems.append("no libtorrent for the BitTorrent baseline (apt-get install python3-libtorrent)")
    if problems:
        return "the swarm testbed cannot run here: " + "; ".join(problems)
    return None
