"""The ``distribute`` progress bar follows what the targets received, not only what the origin sent."""

from __future__ import annotations

from typing import Any

from p2p_orchestrator.cli._progress import DistributionBar

SIZE = 1000


def event(service: str = "web", **data: Any) -> dict[str, Any]:
    return {"type": "distribution_progress", "service": service, "version": "1.0.0", "data": data}


def completed(bar: DistributionBar) -> tuple[float, float | None, str]:
    task = bar._progress.tasks[0]
    return task.completed, task.total, task.description


def test_the_bar_shows_the_bytes_the_targets_received_in_a_swarm() -> None:
    bar = DistributionBar("web", 4)
    # a swarm: the origin sent each target its quarter, the targets passed the rest on
    bar.update(event(bytes_sent=SIZE, bytes_received=3 * SIZE, bytes_total=4 * SIZE,
                     targets_done=1, targets_failed=0, targets={}))  # fmt: skip
    assert completed(bar) == (3 * SIZE, 4 * SIZE, "web: 1/4 node(s)")
    bar.update(event(bytes_sent=SIZE, bytes_received=4 * SIZE, bytes_total=4 * SIZE,
                     targets_done=4, targets_failed=0))  # fmt: skip
    assert completed(bar) == (4 * SIZE, 4 * SIZE, "web: 4/4 node(s)")


def test_an_older_node_without_bytes_received_still_moves_the_bar() -> None:
    bar = DistributionBar("web", 2)
    bar.update(event(bytes_sent=SIZE, bytes_total=2 * SIZE, targets_done=0, targets_failed=0))
    assert completed(bar)[:2] == (SIZE, 2 * SIZE)


def test_other_events_and_services_leave_the_bar_alone() -> None:
    bar = DistributionBar("web", 2)
    bar.update(event("other", bytes_received=SIZE, bytes_total=2 * SIZE))
    bar.update({"type": "service_installed", "service": "web", "data": {"bytes_received": SIZE}})
    bar.update(event(bytes_received="lots", bytes_total=2 * SIZE))  # not a number: ignored
    assert completed(bar) == (0, None, "web: 0/2 node(s)")
    bar.finish({"total_nodes": 2, "failed_distributions": 1})
    assert completed(bar)[2] == "web: 2/2 node(s), 1 failed"
