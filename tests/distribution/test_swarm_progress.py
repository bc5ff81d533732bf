"""``distribution_progress`` events: each target's progress counts what it got from anyone.

In a swarm most of a target's bytes come from the other targets; its progress must still reach
the archive's size (not the origin's ``1/N`` share), grow only, and the events stay throttled.
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any

import pytest
import trio

from p2p_orchestrator.events import Event
from p2p_orchestrator.node import Node
from p2p_orchestrator.orchestrator import distribution as _distribution
from tests.distribution.support import CHUNK, blob_archive, transfer_swarm, transfers

SERVICE = "example_service"
SIZE = 1_500_000  # about 23 chunks of 64 KiB: several per target share


async def distribute(
    origin: Node, targets: list[str], **options: Any
) -> tuple[dict[str, Any], list[Event], float]:
    """Run one distribution; return its result, its progress events and how long it took."""
    before = len(origin.orchestrator.events.recent(1000))
    started = time.monotonic()
    result = await origin.orchestrator.distribute_service(SERVICE, targets, **options)
    seconds = time.monotonic() - started
    events = origin.orchestrator.events.recent(1000)[before:]
    progress = [event for event in events if event.type == "distribution_progress"]
    assert result["successful_distributions"] == len(targets), result
    return result, progress, seconds


def per_target(events: list[Event]) -> dict[str, list[dict[str, Any]]]:
    """Each target's figures, event after event (the events carry the targets that changed)."""
    seen: dict[str, list[dict[str, Any]]] = {}
    for event in events:
        for target, figures in event.data["targets"].items():
            seen.setdefault(target, []).append(figures)
    return seen


def check_monotonic(events: list[Event], targets: list[str], size: int) -> dict[str, list[dict[str, Any]]]:
    """Every target's progress grows and ends at ``size``; the totals grow and end complete."""
    totals = [event.data["bytes_received"] for event in events]
    assert totals == sorted(totals)
    last = events[-1].data
    assert last["archive_size"] == size
    assert last["bytes_received"] == last["bytes_total"] == size * len(targets)
    assert (last["targets_done"], last["targets_failed"]) == (len(targets), 0)
    seen = per_target(events)
    assert set(seen) == set(targets)
    for target in targets:
        received = [figures["bytes_received"] for figures in seen[target]]
        sent = [figures["bytes_sent"] for figures in seen[target]]
        assert received == sorted(received) and sent == sorted(sent), target
        assert received[-1] == size and seen[target][-1]["state"] == "succeeded"
        assert all(figures["state"] == "transferring" for figures in seen[target][:-1])
    return seen


async def test_swarm_progress_of_each_target_counts_its_peers_bytes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_distribution, "PROGRESS_INTERVAL", 0.0)  # every update is an event
    archive = blob_archive(tmp_path / "src", size=SIZE)
    with trio.fail_after(60):
        async with transfer_swarm(5, tmp_path) as nodes:
            origin = nodes[0]
            transfers(origin).swarm_pusher.chunk_size = CHUNK
            await origin.orchestrator.install_service(archive)
            targets = [node.peer_id for node in nodes[1:]]
            result, events, _ = await distribute(origin, targets, strategy="swarm")
    seen = check_monotonic(events, targets, len(archive))
    assert events[-1].data["bytes_sent"] < 2 * len(archive)  # the origin sent it about once
    ahead = []
    for target in targets:
        transfer = result["results"][target]["result"]["transfer"]
        assert seen[target][-1]["bytes_sent"] == transfer["bytes_sent"]
        # before the target's end, its progress already counted the chunks its peers gave it
        running = [figures for figures in seen[target] if figures["state"] == "transferring"]
        if transfer["bytes_from_peers"] and running[-1]["bytes_received"] > running[-1]["bytes_sent"]:
            ahead.append(target)
    assert ahead, "no target's progress went beyond what the origin sent it"


async def test_swarm_progress_events_stay_throttled(tmp_path: Path) -> None:
    archive = blob_archive(tmp_path / "src", size=SIZE)
    with trio.fail_after(60):
        async with transfer_swarm(6, tmp_path) as nodes:
            origin = nodes[0]
            transfers(origin).swarm_pusher.chunk_size = CHUNK
            await origin.orchestrator.install_service(archive)
            targets = [node.peer_id for node in nodes[1:]]
            _, events, seconds = await distribute(origin, targets)  # swarm: the default
    check_monotonic(events, targets, len(archive))
    # one event per PROGRESS_INTERVAL at most, plus one per finished target
    assert len(events) <= math.ceil(seconds / _distribution.PROGRESS_INTERVAL) + 1 + len(targets)


async def test_push_progress_counts_the_origins_bytes_and_what_a_target_held(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_distribution, "PROGRESS_INTERVAL", 0.0)
    archive = blob_archive(tmp_path / "src", size=SIZE)
    with trio.fail_after(60):
        async with transfer_swarm(4, tmp_path) as nodes:
            origin, holder = nodes[0], nodes[3]
            await origin.orchestrator.install_service(archive)
            await holder.orchestrator.install_service(archive)
            targets = [node.peer_id for node in nodes[1:]]
            result, events, _ = await distribute(origin, targets, strategy="push", force_reinstall=True)
    seen = check_monotonic(events, targets, len(archive))
    for target in targets[:2]:  # fresh targets: every byte came from the origin, chunk after chunk
        assert result["results"][target]["result"]["transfer"]["bytes_sent"] == len(archive)
        received = [figures["bytes_received"] for figures in seen[target]]
        assert len(set(received)) > 2  # it grew along the way, not only at the end
        assert all(figures["bytes_received"] <= figures["bytes_sent"] for figures in seen[target])
    held = seen[holder.peer_id]  # dedup: nothing sent, and complete from its first have on
    assert all(figures["bytes_sent"] == 0 for figures in held)
    assert held[0]["bytes_received"] == len(archive) and held[0]["state"] == "transferring"
    assert events[-1].data["bytes_sent"] == 2 * len(archive)
