"""The 100-services figure, as a sanity check: 100 services on one node all run and are listed quickly.

The timed figures belong to the benchmark script; this test only checks that
the node gets there (bounded) and prints what it measured (``pytest -s``).
"""

from __future__ import annotations

import statistics
import time
from pathlib import Path

import pytest
import trio

from p2p_orchestrator import Orchestrator
from tests.runtime.support import fast_config, service_archive

COUNT = 100
TINY = "class Run(BaseService):\n    pass\n"


@pytest.mark.slow
async def test_a_hundred_services_run_at_once_and_list_services_answers(home: Path, tmp_path: Path) -> None:
    async with Orchestrator(home, config=fast_config(start_timeout=60.0)) as orch:
        names = [f"svc{n:03d}" for n in range(COUNT)]
        for name in names:
            await orch.install_service(service_archive(tmp_path, name, TINY))
        began = time.perf_counter()
        with trio.fail_after(120):
            async with trio.open_nursery() as nursery:
                for name in names:
                    nursery.start_soon(orch.start_service, name)
        all_running = time.perf_counter() - began
        samples = []
        for _ in range(25):
            t0 = time.perf_counter()
            listing = await orch.list_services()
            samples.append((time.perf_counter() - t0) * 1000)
        assert listing["total_running"] == COUNT
        assert all(entry["state"] == "running" for entry in listing["services"].values())
        p50 = statistics.median(samples)
        print(
            f"\n{COUNT} services: all running {all_running:.2f} s after the first start; "
            f"list_services p50 {p50:.2f} ms, max {max(samples):.2f} ms"
        )
        assert p50 < 50
