"""``FleetView`` and its tracker over a stand-in node: refusals, slow peers, the cache, the bounds."""

from __future__ import annotations

from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import trio

from p2p_orchestrator.config import OrchestratorConfig
from p2p_orchestrator.dashboard.fleet import PEER_TIMEOUT, FleetView, short_peer_id
from p2p_orchestrator.dashboard.tracker import (
    HISTORY_POINTS,
    MAX_DISTRIBUTIONS,
    MAX_SERIES,
    Distributions,
    History,
)
from p2p_orchestrator.errors import PermissionDenied
from p2p_orchestrator.events import Event
from p2p_orchestrator.node.node import PeerStatus

ME = "12D3KooW" + "M" * 44
OPEN = "12D3KooW" + "O" * 44
CLOSED = "12D3KooW" + "C" * 44
SLOW = "12D3KooW" + "S" * 44
GONE = "12D3KooW" + "G" * 44
LISTED = {"services": {"web": {"version": "2.0.0", "state": "running", "health": {"status": "healthy"}}}}


@dataclass
class FakeRpc:
    calls: list[tuple[str, str | None]] = field(default_factory=list)

    async def call(self, method: str, params: dict[str, Any], *, caller: Any, peer: str | None) -> Any:
        self.calls.append((method, peer))
        if peer == CLOSED:
            raise PermissionDenied(f"{ME} may not call {method} here", code="permission_denied")
        if peer == SLOW:
            await trio.sleep_forever()
        return LISTED


def _node() -> Any:
    config = OrchestratorConfig(peers={"open": OPEN})
    peers = [
        PeerStatus(peer, connected=peer != GONE, addrs=(), pinned=True, role=None)
        for peer in (OPEN, CLOSED, SLOW, GONE)
    ]
    return SimpleNamespace(
        peer_id=ME, rpc=FakeRpc(), orchestrator=SimpleNamespace(config=config), peers=lambda: peers
    )


async def test_the_fleet_shows_what_each_peer_lets_this_node_read(autojump_clock: trio.abc.Clock) -> None:
    node = _node()
    view = FleetView(node)
    started = trio.current_time()
    fleet = await view.fleet()
    assert trio.current_time() - started == PEER_TIMEOUT  # the slow peer, bounded; the others meanwhile
    nodes = {entry["peer_id"]: entry for entry in fleet["nodes"]}
    assert list(nodes) == [ME, OPEN, CLOSED, SLOW, GONE]
    assert nodes[ME]["self"] and nodes[ME]["services"]["web"]["version"] == "2.0.0"
    assert nodes[OPEN]["name"] == "open" and nodes[OPEN]["short"] == short_peer_id(OPEN) == "12*OOOOOO"
    assert nodes[OPEN]["health"] == "healthy" and nodes[OPEN]["services_total"] == 1
    assert nodes[CLOSED]["error"]["code"] == "permission_denied" and nodes[CLOSED]["health"] == "unknown"
    assert nodes[SLOW]["error"]["code"] == "peer_timeout"
    assert nodes[GONE]["error"]["code"] == "not_connected"
    assert ("orchestrator/list_services", GONE) not in node.rpc.calls  # never asked while not connected


async def test_a_peer_is_asked_once_a_second_and_again_after_an_action(
    autojump_clock: trio.abc.Clock,
) -> None:
    node = _node()
    view = FleetView(node)
    for _ in range(3):
        assert (await view.ask(OPEN, "list_services"))[0] == LISTED
        assert (await view.ask(None, "list_services"))[0] == LISTED
    assert node.rpc.calls.count(("orchestrator/list_services", OPEN)) == 1
    assert node.rpc.calls.count(("orchestrator/list_services", None)) == 3  # this node: never kept
    view.forget("open")  # a [peers] name works too
    await view.ask(OPEN, "list_services")
    await trio.sleep(1.5)
    await view.ask(OPEN, "list_services")
    assert node.rpc.calls.count(("orchestrator/list_services", OPEN)) == 3


def _progress(service: str, done: int, total: int, **targets: str) -> Event:
    data = {
        "archive_hash": f"{service}-hash",
        "targets_done": done,
        "targets_total": total,
        "bytes_received": done * 10,
        "bytes_total": total * 10,
        "targets": {
            peer: {"bytes_received": 10, "bytes_sent": 10, "state": state} for peer, state in targets.items()
        },
    }
    return Event("distribution_progress", service, "1.0.0", "2026-01-01T00:00:00Z", data)


def test_distributions_keep_each_targets_latest_figures_and_the_newest_few() -> None:
    distributions = Distributions()
    distributions.feed(_progress("web", 0, 2, a="transferring", b="transferring"))
    distributions.feed(_progress("web", 1, 2, a="succeeded"))
    distributions.feed(Event("service_started", "web", "1.0.0", "2026-01-01T00:00:00Z", {}))
    (web,) = distributions.recent()
    assert (web["targets_done"], web["finished"]) == (1, False)
    assert web["targets"] == {
        "a": {"bytes_received": 10, "bytes_sent": 10, "state": "succeeded"},
        "b": {"bytes_received": 10, "bytes_sent": 10, "state": "transferring"},
    }
    distributions.feed(_progress("web", 2, 2, b="succeeded"))
    assert distributions.recent()[0]["finished"] is True
    distributions.feed(_progress("web", 0, 1, c="transferring"))  # the same archive sent again: a new one
    assert list(distributions.recent()[0]["targets"]) == ["c"]
    for index in range(MAX_DISTRIBUTIONS + 5):
        distributions.feed(_progress(f"svc{index}", 0, 1))
    kept = distributions.recent()
    assert len(kept) == MAX_DISTRIBUTIONS and kept[0]["service"] == f"svc{MAX_DISTRIBUTIONS + 4}"


def test_history_is_bounded_in_points_and_series() -> None:
    now = [0.0]
    history = History(clock=lambda: now[0])
    figures = {
        "calls": 1,
        "call_errors": 0,
        "restart_count": 0,
        "metrics": {"gauges": {"queue": 3, "label": "x"}},
    }
    for step in range(HISTORY_POINTS + 10):
        now[0] = float(step)
        history.record(ME, {"web": {**figures, "calls": step}})
    samples = history.of(ME)["web"]
    assert len(samples) == HISTORY_POINTS and samples[-1]["calls"] == HISTORY_POINTS + 9
    assert samples[-1]["gauges"] == {"queue": 3.0}  # numbers only
    for index in range(MAX_SERIES + 3):
        history.record(f"peer{index}", {"web": figures})
    assert history.of(ME) == {}  # the least recently recorded went first
