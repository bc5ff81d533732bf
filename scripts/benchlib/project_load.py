"""The project side of ``load_200_callers``: 200 concurrent callers of a service on a node process.

Laid out like its baseline (:func:`benchlib.baselines_libp2p.load_callers`): the callee in its
own process (:mod:`benchlib.programs.node_responder`, serving the example service), one node
here, 200 callers each calling in a loop for a fixed time.  The caller has the ``reader`` role
on the callee (written to its ``roles.toml`` before it starts), as a trusted client node would:
a peer without a role is held to a share of the service's call slots and gets ``busy`` beyond
it (``p2p_orchestrator.runtime.admission``).  Every call must be answered, or refused with
``busy`` (counted in ``extra``); anything else fails the scenario.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

import trio

from benchlib.model import Context, Measurement, percentile
from benchlib.project_network import CALL, node_pair

if TYPE_CHECKING:
    from p2p_orchestrator.node import RemoteProxy

__all__ = ["load_200_callers"]

LABEL = "load_200_callers"


def _trust_the_caller(ctx: Context) -> None:
    """Create the caller's identity now and give it the ``reader`` role in the callee's home."""
    from p2p_orchestrator.node.access import ROLES_FILE_NAME
    from p2p_orchestrator.node.identity import load_or_create_identity, peer_id_of

    homes = ctx.workdir / LABEL
    caller = peer_id_of(load_or_create_identity(homes / "caller"))
    callee = homes / "callee"
    callee.mkdir(parents=True, exist_ok=True)
    (callee / ROLES_FILE_NAME).write_text(f'[roles]\n"{caller}" = "reader"\n', encoding="utf-8")
    (callee / ROLES_FILE_NAME).chmod(0o600)


async def load_200_callers(ctx: Context, callers: int = 200) -> Measurement:
    """``callers`` concurrent callers for a fixed time: answered calls per second overall."""
    from p2p_orchestrator import Busy

    duration = ctx.pick(3, 10)
    latencies: list[float] = []
    busy = 0

    async def caller(proxy: RemoteProxy, deadline: float) -> None:
        nonlocal busy
        while time.perf_counter() < deadline:
            started = time.perf_counter()
            try:
                answer = await proxy.call_method(CALL, {}, time_limit=30)
            except Busy:
                busy += 1
                continue
            latencies.append((time.perf_counter() - started) * 1000)
            if answer != {"message": "Hello from service!"}:
                raise ValueError(f"wrong answer under load: {answer!r}")

    await trio.to_thread.run_sync(_trust_the_caller, ctx)
    async with node_pair(ctx, LABEL) as pair:
        proxy = pair.node.proxy(pair.peer)
        for _ in range(20):
            await proxy.call_method(CALL, {})
        started = time.perf_counter()
        async with trio.open_nursery() as nursery:
            for _ in range(callers):
                nursery.start_soon(caller, proxy, started + duration)
        elapsed = time.perf_counter() - started
    return Measurement(
        [len(latencies) / elapsed],
        {
            "callers": callers,
            "calls": len(latencies),
            "busy": busy,
            "seconds": round(elapsed, 3),
            "latency_p50_ms": percentile(latencies, 50),
            "latency_p99_ms": percentile(latencies, 99),
        },
    )
