"""Process baselines: the floor of a call into another process, and the memory of a bare trio process."""

from __future__ import annotations

import socket
import statistics
import time
from contextlib import AsyncExitStack

import trio

from benchlib.framing import FrameReader, encode
from benchlib.model import Context, Measurement
from benchlib.procs import (
    PYTHON,
    LineReader,
    child,
    copy_example,
    memory_rollup_mib,
    program_argv,
    program_env,
    rss_mib,
)

__all__ = [
    "BARE_ASYNCIO",
    "BARE_TRIO",
    "IDLE_READINGS_APART",
    "IDLE_SETTLE",
    "bare_asyncio_rss",
    "bare_trio_rss",
    "hundred_bare_asyncio_pss",
    "socketpair_call",
    "sum_memory",
]

BARE_TRIO = (
    "import trio\n"
    "async def main():\n"
    "    print('ready', flush=True)\n"
    "    await trio.sleep_forever()\n"
    "trio.run(main)\n"
)
"""``python -c "import trio; trio.run(trio.sleep_forever)"``, saying when its loop runs."""

BARE_ASYNCIO = (
    "import asyncio\n"
    "async def main():\n"
    "    print('ready', flush=True)\n"
    "    await asyncio.Event().wait()\n"
    "asyncio.run(main())\n"
)
"""A bare asyncio process idling in its loop, saying when its loop runs."""

SETTLE = 0.5
"""Seconds a started process is left alone before its idle RSS is read."""


async def socketpair_call(ctx: Context) -> Measurement:
    """A CBOR request/response over a socketpair to the example service in a child process, in ms."""
    service_dir = copy_example(ctx.workdir / "socketpair" / "example_service")
    ours, theirs = socket.socketpair()
    stream = trio.SocketStream(trio.socket.from_stdlib_socket(ours))
    with theirs:
        argv = program_argv("cbor_echo", str(theirs.fileno()), str(service_dir))
        async with child(argv, env=program_env(), pass_fds=[theirs.fileno()]):
            theirs.close()
            try:
                samples = await _calls(ctx, stream)
            finally:
                await stream.aclose()  # the child exits at end of stream
    return Measurement(samples)


async def _calls(ctx: Context, stream: trio.SocketStream) -> list[float]:
    reader = FrameReader(stream)
    with trio.fail_after(60):
        hello = await reader.next()
    if not isinstance(hello, dict) or "ready" not in hello:
        raise RuntimeError(f"unexpected greeting from the child: {hello!r}")
    samples = []
    warmup = ctx.pick(200, 1000)
    for number in range(warmup + ctx.pick(3000, 20000)):
        request = {"id": number, "method": "example_service/example_method", "params": {}}
        started = time.perf_counter()
        await stream.send_all(encode(request))
        answer = await reader.next()
        elapsed = time.perf_counter() - started
        if not isinstance(answer, dict) or answer.get("id") != number:
            raise RuntimeError(f"unexpected answer {answer!r} to request {number}")
        if number >= warmup:
            samples.append(elapsed * 1000)
    return samples


async def bare_trio_rss(ctx: Context) -> Measurement:
    """RSS of a bare ``trio.run(trio.sleep_forever)`` process once it idles, in MiB."""
    return await _bare_rss(ctx, BARE_TRIO)


async def bare_asyncio_rss(ctx: Context) -> Measurement:
    """RSS of a bare asyncio process idling in its loop, in MiB."""
    return await _bare_rss(ctx, BARE_ASYNCIO)


async def _bare_rss(ctx: Context, program: str) -> Measurement:
    samples = []
    for _ in range(ctx.pick(3, 7)):
        async with child([PYTHON, "-c", program], polite="sigterm") as process:
            if process.stdout is None:
                raise RuntimeError("child started without a stdout pipe")
            with trio.fail_after(30):
                await LineReader(process.stdout).line()
            await trio.sleep(SETTLE)
            samples.append(rss_mib(process.pid))
    return Measurement(samples)


IDLE_SETTLE = 2.0
"""Seconds a set of idle processes is left alone, once all are up, before its memory is read."""

IDLE_READINGS_APART = 1.0
"""Seconds between two readings of the same idle processes."""


def sum_memory(pids: list[int]) -> dict[str, float]:
    """``Rss`` and ``Pss`` summed over ``pids`` (``/proc/<pid>/smaps_rollup``), in MiB."""
    totals = {"Rss": 0.0, "Pss": 0.0}
    for pid in pids:
        for key, value in memory_rollup_mib(pid).items():
            totals[key] += value
    return totals


async def hundred_bare_asyncio_pss(ctx: Context, count: int = 100) -> Measurement:
    """Total PSS of ``count`` bare asyncio processes idling in their loops, in MiB.

    The processes are started at once, each says when its loop runs; after
    :data:`IDLE_SETTLE` seconds their ``Pss`` is summed ``ctx.pick(3, 5)`` times,
    :data:`IDLE_READINGS_APART` seconds apart (a sample is one reading of all of them).
    """
    samples, rss_sums = [], []
    async with AsyncExitStack() as stack:
        processes = [
            await stack.enter_async_context(child([PYTHON, "-c", BARE_ASYNCIO], polite="sigterm"))
            for _ in range(count)
        ]
        with trio.fail_after(120):
            for process in processes:
                if process.stdout is None:
                    raise RuntimeError("child started without a stdout pipe")
                await LineReader(process.stdout).line()
        await trio.sleep(IDLE_SETTLE)
        for number in range(ctx.pick(3, 5)):
            if number:
                await trio.sleep(IDLE_READINGS_APART)
            totals = sum_memory([process.pid for process in processes])
            samples.append(totals["Pss"])
            rss_sums.append(totals["Rss"])
    return Measurement(
        samples,
        {
            "processes": count,
            "rss_sum_mib": round(statistics.median(rss_sums), 1),
            "per_process_pss_mib": round(statistics.median(samples) / count, 2),
            "per_process_rss_mib": round(statistics.median(rss_sums) / count, 2),
        },
    )
