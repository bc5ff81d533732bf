"""The project side of the network scenarios: a node here, the callee node in a child process.

The layout matches :mod:`benchlib.baselines_libp2p` (one host here, the responder in its own
process), so the ratio compares the node's RPC with raw py-libp2p on equal terms.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import trio

from benchlib.model import Context, Measurement
from benchlib.procs import LineReader, child, program_argv, program_env, rss_mib

__all__ = ["NodePair", "node_pair", "remote_call"]

CALL = "example_service/example_method"


@dataclass
class NodePair:
    """A node here (``node``) connected to a node in ``process`` (``peer``)."""

    node: Any
    peer: str
    process: trio.Process
    listening_ms: float
    """How long the callee took from opening its node to listening."""


@asynccontextmanager
async def node_pair(ctx: Context, label: str) -> AsyncIterator[NodePair]:
    """Start the callee node process and a node here, connect them; tear both down on exit."""
    from p2p_orchestrator.node import Node

    homes = ctx.workdir / label
    homes.mkdir(parents=True, exist_ok=True)
    argv = program_argv("node_responder", str(homes / "callee"))
    async with child(argv, env=program_env()) as process:
        if process.stdout is None:
            raise RuntimeError("node_responder started without a stdout pipe")
        with trio.fail_after(120):
            word, address, listening_ms = [*(await LineReader(process.stdout).line()).split(" "), "", ""][:3]
        if word != "listening":
            raise RuntimeError(f"node_responder said {word!r}, expected 'listening <address>'")
        async with Node.open(homes / "caller") as node:
            peer = await node.connect(address)
            yield NodePair(node, peer, process, float(listening_ms))


async def remote_call(ctx: Context) -> Measurement:
    """A public method of the example service on the other node, in ms (the stream is reused)."""
    async with node_pair(ctx, "remote_call") as pair:
        proxy = pair.node.proxy(pair.peer)
        for _ in range(ctx.pick(20, 100)):
            await proxy.call_method(CALL, {})
        samples = []
        for _ in range(ctx.pick(300, 2000)):
            started = time.perf_counter()
            await proxy.call_method(CALL, {})
            samples.append((time.perf_counter() - started) * 1000)
        idle_node_mib = rss_mib(pair.process.pid)
    extra = {
        "method": CALL,
        "node_start_to_listening_ms": pair.listening_ms,
        "callee_node_rss_mib": idle_node_mib,
    }
    return Measurement(samples, extra)
