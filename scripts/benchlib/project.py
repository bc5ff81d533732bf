"""The project side of the local scenarios, through the public ``Orchestrator`` API.

Each runner opens an orchestrator in a private home under the run's scratch directory.  They
run only where :func:`benchlib.capabilities.runtime` finds the service runtime; until then
their scenarios are reported ``missing`` and these functions are not called.
"""

from __future__ import annotations

import json
import tempfile
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import replace
from pathlib import Path

import psutil
import trio

from benchlib.model import Context, Measurement
from benchlib.procs import copy_example, rss_mib
from p2p_orchestrator import Orchestrator, OrchestratorConfig, pack_service_bytes

__all__ = [
    "EXAMPLE",
    "example_archive",
    "hundred_services",
    "install_to_running",
    "install_to_running_trio",
    "install_to_running_unconfined",
    "local_call",
    "private_config",
    "restart_latency",
    "service_idle_rss",
    "service_idle_rss_trio",
]

EXAMPLE = "example_service"
SETTLE = 0.5
"""Seconds a started service is left alone before its idle RSS is read (as for the baseline)."""


def private_config(*, sandbox: bool = True) -> OrchestratorConfig:
    """The default configuration (nothing read from an operator's file); ``sandbox=False`` turns Landlock off."""
    config = OrchestratorConfig()
    return replace(config, runtime=replace(config.runtime, sandbox=sandbox))


def example_archive(
    root: Path, name: str = EXAMPLE, version: str = "1.0.0", event_loop: str = "asyncio"
) -> bytes:
    """The example service packed as ``name`` at ``version``, on ``event_loop`` (built afresh under ``root``)."""
    root.mkdir(parents=True, exist_ok=True)
    target = copy_example(Path(tempfile.mkdtemp(dir=root)) / name)
    manifest = json.loads((target / "manifest.json").read_text(encoding="utf-8"))
    manifest.update({"name": name, "version": version, "event_loop": event_loop})
    (target / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
    return pack_service_bytes(target)


@asynccontextmanager
async def _orchestrator(ctx: Context, label: str, *, sandbox: bool = True) -> AsyncIterator[Orchestrator]:
    async with Orchestrator(ctx.workdir / label / "home", config=private_config(sandbox=sandbox)) as orch:
        yield orch


async def _wait_running(orch: Orchestrator, name: str) -> None:
    """Until ``is_running(name)`` (polled each millisecond: the API has no event to wait on)."""
    with trio.fail_after(60):
        while not orch.is_running(name):  # noqa: ASYNC110
            await trio.sleep(0.001)


async def _install_and_start(orch: Orchestrator, archive: bytes, name: str = EXAMPLE) -> None:
    result = await orch.install_service(archive)
    if not result.get("auto_started"):
        await orch.start_service(name)
    await _wait_running(orch, name)


async def install_to_running(ctx: Context) -> Measurement:
    """``install_service`` (and ``start_service`` unless it auto-starts) to running, in ms (asyncio)."""
    return await _install_to_running(ctx, "asyncio")


async def install_to_running_trio(ctx: Context) -> Measurement:
    """The same, for the example service on trio."""
    return await _install_to_running(ctx, "trio")


async def install_to_running_unconfined(ctx: Context) -> Measurement:
    """The same on asyncio with the Landlock sandbox turned off (the baseline of its cost)."""
    return await _install_to_running(ctx, "asyncio", sandbox=False)


async def _install_to_running(ctx: Context, loop: str, *, sandbox: bool = True) -> Measurement:
    archive = example_archive(ctx.workdir / f"install-src-{loop}-{sandbox}", event_loop=loop)
    samples = []
    async with _orchestrator(ctx, f"install-{loop}-{sandbox}", sandbox=sandbox) as orch:
        warmup = ctx.pick(1, 2)
        for number in range(warmup + ctx.pick(7, 25)):
            started = time.perf_counter()
            await _install_and_start(orch, archive)
            elapsed = time.perf_counter() - started
            await orch.stop_service(EXAMPLE)
            await orch.uninstall_service(EXAMPLE)
            if number >= warmup:
                samples.append(elapsed * 1000)
    return Measurement(samples)


async def restart_latency(ctx: Context) -> Measurement:
    """``restart_service`` until running again, in ms."""
    samples = []
    async with _orchestrator(ctx, "restart") as orch:
        await _install_and_start(orch, example_archive(ctx.workdir / "restart-src"))
        warmup = ctx.pick(1, 2)
        for number in range(warmup + ctx.pick(7, 25)):
            started = time.perf_counter()
            await orch.restart_service(EXAMPLE)
            await _wait_running(orch, EXAMPLE)
            if number >= warmup:
                samples.append((time.perf_counter() - started) * 1000)
        await orch.stop_service(EXAMPLE)
    return Measurement(samples)


async def local_call(ctx: Context) -> Measurement:
    """``orch.rpc.call("example_service/example_method", {})``, in ms."""
    samples = []
    async with _orchestrator(ctx, "call") as orch:
        await _install_and_start(orch, example_archive(ctx.workdir / "call-src"))
        warmup = ctx.pick(200, 1000)
        for number in range(warmup + ctx.pick(3000, 20000)):
            started = time.perf_counter()
            await orch.rpc.call(f"{EXAMPLE}/example_method", {})
            if number >= warmup:
                samples.append((time.perf_counter() - started) * 1000)
        await orch.stop_service(EXAMPLE)
    return Measurement(samples)


async def _service_pid(orch: Orchestrator, name: str) -> int:
    """The pid ``get_service_info`` reports, else the one child process working in the service's directory."""
    info = await orch.get_service_info(name)
    if isinstance(info.get("pid"), int):
        return int(info["pid"])
    found = _children_working_in(Path(info["directory"]))
    if len(found) != 1:
        raise RuntimeError(f"cannot tell the process of {name}: get_service_info has no pid, {found=}")
    return found[0]


def _children_working_in(directory: Path) -> list[int]:
    """Pids of this process's descendants whose working directory is ``directory``."""
    directory = directory.resolve()
    found = []
    for process in psutil.Process().children(recursive=True):
        try:
            if Path(process.cwd()).resolve() == directory:
                found.append(int(process.pid))
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue  # a process that ended meanwhile, or one we may not inspect: not the service
    return found


async def service_idle_rss(ctx: Context) -> Measurement:
    """RSS of the running example service's process once idle, in MiB (a fresh process per sample; asyncio)."""
    return await _service_idle_rss(ctx, "asyncio")


async def service_idle_rss_trio(ctx: Context) -> Measurement:
    """The same, for the example service on trio."""
    return await _service_idle_rss(ctx, "trio")


async def _service_idle_rss(ctx: Context, loop: str) -> Measurement:
    samples = []
    async with _orchestrator(ctx, f"rss-{loop}") as orch:
        await _install_and_start(orch, example_archive(ctx.workdir / f"rss-src-{loop}", event_loop=loop))
        for number in range(ctx.pick(3, 7)):
            if number:
                await orch.restart_service(EXAMPLE)
                await _wait_running(orch, EXAMPLE)
            await trio.sleep(SETTLE)
            samples.append(rss_mib(await _service_pid(orch, EXAMPLE)))
        await orch.stop_service(EXAMPLE)
    return Measurement(samples)


async def hundred_services(ctx: Context, count: int = 100) -> Measurement:
    """``count`` services started at once; then ``list_services`` latency, in ms."""
    names = [f"svc_{number:03d}" for number in range(count)]
    samples = []
    async with _orchestrator(ctx, "hundred") as orch:
        for name in names:
            await orch.install_service(example_archive(ctx.workdir / "hundred-src", name))
        started = time.perf_counter()
        async with trio.open_nursery() as nursery:
            for name in names:
                nursery.start_soon(orch.start_service, name)
        for name in names:
            await _wait_running(orch, name)
        all_running = time.perf_counter() - started
        for number in range(5 + ctx.pick(20, 100)):
            began = time.perf_counter()
            listing = await orch.list_services()
            if number >= 5:
                samples.append((time.perf_counter() - began) * 1000)
        if listing["total_running"] != count:
            raise RuntimeError(f"only {listing['total_running']} of {count} services are running")
        stopping = time.perf_counter()
        async with trio.open_nursery() as nursery:
            for name in names:
                nursery.start_soon(orch.stop_service, name)
        stop_all = time.perf_counter() - stopping
    return Measurement(
        samples,
        {
            "services": count,
            "start_all_seconds": round(all_running, 3),
            "stop_all_seconds": round(stop_all, 3),
        },
    )
