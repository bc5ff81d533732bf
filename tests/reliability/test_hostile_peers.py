"""Hostile peers, all in one module: the role table holds, refusals change nothing, abuse costs the abuser.

This builds on the node suites and does not repeat them:

* ``tests/node/test_node_access.py``: each role x each orchestrator method, the
  public/non-public split, ``unknown_peers``, ``set_role``;
* ``tests/node/test_node_bad_input.py``: each kind of malformed frame, the
  slowloris, the peer that never reads, the stream flood, the in-flight limit,
  each alone;
* ``tests/node/test_node_fuzz.py``: hypothesis frames from a peer without a role;
* ``tests/distribution/test_hostile.py``: the transfer protocol's garbage, lying and
  stalling senders, targets that never read, its stream limits, each alone.

Here: refused calls compared against everything they could touch (store,
database, service trees, archives, service processes, a third node a relay would
reach), the service methods no remote peer may reach, frame-level fuzzing as an
*admin* (the deepest paths: the parameters reach the orchestrator) and of the
transfer protocol as a *deployer* (offers with faulty manifests, wrong and short
chunks, messages out of order, damaged bytes), every abuse
at once while a well-behaved peer calls every 100 ms and never fails (the
regression tests of the two lock-outs this found: strangers holding every
stream, or every call slot of a service), and a lying *callee*: our node as the
caller of a peer that answers wrong.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, TypeVar

import cbor2
import multiaddr
import pytest
import trio
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from libp2p.abc import IHost, INetStream
from libp2p.custom_types import TProtocol
from libp2p.peer.peerinfo import info_from_p2p_addr

from p2p_orchestrator import Busy, OrchestratorError, PermissionDenied
from p2p_orchestrator.node import Node
from p2p_orchestrator.node.access import ROLE_PERMISSIONS, Role
from p2p_orchestrator.node.host._limits import StreamLimiter
from p2p_orchestrator.node.host._stream import NetStream
from p2p_orchestrator.orchestrator import METHODS
from p2p_orchestrator.rpc import LOCAL_CALLER, Caller, MethodSpec, Permission
from p2p_orchestrator.runtime._procfs import process_start_ticks
from p2p_orchestrator.runtime.admission import AdmissionLimits, CallAdmission
from p2p_orchestrator.testing import swarm
from p2p_orchestrator.wire import RPC_PROTOCOL_ID
from tests.node.support import (
    fast_config,
    frame,
    open_raw_stream,
    raw_peer,
    read_to_end,
    trio_loop_in_thread,
)
from tests.node.test_node_bad_input import CASES
from tests.reliability.consistency import check_store, expected_digest, version_digest
from tests.reliability.support import LOAD_SERVICE, service_archive

T = TypeVar("T")
SERVICE = "load_service"
INTERNAL = ["private", "initialize", "cleanup", "health_check", "call_method", "__init__", "_private", "stop"]
"""Service method names no remote peer may reach: non-public, the framework's own, the runner's."""


# -- what a refused call could have changed ---------------------------------------------------


def _db_dump(home: Path) -> list[str]:
    conn = sqlite3.connect(f"file:{home / 'state.db'}?mode=ro", uri=True)
    try:
        return list(conn.iterdump())
    finally:
        conn.close()


async def snapshot(node: Node) -> dict[str, Any]:
    """Everything of ``node`` a call could change: store, database, trees, archives, processes."""
    orch = node.orchestrator
    home = orch.home
    listing = await orch.list_services()
    processes = {}
    for name in orch.store.records:
        unit = orch.supervisor.find(name)
        if unit is not None and unit.process is not None:
            processes[name] = (unit.process.pid, process_start_ticks(unit.process.pid))
    return {
        "services": {
            name: (e["version"], e["state"], e["desired_state"], e["archive_hash"])
            for name, e in listing["services"].items()
        },
        "trees": version_digest(home / "services"),
        "archives": sorted(p.name for p in (home / "archives").iterdir()),
        "db": _db_dump(home),
        "processes": processes,
        "run": sorted(p.name for p in (home / "run").iterdir()),
        "roles": (home / "roles.toml").read_text() if (home / "roles.toml").exists() else None,
    }


def effective_params(spec: MethodSpec, archive: bytes, third: str) -> dict[str, Any]:
    """Parameters that would really change the target (or reach the third node) if allowed."""
    values: dict[str, Any] = {
        "service_name": SERVICE,
        "archive_data": archive,
        "target_nodes": [third],
        "from_peer": third,
        "force_reinstall": True,
        "force": True,
    }
    return {name: values[name] for name in spec.params if name in values}


ROLES = {2: None, 3: "reader", 4: "deployer"}


async def test_refused_calls_change_nothing_anywhere(tmp_path: Path) -> None:
    """Each role's refused calls, the internal service methods and relay attempts change nothing.

    Node 0 is the target; nodes 2-4 call it with no role, ``reader`` and
    ``deployer``; node 1 is the third node a relay or a distribution would reach.
    """
    v2 = service_archive(tmp_path / "src", SERVICE, LOAD_SERVICE, version="2.0.0")
    with trio.fail_after(90):
        async with swarm(
            5,
            tmp_dir=tmp_path / "swarm",
            config=fast_config(),
            roles=lambda i, j: ROLES.get(j) if i == 0 else "admin",
        ) as nodes:
            target, third = nodes[0], nodes[1]
            await target.rpc.call(
                "orchestrator/install_service",
                {"archive_data": service_archive(tmp_path / "src", SERVICE, LOAD_SERVICE)},
            )
            await target.rpc.call("orchestrator/start_service", {"service_name": SERVICE})
            before, third_before = await snapshot(target), await snapshot(third)
            third_streams = third.stats()["inbound_streams_peak"]
            calls_before = (await target.rpc.call(f"{SERVICE}/counters"))["calls"]

            for index, role in ROLES.items():
                remote = nodes[index].proxy(target.peer_id)
                allowed = ROLE_PERMISSIONS[Role(role)] if role else frozenset()
                for name, spec in sorted(METHODS.items()):
                    if spec.permission in allowed:
                        continue
                    with pytest.raises(PermissionDenied):
                        await remote.call_method(
                            f"orchestrator/{name}", effective_params(spec, v2, third.peer_id)
                        )
                for method in INTERNAL:
                    with pytest.raises(OrchestratorError) as refused:
                        await remote.call_method(f"{SERVICE}/{method}", {})
                    expected = ("method_not_public", "unknown_method") if role else ("method_unavailable",)
                    assert refused.value.code in expected, (role, method)
                # a relay: extra routing keys in the parameters are refused before anything runs
                for path in ("orchestrator/list_services", f"{SERVICE}/counters"):
                    with pytest.raises(OrchestratorError) as relay:
                        await remote.call_method(path, {"peer": third.peer_id})
                    assert relay.value.code in ("bad_params", "permission_denied"), relay.value
                assert await snapshot(target) == before, f"a {role} peer changed the target"

            assert await snapshot(third) == third_before
            assert third.stats()["inbound_streams_peak"] == third_streams, "the target called the third node"
            assert (await target.rpc.call(f"{SERVICE}/counters"))["calls"] == calls_before


async def test_a_request_claiming_a_caller_or_a_relay_is_refused_as_a_protocol_error(tmp_path: Path) -> None:
    """The caller is the connection's authenticated peer: message fields claiming otherwise break the protocol."""
    with trio.fail_after(30):
        async with swarm(2, tmp_dir=tmp_path, config=fast_config()) as nodes, raw_peer() as stranger:
            victim, third = nodes
            before = await snapshot(victim)
            for extra in ({"caller": victim.peer_id}, {"peer": third.peer_id}, {"role": "admin"}):
                stream = await open_raw_stream(stranger, victim)
                request = {"t": "req", "id": 1, "method": "orchestrator/list_services", "params": {}, **extra}
                await stream.send(frame(cbor2.dumps(request)))
                frames, end = await read_to_end(stream)
                assert end in ("eof", "broken")
                assert [(f["t"], f["id"], f["error"]["code"]) for f in frames] == [
                    ("err", None, "bad_message")
                ]
            assert await snapshot(victim) == before


# -- the two lock-outs, and the bounds that fixed them ---------------------------------------


def test_strangers_share_at_most_three_quarters_of_the_streams() -> None:
    """Regression: peers without a role could hold every stream and lock the trusted ones out."""
    limiter = StreamLimiter(per_peer=8, total=16)
    with (
        limiter.slot("stranger-1", known=False) as a,
        limiter.slot("stranger-1", known=False) as b,
    ):
        assert a and b
        held = []
        for index in range(2, 20):
            slot = limiter.slot(f"stranger-{index}", known=False)
            held.append((slot, slot.__enter__()))
        assert sum(ok for _, ok in held) == limiter.unknown_total - 2 == 10
        with limiter.slot("friend", known=True) as friend:
            assert friend
        for slot, _ in reversed(held):
            slot.__exit__(None, None, None)
    assert limiter.open_streams() == 0 and limiter.open_unknown_streams() == 0


def test_call_admission_bounds_each_stranger_strangers_and_all_remote_calls() -> None:
    """Regression: one peer without a role could take every call slot of a service, and queue without bound."""
    admission = CallAdmission("svc", AdmissionLimits.for_slots(8))
    assert admission.limits == AdmissionLimits(remote=32, unknown_peers=6, per_unknown_peer=4)
    stranger = Caller(peer_id="s1", permissions=frozenset(), public_only=True)
    friend = Caller(peer_id="f", permissions=frozenset({Permission.READ}), public_only=True)
    held = []

    def hold(caller: Caller) -> None:
        context = admission.admit(caller)
        context.__enter__()
        held.append(context)

    for _ in range(4):
        hold(stranger)
    with pytest.raises(Busy, match="peer s1, which has no role"):
        hold(stranger)
    hold(Caller(peer_id="s2", permissions=frozenset(), public_only=True))
    hold(Caller(peer_id="s3", permissions=frozenset(), public_only=True))
    with pytest.raises(Busy, match="peers without a role"):
        hold(Caller(peer_id="s4", permissions=frozenset(), public_only=True))
    for _ in range(32 - 6):
        hold(friend)
    with pytest.raises(Busy, match="calls from other nodes"):
        hold(friend)
    with admission.admit(LOCAL_CALLER):  # this node's own calls are never refused
        pass
    assert admission.refused == 3 and admission.peak == 32
    for context in held:
        context.__exit__(None, None, None)
    assert admission.admitted == 0


async def test_a_stranger_flooding_slow_calls_gets_busy_and_a_friend_gets_through(tmp_path: Path) -> None:
    """Regression: a stranger's slow calls took all ``max_concurrent_calls`` slots; the friend timed out."""
    archive = service_archive(tmp_path / "src", SERVICE, LOAD_SERVICE)
    config = fast_config()
    config = replace(config, runtime=replace(config.runtime, max_concurrent_calls=4))
    with trio.fail_after(30):
        async with swarm(2, tmp_dir=tmp_path / "swarm", config=config) as nodes, raw_peer() as stranger:
            victim, friend = nodes
            await victim.rpc.call("orchestrator/install_service", {"archive_data": archive})
            await victim.rpc.call("orchestrator/start_service", {"service_name": SERVICE})
            stream = await open_raw_stream(stranger, victim)
            for rid in range(1, 21):
                request = {"t": "req", "id": rid, "method": f"{SERVICE}/sleep", "params": {"seconds": 5.0}}
                await stream.send(frame(cbor2.dumps(request)))
            with trio.fail_after(2):  # a turn at once, not behind the stranger's 5 s calls
                answer = await friend.proxy(victim.peer_id).call_method(f"{SERVICE}/echo", {"value": 1})
            assert answer == {"value": 1}
            await stream.raw.close()
            frames, _ = await read_to_end(stream, limit=10)
            busy = [f["id"] for f in frames if f["t"] == "err" and f["error"]["code"] == "busy"]
            assert len(busy) == 20 - 2  # half of the 4 slots per stranger


# -- fuzzing the RPC protocol as an admin ------------------------------------------------------


@dataclass
class Portal:
    """Runs coroutines in the fixture's trio loop from the (synchronous) hypothesis test."""

    token: trio.lowlevel.TrioToken
    victim: Node
    friend: Node
    attacker: IHost
    digests: dict[str, str]

    def run(self, fn: Callable[..., Awaitable[T]], *args: Any) -> T:
        return trio.from_thread.run(fn, *args, trio_token=self.token)


@pytest.fixture(scope="module")
def admin_portal(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Portal]:
    """A victim with ``load_service`` running, a friend, and a raw peer that is the victim's admin."""
    root = tmp_path_factory.mktemp("admin-fuzz")
    archive = service_archive(root / "src", SERVICE, LOAD_SERVICE)
    digest = dict([expected_digest(archive, root / "tree")])

    async def main(publish: Callable[[Portal], Awaitable[None]]) -> None:
        async with swarm(2, tmp_dir=root / "swarm", config=fast_config()) as nodes, raw_peer() as attacker:
            victim = nodes[0]
            await victim.rpc.call("orchestrator/install_service", {"archive_data": archive})
            await victim.rpc.call("orchestrator/start_service", {"service_name": SERVICE})
            await victim.set_role(attacker.get_id().to_base58(), "admin")
            await publish(Portal(trio.lowlevel.current_trio_token(), victim, nodes[1], attacker, digest))

    with trio_loop_in_thread(main, name="admin-fuzz-loop") as ready:
        yield ready


values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**64), 2**64 - 1)
    | st.text(max_size=30)
    | st.binary(max_size=200),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=10), children, max_size=3)
    ),
    max_leaves=8,
)
names = st.sampled_from([SERVICE, "ghost", "", "../etc", "a" * 300, "load_service/../x"])
param_names = sorted({name for spec in METHODS.values() for name in spec.params} | {"peer", "caller"})
requests = st.fixed_dictionaries(
    {
        "method": st.sampled_from([f"orchestrator/{m}" for m in METHODS] + [f"{SERVICE}/echo", "x/y", "bad"]),
        "params": st.dictionaries(st.sampled_from(param_names), values | names, max_size=4),
    }
)
mutations = st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 255)), max_size=3)

ADMIN_FUZZ = settings(
    max_examples=40,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)


async def admin_attack(
    portal: Portal, batch: list[dict[str, Any]], flips: list[tuple[int, int]]
) -> list[Any]:
    stream = await open_raw_stream(portal.attacker, portal.victim)
    data = bytearray()
    for rid, request in enumerate(batch, start=1):
        data += frame(cbor2.dumps({"t": "req", "id": rid, **request}))
    for position, value in flips:  # frame-level damage: a byte anywhere, length prefixes included
        if data:
            data[position % len(data)] = value
    with contextlib.suppress(Exception):  # reset by the node already: an allowed outcome
        await stream.send(bytes(data))
    await stream.raw.close()
    frames, end = await read_to_end(stream, limit=10)
    assert end in ("eof", "broken")
    listing = await portal.friend.proxy(portal.victim.peer_id).call_method(
        "orchestrator/list_services", time_limit=5
    )
    assert isinstance(listing["total_installed"], int)
    return frames


@ADMIN_FUZZ
@given(batch=st.lists(requests, min_size=1, max_size=4), flips=mutations)
def test_fuzzed_requests_from_an_admin_leave_a_consistent_node(
    admin_portal: Portal, batch: list[dict[str, Any]], flips: list[tuple[int, int]]
) -> None:
    frames = admin_portal.run(admin_attack, admin_portal, batch, flips)
    for message in frames:
        assert message["t"] in ("res", "err"), message
        if message["t"] == "err":
            assert set(message["error"]) == {"code", "type", "message"}
            assert message["error"]["code"] != "internal_error", message  # every failure is a typed one
    check_store(admin_portal.victim.orchestrator, admin_portal.digests)


# -- every abuse at once, and a friend that must never notice ---------------------------------


@asynccontextmanager
async def running(
    coroutines: list[Callable[[trio.Event], Awaitable[None]]], stop: trio.Event
) -> AsyncIterator[None]:
    async with trio.open_nursery() as nursery:
        for fn in coroutines:
            nursery.start_soon(fn, stop)
        try:
            yield
        finally:
            stop.set()


async def until(stop: trio.Event, attack: Callable[[], Awaitable[None]]) -> None:
    """Repeat ``attack`` until ``stop``; whatever the node does to the attacker is fine."""
    while not stop.is_set():
        with trio.move_on_after(5):
            try:
                await attack()
            except Exception:
                await trio.sleep(0.05)


async def test_a_friend_is_served_through_every_abuse_at_once(tmp_path: Path) -> None:
    archive = service_archive(tmp_path / "src", SERVICE, LOAD_SERVICE)
    config = fast_config(read_timeout=0.5, write_timeout=0.5, idle_timeout=3.0, max_streams_total=32)
    with trio.fail_after(90):
        async with swarm(2, tmp_dir=tmp_path / "swarm", config=config) as nodes:
            victim, friend = nodes
            await victim.rpc.call("orchestrator/install_service", {"archive_data": archive})
            await victim.rpc.call("orchestrator/start_service", {"service_name": SERVICE})
            async with (
                raw_peer() as a1,
                raw_peer() as a2,
                raw_peer() as a3,
                raw_peer() as a4,
                raw_peer() as a5,
            ):

                def req(rid: int, method: str, params: dict[str, Any]) -> bytes:
                    return frame(cbor2.dumps({"t": "req", "id": rid, "method": method, "params": params}))

                async def holder(host: IHost) -> None:  # one cheap request, then hold the stream idle
                    stream = await open_raw_stream(host, victim)
                    await stream.send(req(1, "orchestrator/list_services", {}))
                    await read_to_end(stream, limit=30)

                async def slow_flood() -> None:  # more slow calls than the service has slots
                    stream = await open_raw_stream(a2, victim)
                    for rid in range(1, 65):
                        await stream.send(req(rid, f"{SERVICE}/sleep", {"seconds": 3.0}))
                    await read_to_end(stream, limit=10)

                async def slowloris() -> None:
                    stream = await open_raw_stream(a3, victim)
                    for byte in (1000).to_bytes(4, "big") + b"\xa1" * 50:
                        await stream.send(bytes([byte]))
                        await trio.sleep(0.05)

                async def malformed() -> None:
                    for _, data, _ in CASES:
                        stream = await open_raw_stream(a3, victim)
                        await stream.send(data)
                        await read_to_end(stream, limit=3)

                async def never_reads() -> None:
                    stream = await open_raw_stream(a4, victim)
                    for rid in range(1, 9):
                        await stream.send(req(rid, f"{SERVICE}/echo", {"value": os.urandom(500_000)}))
                    await trio.sleep(3)
                    await stream.reset()

                async def liar() -> None:
                    stream = await open_raw_stream(a5, victim)
                    lies = [
                        {"t": "cancel", "id": 77},
                        {"t": "req", "id": 1, "method": f"{SERVICE}/echo", "params": {}},
                        {"t": "req", "id": 1, "method": f"{SERVICE}/echo", "params": {}},  # duplicate id
                        {"t": "res", "id": 1, "result": "I am the server"},
                    ]
                    await stream.send(b"".join(frame(cbor2.dumps(lie)) for lie in lies))
                    await read_to_end(stream, limit=3)

                failures: list[str] = []
                calls = 0

                async def watchdog(stop: trio.Event) -> None:
                    nonlocal calls
                    proxy = friend.proxy(victim.peer_id)
                    while not stop.is_set():
                        method, params = [
                            (f"{SERVICE}/echo", {"value": calls}),
                            ("orchestrator/list_services", {}),
                        ][calls % 2]
                        try:
                            await proxy.call_method(method, params, time_limit=2.0)
                        except OrchestratorError as exc:
                            failures.append(f"call {calls} ({method}): {exc!r}")
                        calls += 1
                        await trio.sleep(0.1)

                attacks = [
                    *(
                        lambda stop, h=h: until(stop, lambda: holder(h))
                        for h in (a1, a1, a1, a1, a1, a1, a1, a1)
                    ),
                    *(
                        lambda stop, h=h: until(stop, lambda: holder(h))
                        for h in (a5, a5, a5, a5, a5, a5, a5, a5)
                    ),
                    *(lambda stop, h=h: until(stop, lambda: holder(h)) for h in (a4, a4, a4, a4, a4, a4)),
                    lambda stop: until(stop, slow_flood),
                    lambda stop: until(stop, slowloris),
                    lambda stop: until(stop, malformed),
                    lambda stop: until(stop, never_reads),
                    lambda stop: until(stop, liar),
                ]
                stop = trio.Event()
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(watchdog, stop)
                    async with running(attacks, stop):
                        await trio.sleep(5)
                assert calls >= 20, f"only {calls} calls in 5 s"
                assert failures == [], failures
            with trio.fail_after(10):  # the attackers are gone: so are their streams
                while victim.stats()["inbound_streams_open"] > 1:  # noqa: ASYNC110 - polled counter
                    await trio.sleep(0.05)
            unit = victim.orchestrator.supervisor.unit(SERVICE)
            assert unit.process is not None
            assert unit.process.admission.peak <= unit.process.admission.limits.remote
            assert await friend.proxy(victim.peer_id).call_method(f"{SERVICE}/echo", {"value": 1}) == {
                "value": 1
            }


# -- a lying callee: our node calls a peer that answers wrong ----------------------------------


LIES: dict[str, Callable[[int], bytes]] = {
    "unknown_id": lambda rid: frame(cbor2.dumps({"t": "res", "id": rid + 1000, "result": 1})),
    "garbage": lambda rid: frame(b"\xff\xfe\xfd"),
    "huge_frame": lambda rid: (2**31).to_bytes(4, "big"),
    "request_to_client": lambda rid: frame(cbor2.dumps({"t": "req", "id": 1, "method": "a/b", "params": {}})),
    "half_frame_then_close": lambda rid: frame(cbor2.dumps({"t": "res", "id": rid, "result": 1}))[:5],
    "silence": lambda rid: b"",
}


EXPECTED_LIES = {
    "unknown_id": ("ProtocolError", "unknown_request_id"),
    "garbage": ("ProtocolError", "bad_cbor"),
    "huge_frame": ("ProtocolError", "frame_too_large"),
    "request_to_client": ("ProtocolError", "unexpected_message"),
    "half_frame_then_close": ("ProtocolError", "truncated_frame"),
    "silence": ("ServiceCallError", "call_timeout"),
}


async def test_a_lying_callee_costs_a_clear_error_within_the_deadline(tmp_path: Path) -> None:
    async def lying_server(stream: INetStream) -> None:
        try:
            data = await stream.read(65536)
            payload = cbor2.loads(data[4:])
            answer = LIES[payload["params"]["lie"]](payload["id"])
            if answer:
                await stream.write(answer)
                await stream.close()
            else:
                await trio.sleep(30)
        except Exception:
            await stream.reset()

    with trio.fail_after(60):
        async with swarm(1, tmp_dir=tmp_path, config=fast_config()) as nodes, raw_peer() as liar:
            node = nodes[0]
            liar.set_stream_handler(TProtocol(RPC_PROTOCOL_ID), lying_server)
            address = f"{liar.get_addrs()[0]}"
            peer = await node.connect(address if "/p2p/" in address else f"{address}/p2p/{liar.get_id()}")
            outcomes: dict[str, tuple[str, str]] = {}
            for lie in LIES:
                started = trio.current_time()
                with pytest.raises(OrchestratorError) as failed:
                    await node.proxy(peer).call_method("liar/answer", {"lie": lie}, time_limit=2.0)
                elapsed = trio.current_time() - started
                assert elapsed < 3.0, (lie, elapsed)
                outcomes[lie] = (type(failed.value).__name__, failed.value.code)
            assert outcomes == EXPECTED_LIES, outcomes
            # our node is fine: it still serves and calls
            assert (await node.rpc.call("orchestrator/list_services"))["total_installed"] == 0


# -- fuzzing the transfer protocol as a deployer ----------------------------------------------

TRANSFER = "/p2p-orchestrator/transfer/1.0.0"
TRANSFER_TYPES = {"fetch", "offer", "have", "want", "cancel", "chunk", "done", "abort", "result"}


@dataclass
class TransferPortal(Portal):
    manifest: dict[str, Any]
    chunks: list[bytes]


@pytest.fixture(scope="module")
def transfer_portal(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TransferPortal]:
    """A victim running ``load_service`` 1.0.0, a friend, a raw peer with the deployer role, and the
    manifest and chunks of a 2.0.0 the raw peer may (or may not) manage to push."""
    from p2p_orchestrator.transfer import MIN_CHUNK_SIZE, build_manifest

    root = tmp_path_factory.mktemp("transfer-fuzz")
    v1 = service_archive(root / "src", SERVICE, LOAD_SERVICE)
    v2 = service_archive(
        root / "src", SERVICE, LOAD_SERVICE, files={"assets/blob.bin": os.urandom(150_000).hex()}
    )
    (root / "v2.tar.gz").write_bytes(v2)
    manifest = build_manifest(root / "v2.tar.gz", MIN_CHUNK_SIZE)
    chunks = [v2[i : i + MIN_CHUNK_SIZE] for i in range(0, len(v2), MIN_CHUNK_SIZE)]
    digests = dict([expected_digest(v1, root / "t1"), expected_digest(v2, root / "t2")])

    async def main(publish: Callable[[TransferPortal], Awaitable[None]]) -> None:
        config = fast_config(read_timeout=1.0, write_timeout=1.0)
        async with swarm(2, tmp_dir=root / "swarm", config=config) as nodes, raw_peer() as attacker:
            victim = nodes[0]
            await victim.rpc.call("orchestrator/install_service", {"archive_data": v1})
            await victim.rpc.call("orchestrator/start_service", {"service_name": SERVICE})
            await victim.set_role(attacker.get_id().to_base58(), "deployer")
            token = trio.lowlevel.current_trio_token()
            await publish(
                TransferPortal(token, victim, nodes[1], attacker, digests, manifest.to_wire(), chunks)
            )

    with trio_loop_in_thread(main, name="transfer-fuzz-loop") as ready:
        yield ready


manifest_faults = st.sampled_from(
    ["none", "root", "total_size", "archive_hash", "chunk_size", "chunk_hashes"]
)
moves = st.one_of(
    st.tuples(st.just("offer"), st.sampled_from(["install", "install", "fetch", "x"]), manifest_faults),
    st.tuples(st.just("chunk"), st.integers(-1, 6), st.sampled_from(["right", "wrong", "short"])),
    st.tuples(st.just("have"), st.binary(max_size=4)),
    st.tuples(st.just("want"), st.lists(st.integers(-1, 6), max_size=4)),
    st.tuples(st.just("done")),
    st.tuples(st.just("result"), st.booleans()),
    st.tuples(st.just("fetch"), st.sampled_from([SERVICE, "ghost"])),
    st.tuples(st.just("raw"), st.binary(max_size=40)),
)


def transfer_bytes(
    portal: TransferPortal, plan: list[tuple[Any, ...]], flips: list[tuple[int, int]]
) -> bytes:
    """The frames of ``plan``: messages built as wire maps (so a local check cannot refuse them)."""
    out = bytearray()
    for move in plan:
        kind = move[0]
        message: dict[str, Any] | None = None
        if kind == "offer":
            manifest = dict(portal.manifest)
            fault = move[2]
            if fault == "root":
                manifest["root"] = bytes(32)
            elif fault == "total_size":
                manifest["total_size"] += 1
            elif fault == "archive_hash":
                manifest["archive_hash"] = "0" * 64
            elif fault == "chunk_size":
                manifest["chunk_size"] = 3
            elif fault == "chunk_hashes":
                manifest["chunk_hashes"] = manifest["chunk_hashes"][:-1]
            options = {"force_reinstall": False, "auto_start": move[1] == "install"}
            message = {
                "t": "offer",
                "manifest": manifest,
                "purpose": move[1],
                "options": options,
                "peers": [],
            }
        elif kind == "chunk":
            index = move[1]
            data = portal.chunks[index % len(portal.chunks)]
            data = {"right": data, "wrong": os.urandom(len(data)), "short": data[:10]}[move[2]]
            message = {"t": "chunk", "index": index, "data": data}
        elif kind == "have":
            message = {"t": "have", "bits": move[1]}
        elif kind == "want":
            message = {"t": "want", "indices": move[1]}
        elif kind == "done":
            message = {"t": "done"}
        elif kind == "result":
            message = {"t": "result", "ok": move[1], "result": {}, "error": None}
        elif kind == "fetch":
            message = {"t": "fetch", "archive_hash": None, "service": move[1]}
        else:
            out += move[1]
        if message is not None:
            out += frame(cbor2.dumps(message))
    for position, value in flips:
        if out:
            out[position % len(out)] = value
    return bytes(out)


async def transfer_attack(portal: TransferPortal, data: bytes) -> tuple[list[dict[str, Any]], str]:
    host, victim = portal.attacker, portal.victim
    address = multiaddr.Multiaddr(victim.listen_addrs[0])
    await host.connect(info_from_p2p_addr(address))
    raw: Any = await host.new_stream(info_from_p2p_addr(address).peer_id, [TProtocol(TRANSFER)])
    stream = NetStream(raw)
    with contextlib.suppress(Exception):  # reset by the node already: an allowed outcome
        await stream.send(data)
    await stream.raw.close()
    frames, end = await read_to_end(stream, limit=10)
    with trio.fail_after(5):  # the node lets go of the stream
        while victim.transfers.limiter.open_streams() > 0:  # noqa: ASYNC110 - polled counter
            await trio.sleep(0.01)
    listing = await portal.friend.proxy(victim.peer_id).call_method(
        "orchestrator/list_services", time_limit=5
    )
    assert SERVICE in listing["services"]
    return frames, end


TRANSFER_FUZZ = settings(
    max_examples=30,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)


@TRANSFER_FUZZ
@given(
    plan=st.lists(moves, min_size=1, max_size=8),
    flips=st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 255)), max_size=1),
)
def test_fuzzed_transfer_streams_from_a_deployer_cost_only_their_stream(
    transfer_portal: TransferPortal, plan: list[tuple[Any, ...]], flips: list[tuple[int, int]]
) -> None:
    data = transfer_bytes(transfer_portal, plan, flips)
    frames, end = transfer_portal.run(transfer_attack, transfer_portal, data)
    assert end in ("eof", "broken"), end
    for message in frames:
        assert message.get("t") in TRANSFER_TYPES, message
        if message["t"] in ("abort", "result") and message.get("error") is not None:
            assert set(message["error"]) == {"code", "type", "message"}
            assert message["error"]["code"] != "internal_error", message  # every refusal is a typed one
    check_store(transfer_portal.victim.orchestrator, transfer_portal.digests)
