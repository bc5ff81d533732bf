"""Fuzz a live node's RPC handler with hypothesis: whatever a peer sends costs only its stream.

Hypothesis runs each example in a fresh call of the test function, but the
nodes must outlive the examples (starting a swarm per example would dominate
the run).  So a module fixture runs one trio loop in a thread, holding a
two-node swarm and a raw libp2p peer, and each example runs a coroutine in it
through a :class:`Portal`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

import cbor2
import pytest
import trio
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from libp2p.abc import IHost

from p2p_orchestrator.node import Node
from p2p_orchestrator.testing import swarm
from tests.node.support import fast_config, frame, open_raw_stream, raw_peer, read_to_end, trio_loop_in_thread

T = TypeVar("T")
FUZZ = settings(
    max_examples=50,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
MESSAGE_KEYS = ["t", "id", "method", "params", "result", "error", "item", "role", "version", "info"]
TYPES = ["req", "res", "err", "cancel", "item", "end", "hello", "bogus"]


@dataclass
class Portal:
    """Runs coroutines in the fixture's trio loop from the (synchronous) test thread."""

    token: trio.lowlevel.TrioToken
    victim: Node
    friend: Node
    attacker: IHost

    def run(self, fn: Callable[..., Awaitable[T]], *args: Any) -> T:
        return trio.from_thread.run(fn, *args, trio_token=self.token)


@pytest.fixture(scope="module")
def portal(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Portal]:
    root = tmp_path_factory.mktemp("fuzz")

    async def main(publish: Callable[[Portal], Awaitable[None]]) -> None:
        async with swarm(2, tmp_dir=root, config=fast_config()) as nodes, raw_peer() as attacker:
            await publish(Portal(trio.lowlevel.current_trio_token(), nodes[0], nodes[1], attacker))

    with trio_loop_in_thread(main, name="fuzz-trio-loop") as ready:
        yield ready


plain = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**64), 2**64 - 1)
    | st.text(max_size=20)
    | st.binary(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)
message_like = st.dictionaries(
    st.sampled_from(MESSAGE_KEYS),
    plain | st.sampled_from(TYPES) | st.sampled_from(["orchestrator/list_services"]),
)
payloads = st.one_of(
    st.binary(max_size=300),  # raw bytes, framed or not
    message_like.map(lambda m: frame(cbor2.dumps(m))),
    st.builds(lambda m: frame(cbor2.dumps({**m, "t": "req"})), message_like),
    plain.map(lambda v: frame(cbor2.dumps(v, canonical=False))),
)


async def attack(portal: Portal, chunks: list[bytes]) -> tuple[list[dict[str, Any]], str]:
    stream = await open_raw_stream(portal.attacker, portal.victim)
    for chunk in chunks:
        try:
            await stream.send(chunk)
        except Exception:
            break  # the node already reset the stream: that is an allowed outcome
    await stream.raw.close()  # end of our input; read what the node says
    outcome = await read_to_end(stream, limit=5)
    listing = await portal.friend.proxy(portal.victim.peer_id).call_method(
        "orchestrator/list_services", time_limit=5
    )
    assert listing["total_installed"] == 0
    return outcome


@FUZZ
@given(chunks=st.lists(payloads, min_size=1, max_size=4))
def test_any_input_costs_only_its_stream(portal: Portal, chunks: list[bytes]) -> None:
    frames, end = portal.run(attack, portal, chunks)
    assert end in ("eof", "broken")
    for message in frames:
        assert message["t"] in ("res", "err"), message
        if message["t"] == "err":
            assert set(message["error"]) == {"code", "type", "message"}
    stats = portal.victim.stats()
    assert stats["inbound_streams_open"] <= 2  # the friend's, and maybe this one finishing
