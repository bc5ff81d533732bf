"""A flood of release announcements costs a following node bounded memory, on a real node process.

The victim follows a service and trusts one publisher.  A peer with a role there announces as
fast as eight streams let it -- validly signed releases of ever newer versions, statements signed
by a key the victim does not trust, and bytes that are no statement -- while strangers (no role)
announce too, and a friend calls the victim every 50 ms and must never fail.  What bounds it: the
per-peer budget (1 a second, bursts of 10) refuses before a statement is parsed, strangers are
refused before anything is read, and the follower keeps one statement per followed service.
"""

from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path

import trio

from p2p_orchestrator.errors import OrchestratorError
from p2p_orchestrator.node import Node
from p2p_orchestrator.orchestrator.updates import ANNOUNCE_BURST, ANNOUNCE_RATE
from p2p_orchestrator.release import PublisherKey
from tests.node.support import fast_config
from tests.reliability.support import node_config, node_process, rss_bytes, write_config
from tests.reliability.test_exhaustion import Watch

NAME = "follow_me"
MiB = 1024 * 1024
FLOOD = 3000
STRANGERS = 4


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def test_an_announcement_flood_is_refused_cheaply_and_bounds_the_followers_memory(
    tmp_path: Path,
) -> None:
    trusted, untrusted = PublisherKey.generate(), PublisherKey.generate()
    home = tmp_path / "victim"
    config = node_config()
    config["publishers"] = {"ci": {"public_key": trusted.public_text, "services": [NAME]}}
    config["updates"] = {"follow": [NAME], "check_interval": 3600}
    write_config(home, config)
    now = int(time.time())

    def statement(i: int) -> bytes:
        key = trusted if i % 3 == 0 else untrusted
        if i % 3 == 2:
            return os.urandom(200)  # no statement at all
        digest = hashlib.sha256(str(i).encode()).hexdigest()
        return key.sign(NAME, f"1.0.{i}", digest, 1000 + i, issued_at=now, expires_at=now + 3600).to_bytes()

    statements = [statement(i) for i in range(FLOOD)]
    with trio.fail_after(240):
        async with (
            node_process(home) as victim,
            Node.open(tmp_path / "friend", config=fast_config()) as friend,
            Node.open(tmp_path / "flooder", config=fast_config()) as flooder,
        ):
            for peer in (friend, flooder):
                await victim.command("role", peer=peer.peer_id, role="reader")
                await peer.connect(victim.address)
            watch = Watch(victim, friend)
            outcomes: dict[str, int] = {}
            async with trio.open_nursery() as nursery:
                await nursery.start(watch.run)
                rss_before, cpu_before = rss_bytes(victim.pid), _cpu_seconds(victim.pid)
                started = trio.current_time()

                async def announce(node: Node, release: bytes) -> None:
                    try:
                        answer = await node.call_remote(
                            victim.peer_id, "orchestrator/announce_release", {"release": release}
                        )
                        key = answer["reason"]
                    except OrchestratorError as exc:
                        key = exc.code
                    outcomes[key] = outcomes.get(key, 0) + 1

                async def flood(node: Node, releases: list[bytes]) -> None:
                    for release in releases:
                        await announce(node, release)

                strangers = [
                    await nursery.start(_stranger, tmp_path / f"s{i}", victim.address)
                    for i in range(STRANGERS)
                ]
                async with trio.open_nursery() as attackers:
                    for lane in range(8):
                        attackers.start_soon(flood, flooder, statements[lane::8])
                    for stranger in strangers:
                        attackers.start_soon(flood, stranger, statements[:50])
                seconds = trio.current_time() - started
                cpu = _cpu_seconds(victim.pid) - cpu_before
                grown = watch.peak_rss - rss_before
                report = await friend.proxy(victim.peer_id).call_method("orchestrator/get_updates", {})
                nursery.cancel_scope.cancel()
    total = FLOOD + STRANGERS * 50
    print(
        f"{total} announcements in {seconds:.1f} s: {outcomes}; victim CPU {cpu:.2f} s "
        f"({cpu / total * 1e6:.0f} us each), peak RSS +{grown / MiB:.1f} MiB; friend calls {watch.calls}"
    )
    assert sum(outcomes.values()) == total
    assert outcomes.get("permission_denied", 0) == STRANGERS * 50  # strangers: refused unread
    read = FLOOD - outcomes.get("rate_limited", 0)  # what the flooder's budget let through
    assert read <= ANNOUNCE_BURST + seconds * ANNOUNCE_RATE + 1
    assert report["announcements_refused"] == outcomes.get("rate_limited", 0)
    entry = report["services"][NAME]
    assert entry["holders"] <= 1 and (entry["newest_version"] or "1.0.0").startswith("1.0.")
    assert watch.failures == [] and watch.calls > 10
    assert grown < 24 * MiB


async def _stranger(home: Path, address: str, *, task_status: trio.TaskStatus[Node]) -> None:
    """A node with a fresh key and no role on the victim, connected to it, for the test's duration."""
    async with Node.open(home, config=fast_config()) as node:
        await node.connect(address)
        task_status.started(node)
        await trio.sleep_forever()
