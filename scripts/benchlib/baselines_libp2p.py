"""Raw py-libp2p baselines: a host in this process, the responder in a child process.

These are the floors the node and transfer layers are compared with: what py-libp2p itself
costs for a new stream with a small request/response, and for one bulk stream.
"""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import trio

from benchlib.model import Context, Measurement, percentile
from benchlib.procs import (
    LineReader,
    child,
    cpu_seconds,
    own_cpu_seconds,
    program_argv,
    program_env,
    reset_peak_rss,
    rss_mib,
)

__all__ = ["load_callers", "receiver_cpu_per_mib", "receiver_peak_rss", "remote_call", "transfer_throughput"]

MIB = 1 << 20
_WRITE = MIB
"""Write size of the bulk transfers (bigger writes are much faster on py-libp2p)."""


@dataclass
class Pair:
    """A connected host pair: ``host`` here, the responder (``peer``) in ``process``."""

    host: Any
    peer: Any
    process: trio.Process


@asynccontextmanager
async def host_pair() -> AsyncIterator[Pair]:
    """Start the responder process and a local host, connect them; tear both down on exit."""
    from libp2p.peer.peerinfo import info_from_p2p_addr
    from multiaddr import Multiaddr

    from benchlib.p2p_host import LOOPBACK, make_host

    async with child(program_argv("libp2p_responder"), env=program_env()) as process:
        if process.stdout is None:
            raise RuntimeError("responder started without a stdout pipe")
        with trio.fail_after(60):
            word, _, address = (await LineReader(process.stdout).line()).partition(" ")
        if word != "listening":
            raise RuntimeError(f"responder said {word!r}, expected 'listening <address>'")
        host = make_host()
        async with host.run(listen_addrs=[LOOPBACK]):
            info = info_from_p2p_addr(Multiaddr(address))
            await host.connect(info)
            yield Pair(host, info.peer_id, process)


async def _echo(pair: Pair, request: bytes) -> None:
    from benchlib.p2p_host import ECHO_PROTOCOL, ECHO_SIZE, read_exactly

    stream = await pair.host.new_stream(pair.peer, [ECHO_PROTOCOL])
    await stream.write(request)
    answer = await read_exactly(stream, ECHO_SIZE)
    await stream.close()
    if answer != request:
        raise ValueError("the echo answer differs from the request")


async def _send(pair: Pair, size: int, block: bytes) -> float:
    """Send ``size`` bytes on a new sink stream; seconds from opening it to the receiver's count."""
    from benchlib.p2p_host import SINK_PROTOCOL, read_exactly

    started = time.perf_counter()
    stream = await pair.host.new_stream(pair.peer, [SINK_PROTOCOL])
    await stream.write(size.to_bytes(8, "big"))
    sent = 0
    while sent < size:
        piece = block[: min(len(block), size - sent)]
        await stream.write(piece)
        sent += len(piece)
    received = int.from_bytes(await read_exactly(stream, 8), "big")
    elapsed = time.perf_counter() - started
    await stream.close()
    if received != size:
        raise ValueError(f"the receiver counted {received} bytes of {size}")
    return elapsed


async def remote_call(ctx: Context) -> Measurement:
    """New stream + 32-byte request/response + close, in ms."""
    request = os.urandom(32)
    async with host_pair() as pair:
        for _ in range(ctx.pick(20, 100)):
            await _echo(pair, request)
        samples = []
        for _ in range(ctx.pick(300, 2000)):
            started = time.perf_counter()
            await _echo(pair, request)
            samples.append((time.perf_counter() - started) * 1000)
    return Measurement(samples)


async def transfer_throughput(ctx: Context) -> Measurement:
    """One stream of incompressible bytes in 1 MiB writes, in MiB/s."""
    size = ctx.pick(16, 64) * MIB
    block = os.urandom(_WRITE)
    async with host_pair() as pair:
        await _send(pair, 4 * MIB, block)
        samples = [size / MIB / await _send(pair, size, block) for _ in range(ctx.pick(3, 5))]
    return Measurement(samples, {"bytes": size, "write_size": _WRITE})


async def receiver_peak_rss(ctx: Context) -> Measurement:
    """Growth of the receiving process's peak RSS while it receives 256 MiB on one stream, in MiB."""
    size = 256 * MIB
    block = os.urandom(_WRITE)
    async with host_pair() as pair:
        pid = pair.process.pid
        await _send(pair, 4 * MIB, block)
        samples, peaks, befores = [], [], []
        for _ in range(ctx.pick(1, 3)):
            reset_peak_rss(pid)
            before = rss_mib(pid)
            await _send(pair, size, block)
            peak = rss_mib(pid, "VmHWM")
            samples.append(peak - before)
            peaks.append(peak)
            befores.append(before)
    return Measurement(samples, {"bytes": size, "peak_rss_mib": max(peaks), "rss_before_mib": min(befores)})


async def receiver_cpu_per_mib(ctx: Context) -> Measurement:
    """CPU milliseconds per MiB the receiving process spends reading 256 MiB (quick: 64) from one stream.

    Its user + system CPU (``/proc/<pid>/stat``, all threads) before and after each send; the
    sender's (this process's) CPU per MiB is in ``extra``.
    """
    size = ctx.pick(64, 256) * MIB
    block = os.urandom(_WRITE)
    samples, walls, senders = [], [], []
    async with host_pair() as pair:
        pid = pair.process.pid
        await _send(pair, 4 * MIB, block)
        for _ in range(ctx.pick(3, 3)):
            before, sender_before = cpu_seconds(pid), own_cpu_seconds()
            walls.append(await _send(pair, size, block))
            samples.append((cpu_seconds(pid) - before) * 1000 / (size / MIB))
            senders.append((own_cpu_seconds() - sender_before) * 1000 / (size / MIB))
    return Measurement(
        samples,
        {
            "bytes": size,
            "write_size": _WRITE,
            "sender_cpu_ms_per_mib": round(statistics.median(senders), 2),
            "send_seconds": round(statistics.median(walls), 3),
        },
    )


async def load_callers(ctx: Context, callers: int = 200) -> Measurement:
    """``callers`` concurrent callers each making echo calls for a fixed time: calls/s overall."""
    request = os.urandom(32)
    duration = ctx.pick(3, 10)
    latencies: list[float] = []

    async def caller(pair: Pair, deadline: float) -> None:
        while time.perf_counter() < deadline:
            started = time.perf_counter()
            await _echo(pair, request)
            latencies.append((time.perf_counter() - started) * 1000)

    async with host_pair() as pair:
        for _ in range(20):
            await _echo(pair, request)
        started = time.perf_counter()
        async with trio.open_nursery() as nursery:
            for _ in range(callers):
                nursery.start_soon(caller, pair, started + duration)
        elapsed = time.perf_counter() - started
    return Measurement(
        [len(latencies) / elapsed],
        {
            "callers": callers,
            "calls": len(latencies),
            "seconds": round(elapsed, 3),
            "latency_p50_ms": percentile(latencies, 50),
            "latency_p99_ms": percentile(latencies, 99),
        },
    )
