"""The project side of the transfer figures (issue 5), through ``Orchestrator.distribute_service``.

Layout, as the raw py-libp2p baselines: the origin node runs in this process, each target node
in a process of its own (:mod:`benchlib.programs.orchestrator_node`), on 127.0.0.1, with the
default configuration (1 MiB chunks, fsync on) except larger archive limits where a figure
needs them.  Every distribution sends a new archive (a new version, new random bytes), so
nothing is deduplicated: each one moves the whole archive.

Archives are the example service plus an incompressible ``assets/blob.bin``, gzip'd with
*stored* (level 0) deflate blocks: as incompressible as the issue asks, and built at disk speed
instead of gzip's 20 MB/s.
"""

from __future__ import annotations

import gzip
import json
import os
import statistics
import tarfile
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import trio

from benchlib.model import Context, Measurement
from benchlib.procs import (
    LineReader,
    child,
    copy_example,
    cpu_seconds,
    own_cpu_seconds,
    page_cache_write_ms_per_mib,
    program_argv,
    program_env,
    reset_peak_rss,
    rss_mib,
)

__all__ = [
    "distribute_parallel_8",
    "distribute_sequential_8",
    "receiver_rss_256mib",
    "resume_bytes",
    "transfer_cpu_per_mib",
    "transfer_throughput",
]

MIB = 1 << 20
SERVICE = "example_service"
CHUNK = MIB
"""The node's default chunk size (``DEFAULT_CHUNK_SIZE``): what the resume target allows re-sent."""


def build_archive(root: Path, version: str, size: int) -> Path:
    """The example service at ``version`` with ``size`` random bytes, as a stored-deflate ``.tar.gz``."""
    source = copy_example(root / f"src-{version}" / SERVICE)
    manifest = json.loads((source / "manifest.json").read_text(encoding="utf-8"))
    manifest["version"] = version
    (source / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
    (source / "assets").mkdir(exist_ok=True)
    with open(source / "assets" / "blob.bin", "wb") as blob:
        for start in range(0, size, MIB):
            blob.write(os.urandom(min(MIB, size - start)))
    archive = root / f"{SERVICE}-{version}.tar.gz"
    with (
        gzip.GzipFile(archive, "wb", compresslevel=0, mtime=0) as compressed,
        tarfile.open(fileobj=compressed, mode="w", format=tarfile.PAX_FORMAT) as tar,
    ):
        for path in sorted(source.rglob("*")):
            if "__pycache__" in path.parts:
                continue
            info = tar.gettarinfo(path, arcname=f"{SERVICE}/{path.relative_to(source)}")
            info.mode, info.uid, info.gid, info.uname, info.gname, info.mtime = (
                0o755 if path.is_dir() else 0o644,
                0,
                0,
                "",
                "",
                0,
            )
            if path.is_dir():
                tar.addfile(info)
            else:
                with open(path, "rb") as file:
                    tar.addfile(info, file)
    return archive


async def archives(ctx: Context, label: str, count: int, size: int, *, major: int = 1) -> list[Path]:
    """``count`` archives of about ``size`` bytes, versions ``major``.0.0, ``major``.0.1, ... (in a thread)."""
    root = ctx.workdir / label / "archives"
    root.mkdir(parents=True, exist_ok=True)
    return [
        await trio.to_thread.run_sync(build_archive, root, f"{major}.0.{number}", size)
        for number in range(count)
    ]


@dataclass
class Target:
    """A target node in a child process."""

    peer_id: str
    address: str
    pid: int


@dataclass
class Bench:
    """The origin node (this process) and its target nodes (child processes), connected."""

    origin: Any
    targets: list[Target]

    async def install(self, archive: Path) -> None:
        await self.origin.orchestrator.install_service(archive)

    async def distribute(self, targets: Sequence[Target], **options: Any) -> dict[str, Any]:
        """``distribute_service`` of the installed archive; raises unless every target installed it."""
        options.setdefault("strategy", "push")  # issue 5's figures are the single-origin push
        result: dict[str, Any] = await self.origin.orchestrator.distribute_service(
            SERVICE, [t.peer_id for t in targets], **options
        )
        if result["failed_distributions"]:
            failed = {
                node: entry["error"] for node, entry in result["results"].items() if not entry["success"]
            }
            raise RuntimeError(f"distribution failed: {failed}")
        return result


async def _start_target(stack: AsyncExitStack, home: Path, argv: list[str]) -> Target:
    process = await stack.enter_async_context(
        child(program_argv("orchestrator_node", str(home), *argv), env=program_env())
    )
    if process.stdout is None:
        raise RuntimeError("orchestrator_node started without a stdout pipe")
    with trio.fail_after(60):
        word, address, pid = (await LineReader(process.stdout).line()).split(" ")
    if word != "listening":
        raise RuntimeError(f"orchestrator_node said {word!r}, expected 'listening <address> <pid>'")
    return Target(address.rsplit("/p2p/", 1)[1], address, int(pid))


@asynccontextmanager
async def bench_nodes(
    ctx: Context,
    label: str,
    count: int,
    *,
    max_archive_mib: int = 256,
    cut_at_bytes: int = 0,
    report_install_cpu: bool = False,
) -> AsyncIterator[Bench]:
    """The origin node here and ``count`` target nodes in child processes (started at once).

    ``report_install_cpu``: each target adds its install's CPU seconds to its result
    (``bench_install_cpu_seconds``, see :mod:`benchlib.programs.orchestrator_node`).
    """
    from p2p_orchestrator.archive import ArchiveLimits
    from p2p_orchestrator.config import OrchestratorConfig
    from p2p_orchestrator.node import Node
    from p2p_orchestrator.node.identity import load_or_create_identity, peer_id_of

    root = ctx.workdir / label
    origin_home = root / "origin"
    origin_id = peer_id_of(await trio.to_thread.run_sync(load_or_create_identity, origin_home))
    argv = ["--trust", origin_id, "--max-archive-mib", str(max_archive_mib)]
    if cut_at_bytes:
        argv += ["--cut-at-bytes", str(cut_at_bytes)]
    if report_install_cpu:
        argv.append("--report-install-cpu")
    limit = max_archive_mib * MIB
    config = OrchestratorConfig(
        archive=ArchiveLimits(max_compressed_bytes=limit, max_uncompressed_bytes=2 * limit)
    )
    async with AsyncExitStack() as stack:
        targets: list[Target] = [None] * count  # type: ignore[list-item]

        async def start(number: int) -> None:
            targets[number] = await _start_target(stack, root / f"target{number}", argv)

        async with trio.open_nursery() as nursery:
            for number in range(count):
                nursery.start_soon(start, number)
        origin = await stack.enter_async_context(Node.open(origin_home, config=config))
        for target in targets:
            await origin.connect(target.address)
        yield Bench(origin, targets)


def _transfer(result: dict[str, Any], target: Target) -> dict[str, Any]:
    transfer: dict[str, Any] = result["results"][target.peer_id]["result"]["transfer"]
    return transfer


async def transfer_throughput(ctx: Context) -> Measurement:
    """One archive to one node in another process, in MiB/s: transfer and verification, not install.

    The time is the origin's, from opening the stream to the target's result, minus the time
    the target reports for its install (unpacking and switching versions), so it holds: offer,
    chunks, each chunk's sha256 and write, the whole file's sha256, and the result.
    """
    size = ctx.pick(16, 64) * MIB
    runs = ctx.pick(3, 5)
    paths = await archives(ctx, "throughput", runs + 1, size)
    samples, totals, installs = [], [], []
    async with bench_nodes(ctx, "throughput", 1) as bench:
        (target,) = bench.targets
        for number, path in enumerate(paths):
            await bench.install(path)
            transfer = _transfer(await bench.distribute([target]), target)
            install = transfer["receiver"]["install_seconds"]
            if number:  # the first one warms up
                archive_mib = path.stat().st_size / MIB
                samples.append(archive_mib / (transfer["seconds"] - install))
                totals.append(archive_mib / transfer["seconds"])
                installs.append(install)
    return Measurement(
        samples,
        {
            "bytes": size,
            "chunk_bytes": CHUNK,
            "with_install_mib_s": round(sorted(totals)[len(totals) // 2], 1),
            "install_seconds": round(sorted(installs)[len(installs) // 2], 3),
        },
    )


async def receiver_rss_256mib(ctx: Context) -> Measurement:
    """Growth of the target process's peak RSS while it receives (and installs) a 256 MiB archive, MiB."""
    paths = await archives(ctx, "rss", 1 + ctx.pick(1, 2), 256 * MIB)
    warmup = (await archives(ctx, "rss-warmup", 1, MIB, major=0))[0]
    samples, peaks, befores = [], [], []
    async with bench_nodes(ctx, "rss", 1, max_archive_mib=300) as bench:
        (target,) = bench.targets
        await bench.install(warmup)
        await bench.distribute([target])
        for path in paths:
            await bench.install(path)
            reset_peak_rss(target.pid)
            before = rss_mib(target.pid)
            await bench.distribute([target])
            peak = rss_mib(target.pid, "VmHWM")
            samples.append(peak - before)
            peaks.append(peak)
            befores.append(before)
    return Measurement(
        samples,
        {"bytes": paths[0].stat().st_size, "peak_rss_mib": max(peaks), "rss_before_mib": min(befores)},
    )


async def transfer_cpu_per_mib(ctx: Context) -> Measurement:
    """CPU milliseconds per MiB the target node's process spends receiving an archive, install taken out.

    256 MiB (quick: 64), as ``receiver_rss_256mib``: a 1 MiB archive warms up, then each sample
    reads the target process's user + system CPU (``/proc/<pid>/stat``, all threads) before and
    after one ``distribute_service`` and takes out the CPU the target reports for the install
    that follows the transfer (``bench_install_cpu_seconds``).  What is left is the offer, the
    chunks (Noise, Yamux, framing), each chunk's sha256 and write (fsync on), the whole file's
    sha256 and the result: the receiving side of the throughput figure.  With the install, and
    the origin's (this process's) CPU, are in ``extra``; so is the CPU this process spends writing
    as many bytes to a new file right after each sample (``page_cache_write_ms_per_mib``), the
    machine's cost of the write the baseline does not make (see docs/benchmarks.md).
    """
    size = ctx.pick(64, 256) * MIB
    paths = await archives(ctx, "cpu", ctx.pick(2, 3), size)
    warmup = (await archives(ctx, "cpu-warmup", 1, MIB, major=0))[0]
    samples, with_install, installs, walls, senders, controls = [], [], [], [], [], []
    async with bench_nodes(ctx, "cpu", 1, max_archive_mib=300, report_install_cpu=True) as bench:
        (target,) = bench.targets
        await bench.install(warmup)
        await bench.distribute([target])
        for path in paths:
            await bench.install(path)
            archive_mib = path.stat().st_size / MIB
            before, sender_before, started = cpu_seconds(target.pid), own_cpu_seconds(), time.perf_counter()
            result = await bench.distribute([target])
            wall = time.perf_counter() - started
            spent, sender = cpu_seconds(target.pid) - before, own_cpu_seconds() - sender_before
            reported = result["results"][target.peer_id]["result"].get("bench_install_cpu_seconds")
            if reported is None:
                raise RuntimeError("the target did not report its install's CPU (bench_install_cpu_seconds)")
            install = float(reported)
            samples.append((spent - install) * 1000 / archive_mib)
            with_install.append(spent * 1000 / archive_mib)
            installs.append(install)
            walls.append(wall)
            senders.append(sender * 1000 / archive_mib)
            controls.append(page_cache_write_ms_per_mib(ctx.workdir, round(archive_mib)))
    return Measurement(
        samples,
        {
            "bytes": paths[0].stat().st_size,
            "with_install_cpu_ms_per_mib": round(statistics.median(with_install), 2),
            "install_cpu_seconds": round(statistics.median(installs), 3),
            "origin_cpu_ms_per_mib": round(statistics.median(senders), 2),
            "distribute_seconds": round(statistics.median(walls), 3),
            "page_cache_write_ms_per_mib": round(statistics.median(controls), 2),
        },
    )


async def _eight(ctx: Context, label: str, *, parallel: bool) -> Measurement:
    runs = ctx.pick(2, 4)
    paths = await archives(ctx, label, runs + 1, 16 * MIB)
    samples = []
    async with bench_nodes(ctx, label, 8) as bench:
        for number, path in enumerate(paths):
            await bench.install(path)
            started = time.perf_counter()
            if parallel:
                await bench.distribute(bench.targets)
            else:
                for target in bench.targets:
                    await bench.distribute([target])
            if number:
                samples.append(time.perf_counter() - started)
    return Measurement(samples, {"targets": 8, "bytes": paths[0].stat().st_size})


async def distribute_parallel_8(ctx: Context) -> Measurement:
    """One ``distribute_service`` of a 16 MiB archive to 8 nodes (each its own process), in s."""
    return await _eight(ctx, "parallel8", parallel=True)


async def distribute_sequential_8(ctx: Context) -> Measurement:
    """The baseline: 8 single-node ``distribute_service`` calls one after the other, in s."""
    return await _eight(ctx, "sequential8", parallel=False)


async def resume_bytes(ctx: Context) -> Measurement:
    """Bytes sent to finish a transfer the target cut once it had verified half the archive."""
    size = ctx.pick(16, 64) * MIB
    runs = ctx.pick(2, 3)
    paths = await archives(ctx, "resume", runs, size)
    total = paths[0].stat().st_size
    samples, first_tries, kept = [], [], []
    async with bench_nodes(ctx, "resume", 1, cut_at_bytes=total // 2) as bench:
        (target,) = bench.targets
        for path in paths:
            await bench.install(path)
            tries = _transfer(await bench.distribute([target]), target)["tries"]
            if len(tries) != 2 or tries[0]["outcome"] != "transfer_cut":
                raise RuntimeError(f"expected one cut and one resumed try, got {tries}")
            samples.append(tries[1]["bytes_sent"])
            first_tries.append(tries[0]["bytes_sent"])
            kept.append(tries[1]["receiver_had"])
    return Measurement(
        samples,
        {
            "archive_bytes": total,
            "chunk_bytes": CHUNK,
            "first_try_bytes": min(first_tries),
            "kept_by_receiver_bytes": min(kept),
        },
    )
