"""``KeyedLocks`` serialises per key and keeps no lock for a key nobody uses."""

from __future__ import annotations

import trio
import trio.testing

from p2p_orchestrator._keyed_locks import KeyedLocks


async def test_one_key_at_a_time_and_nothing_left_behind() -> None:
    locks = KeyedLocks()
    order: list[str] = []
    inside = trio.Event()
    release = trio.Event()

    async def first() -> None:
        async with locks.hold("peer"):
            order.append("first in")
            inside.set()
            await release.wait()
            order.append("first out")

    async def second() -> None:
        async with locks.hold("peer"):
            order.append("second in")

    async with trio.open_nursery() as nursery:
        nursery.start_soon(first)
        await inside.wait()
        nursery.start_soon(second)
        await trio.testing.wait_all_tasks_blocked()
        async with locks.hold("other"):  # another key does not wait
            order.append("other")
        assert len(locks) == 1  # "other" is gone already; "peer" is held and awaited
        release.set()
    assert order == ["first in", "other", "first out", "second in"]
    assert len(locks) == 0

    for i in range(1000):  # keys from peers: each lock goes once released
        async with locks.hold(f"peer-{i}"):
            pass
    assert len(locks) == 0


async def test_a_cancelled_waiter_leaves_nothing_behind() -> None:
    locks = KeyedLocks()
    gave_up = trio.Event()

    async def waiter() -> None:
        with trio.move_on_after(0.01):
            async with locks.hold("peer"):
                raise AssertionError("must not get the lock while it is held")
        gave_up.set()

    async with locks.hold("peer"), trio.open_nursery() as nursery:
        nursery.start_soon(waiter)
        await gave_up.wait()
        assert len(locks) == 1  # still held here
    assert len(locks) == 0
