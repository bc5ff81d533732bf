"""A real node process SIGKILLed during an operation comes back consistent, at the old or the new state.

Each trial prepares a node home (in this process), runs a real node process on
it (:mod:`tests.reliability.node_proc`, ``Node.open(home)``), starts one
operation (install, upgrade, uninstall, rollback, start, stop, restart, or the
node's own start) and kills the process with SIGKILL, either at a named step
(``P2P_ORCHESTRATOR_CRASHPOINT``, the process kills itself there) or after a
random delay into the operation.  Then the node is opened again on the same
home and:

* the store is consistent (:func:`~tests.reliability.consistency.check_store`:
  version directories and database agree, archives match their hashes, each
  kept version's files are exactly its archive's tree, no staging, trash or
  temporary debris);
* the service is at its old or its new version (the new one if the operation
  had reported success before the kill);
* desired state is honoured: the service runs exactly when its desired state
  says so, and the operations that do not change it left it alone;
* no service process of the killed node is alive (same pid *and* start time).

``make test`` runs a handful of trials; ``make soak`` (``-m slow``) runs 56,
every scenario with named and random kills.

Receiving a distribution: the receiving node process is killed at a random
moment of a 16 MiB push (1 trial in ``make test``, 10 in ``make soak``); after
the restart the same checks hold, a partial transfer is all that may remain,
and the next distribution sends exactly the bytes the killed node had not
verified yet.

Fetching (``fetch_service``): the node process pulling v3 from an in-process
peer is killed once the peer has written a random number of chunks, at a named
step of the install that follows, or after a random delay (3 trials in ``make
test``, 12 in ``make soak``); after the restart the same checks hold, at most
v3's partial transfer remains (none once v3 is installed), and a second fetch
receives exactly the bytes the killed node had not verified.

The origin of a distribution: the node process distributing v3 to one target
(a push) or two (a swarm), in-process nodes that keep running, is killed once a
target has verified a random share of the archive or after a random delay (2
trials in ``make test``, 10 in ``make soak``).  The targets are consistent, at
v1 in the very process they ran before or wholly at v3, with at most v3's
partial transfer, and keep serving; the restarted origin is consistent and runs
its service; distributing again from it succeeds, each target resuming from the
chunks it had verified.
"""

from __future__ import annotations

import json
import os
import random
import signal
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import trio

from p2p_orchestrator import Orchestrator
from p2p_orchestrator.archive import pack_service_bytes
from p2p_orchestrator.node import Node
from p2p_orchestrator.runtime._procfs import process_start_ticks
from p2p_orchestrator.testing import swarm
from p2p_orchestrator.transfer._layout import read_ledger, read_stored_manifest
from tests.helpers import make_archive, make_service
from tests.node.support import fast_config
from tests.reliability.consistency import check_store, expected_digest, recorded_processes
from tests.reliability.procs import same_process_alive
from tests.reliability.support import NodeExited, NodeProcess, node_config, node_process, write_config

NAME = "example_service"
V1, V2 = "1.0.0", "2.0.0"
INSTALL_POINTS = (
    "store.stage.done",
    "store.install.before_move",
    "store.install.after_move",
    "store.install.before_commit",
    "store.install.after_commit",
    "runtime.spawn.before_pidfile",
    "runtime.spawn.after_pidfile",
)
SPAWN_POINTS = ("runtime.spawn.before_pidfile", "runtime.spawn.after_pidfile")


@dataclass(frozen=True)
class Scenario:
    """One operation to interrupt: the home it starts from, and the states it may leave."""

    name: str
    setup: tuple[str, ...]
    """Versions installed before, oldest first (the last is current)."""
    op: str | None
    """The node_proc command; ``None``: kill the node while it starts."""
    allowed: frozenset[str | None]
    """Versions the service may be at after the restart (``None``: not installed)."""
    after_done: str | None
    """The version once the operation has reported success."""
    points: tuple[str, ...] = ()
    """Named crash points the operation passes."""
    running: bool | None = True
    """Desired state before (``None``: chosen by the trial's seed)."""
    arg: str = NAME
    window: float = 0.3
    """Random kills land within this many seconds of the operation's start (about 1.3 times what
    the operation takes on an idle 2-core machine, so most land inside it)."""
    keeps_desired: bool = True
    """Whether the operation leaves the desired state as it was."""


SCENARIOS = {
    s.name: s
    for s in (
        Scenario("install", (), "install", frozenset({None, V1}), V1, INSTALL_POINTS[:5], running=False),
        Scenario("upgrade", (V1,), "install", frozenset({V1, V2}), V2, INSTALL_POINTS, running=None),
        Scenario(
            "uninstall",
            (V1, V2),
            "uninstall",
            frozenset({V2, None}),
            None,
            ("store.uninstall.before_commit", "store.uninstall.after_commit"),
            window=0.06,
        ),
        Scenario(
            "rollback",
            (V1, V2),
            "rollback",
            frozenset({V1, V2}),
            V1,
            ("store.rollback.before_commit", *SPAWN_POINTS),
            running=None,
            window=0.2,
        ),
        Scenario(
            "start",
            (V1,),
            "start",
            frozenset({V1}),
            V1,
            ("runtime.start.before_desired", *SPAWN_POINTS),
            running=False,
            window=0.17,
            keeps_desired=False,
        ),
        Scenario(
            "stop",
            (V1,),
            "stop",
            frozenset({V1}),
            V1,
            ("runtime.stop.before_desired",),
            window=0.04,
            keeps_desired=False,
        ),
        Scenario("restart", (V1,), "restart", frozenset({V1}), V1, SPAWN_POINTS, window=0.2),
        Scenario("boot", (V1, V2), None, frozenset({V2}), V2, SPAWN_POINTS, window=2.0),
    )
}


@dataclass(frozen=True)
class Trial:
    scenario: Scenario
    seed: int
    named: bool
    """Kill at a named crash point (else after a random delay)."""

    def __str__(self) -> str:
        return f"{self.scenario.name}-{'named' if self.named else 'random'}-{self.seed}"


QUICK = [
    Trial(SCENARIOS["upgrade"], 1, named=True),
    Trial(SCENARIOS["upgrade"], 2, named=False),
    Trial(SCENARIOS["uninstall"], 3, named=False),
    Trial(SCENARIOS["rollback"], 4, named=True),
    Trial(SCENARIOS["stop"], 5, named=False),
    Trial(SCENARIOS["boot"], 6, named=False),
]
FULL = [
    Trial(scenario, seed, named=bool(seed % 2) and bool(scenario.points))
    for scenario in SCENARIOS.values()
    for seed in range(100, 107)
]


@dataclass
class World:
    """The archives of the trials and the trees they must unpack to."""

    paths: dict[str, Path]
    hashes: dict[str, str]
    digests: dict[str, str] = field(default_factory=dict)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> World:
    """v1 and v2 of the example service, with ~200 files and ~1 MB so that staging takes a while."""
    root = tmp_path_factory.mktemp("archives")
    rng = random.Random(9)
    paths, hashes, digests = {}, {}, {}
    for version in (V1, V2):
        files = {f"assets/data/f{i:03d}.txt": f"{version} {i} " * rng.randint(10, 400) for i in range(200)}
        files["assets/blob.txt"] = rng.randbytes(400_000).hex()
        archive = make_archive(root / "src", version=version, files=files)
        paths[version] = root / f"{version}.tar.gz"
        paths[version].write_bytes(archive)
        archive_hash, digest = expected_digest(archive, root / f"tree-{version}")
        hashes[version], digests[archive_hash] = archive_hash, digest
    return World(paths, hashes, digests)


async def prepare(home: Path, world: World, scenario: Scenario, running: bool) -> None:
    """Install the scenario's versions and set the desired state, in this process."""
    write_config(home, node_config(fsync=True))
    async with Orchestrator(home) as orch:
        for version in scenario.setup:
            await orch.install_service(world.paths[version], force_reinstall=True)
        if scenario.setup and running:
            orch.store.set_desired_state(NAME, "running")


def _alive_now(pids: set[int]) -> dict[int, int]:
    found = {}
    for pid in pids:
        ticks = process_start_ticks(pid)
        if ticks is not None:
            found[pid] = ticks
    return found


def applicable_points(scenario: Scenario, running: bool) -> tuple[str, ...]:
    """The named points the operation passes: spawning only when a process is started."""
    spawns = running or scenario.op == "start"
    return tuple(p for p in scenario.points if spawns or not p.startswith("runtime."))


async def interrupt(
    home: Path, world: World, trial: Trial, rng: random.Random, running: bool
) -> tuple[bool, dict[int, int]]:
    """Run the operation in a node process and kill it; whether it reported success, and its services."""
    scenario = trial.scenario
    point = rng.choice(applicable_points(scenario, running)) if trial.named else None
    before: dict[int, int] = {}
    at_boot = point if scenario.op is None else None
    async with node_process(home, crashpoint=at_boot, wait_ready=scenario.op is not None) as node:
        if scenario.op is None:  # kill the node while it opens and restores its services
            if point is None:
                await trio.sleep(rng.uniform(0.8, scenario.window))
                before |= recorded_processes(home)
                node.signal(signal.SIGKILL)
        else:
            before |= _alive_now(set(node.ready["pids"].values()))
            args = {"archive": str(world.paths[V1 if scenario.name == "install" else V2])}
            if scenario.op != "install":
                args = {"name": scenario.arg}
            await node.send(scenario.op, crashpoint=point, **args)
            await node.wait_for("begin", limit=30)
            if point is None:
                await trio.sleep(rng.uniform(0.0, scenario.window))
                before |= recorded_processes(home)
                node.signal(signal.SIGKILL)
        code = await node.wait_exit(limit=60)
        assert code == -signal.SIGKILL, f"{trial}: the node exited with {code}:\n{node.stderr()}"
        before |= recorded_processes(home)
        try:  # what it printed before it died
            while True:
                await node.next_event()
        except NodeExited:
            pass
        done = any(e["event"] == "done" for e in node.events)
        errors = [e for e in node.events if e["event"] == "error"]
        assert not errors, f"{trial}: the operation failed on its own: {errors}"
    return done, before


async def run_trial(trial: Trial, world: World, home: Path) -> None:
    rng = random.Random(trial.seed)
    scenario = trial.scenario
    running = rng.random() < 0.6 if scenario.running is None else scenario.running
    await prepare(home, world, scenario, running)
    desired_before = "running" if running and scenario.setup else "stopped"
    done, before = await interrupt(home, world, trial, rng, running)

    async with Node.open(home) as node:
        orch = node.orchestrator
        check_store(orch, world.digests)
        record = orch.store.records.get(NAME)
        version = record.current.version if record is not None else None
        assert version in scenario.allowed, f"{trial}: {version} is neither the old nor the new state"
        if done:
            assert version == scenario.after_done, f"{trial}: reported done, but {version} after restart"
        if record is not None:
            if scenario.keeps_desired:
                assert record.desired_state == desired_before, f"{trial}: desired state changed"
            assert orch.is_running(NAME) == (record.desired_state == "running"), (
                f"{trial}: desired {record.desired_state}, state {orch.supervisor.unit(NAME).state}"
            )
            if orch.is_running(NAME):
                answer = await orch.rpc.call(f"{NAME}/example_method")
                assert answer == {"message": "Hello from service!"}
        survivors = [pid for pid, ticks in before.items() if same_process_alive(pid, ticks)]
        assert not survivors, f"{trial}: service processes of the killed node still run: {survivors}"


@pytest.mark.parametrize("trial", QUICK, ids=str)
async def test_sigkill_during_an_operation(trial: Trial, world: World, tmp_path: Path) -> None:
    with trio.fail_after(60):
        await run_trial(trial, world, tmp_path / "home")


@pytest.mark.slow
@pytest.mark.parametrize("trial", FULL, ids=str)
async def test_sigkill_during_an_operation_full(trial: Trial, world: World, tmp_path: Path) -> None:
    with trio.fail_after(90):
        await run_trial(trial, world, tmp_path / "home")


# -- killed while receiving a distribution ------------------------------------------------------

V3 = "3.0.0"
RECEIVE_QUICK = [11]
RECEIVE_FULL = list(range(200, 210))


@dataclass(frozen=True)
class Blob:
    """v3 of the example service with 16 MiB of incompressible bytes: a transfer that takes a while."""

    path: Path
    size: int
    digests: dict[str, str]


@pytest.fixture(scope="module")
def blob(tmp_path_factory: pytest.TempPathFactory) -> Blob:
    root = tmp_path_factory.mktemp("blob")
    service = make_service(root / "src", version=V3)
    (service / "assets" / "blob.bin").write_bytes(random.Random(3).randbytes(16 << 20))
    archive = pack_service_bytes(service)
    path = root / "v3.tar.gz"
    path.write_bytes(archive)
    return Blob(path, len(archive), dict([expected_digest(archive, root / "tree")]))


async def run_receive_trial(seed: int, world: World, blob: Blob, tmp_path: Path) -> None:
    """Kill the receiving node process at a random moment of a distribution; restart; resume."""
    rng = random.Random(seed)
    home = tmp_path / "target"
    digests = world.digests | blob.digests
    async with swarm(1, tmp_dir=tmp_path / "origin", config=fast_config()) as nodes:
        origin = nodes[0]
        origin.transfers.chunk_size = 256 * 1024
        await origin.orchestrator.install_service(blob.path)
        write_config(home, node_config(fsync=True, roles={origin.peer_id: "deployer"}))
        async with Orchestrator(home) as orch:
            await orch.install_service(world.paths[V1])
            orch.store.set_desired_state(NAME, "running")
        outcome: dict[str, Any] = {}
        async with node_process(home) as target:
            before = _alive_now(set(target.ready["pids"].values()))
            await origin.connect(target.address)

            async def distribute() -> None:
                outcome["result"] = await origin.orchestrator.distribute_service(NAME, [target.peer_id])

            async with trio.open_nursery() as nursery:
                nursery.start_soon(distribute)
                await trio.sleep(rng.uniform(0.05, 0.6))
                before |= recorded_processes(home)
                target.signal(signal.SIGKILL)
            assert await target.wait_exit(limit=30) == -signal.SIGKILL
            before |= recorded_processes(home)
        entry = outcome["result"]["results"][target.peer_id]

        async with Node.open(home) as node:
            orch = node.orchestrator
            check_store(orch, digests)
            version = orch.store.get(NAME).current.version
            assert version in (V1, V3), version
            if entry["success"]:
                assert version == V3
            assert orch.is_running(NAME)  # desired state: running
            leftovers = partial_transfers(home)  # at most v3's partial transfer, to resume
            assert set(leftovers) <= (set(blob.digests) if version == V1 else set()), leftovers
            survivors = [pid for pid, ticks in before.items() if same_process_alive(pid, ticks)]
            assert not survivors, f"service processes of the killed node still run: {survivors}"
            if version == V3:
                return
            # the next distribution resumes: it sends exactly what the killed node had not verified
            await origin.connect(node.listen_addrs[0])
            again = await origin.orchestrator.distribute_service(NAME, [node.peer_id])
            done = again["results"][node.peer_id]
            assert done["success"], done
            (only,) = done["result"]["transfer"]["tries"]
            assert only["receiver_had"] + only["bytes_sent"] == blob.size, only
            assert orch.store.get(NAME).current.version == V3
            check_store(orch, digests)


@pytest.mark.parametrize("seed", RECEIVE_QUICK)
async def test_sigkill_while_receiving_a_distribution(
    seed: int, world: World, blob: Blob, tmp_path: Path
) -> None:
    with trio.fail_after(90):
        await run_receive_trial(seed, world, blob, tmp_path)


@pytest.mark.slow
@pytest.mark.parametrize("seed", RECEIVE_FULL)
async def test_sigkill_while_receiving_a_distribution_full(
    seed: int, world: World, blob: Blob, tmp_path: Path
) -> None:
    with trio.fail_after(120):
        await run_receive_trial(seed, world, blob, tmp_path)


# -- killed while pulling an archive (fetch_service) --------------------------------------------

FETCH_CHUNK = 256 * 1024
"""Chunk size of the serving node's manifests (64 chunks of the 16 MiB archive)."""


@dataclass(frozen=True)
class Kill:
    """Where a trial kills a node that moves an archive."""

    seed: int
    when: str
    """``transfer``: once the sender has written a random number of chunks; ``install``: at a named
    step of the install that follows the transfer (a fetch only); ``random``: after a random delay."""
    targets: int = 1
    """Targets of the distribution (a killed origin only; 2 or more: the ``swarm`` strategy)."""
    point: str | None = None
    """``install``: this named step (else one chosen by the seed)."""

    def __str__(self) -> str:
        where = self.point.rsplit(".", 1)[-1] if self.point else self.when
        return f"{where}-{self.seed}" + (f"-{self.targets}targets" if self.targets > 1 else "")


FETCH_QUICK = [
    Kill(21, "transfer"),
    Kill(22, "install"),
    # installed, its partial transfer not yet discarded: the restarted node removes that copy
    Kill(23, "install", point="store.install.after_commit"),
]
FETCH_FULL = [Kill(seed, ("transfer", "install", "random")[seed % 3]) for seed in range(300, 312)]


def partial_transfers(home: Path) -> list[str]:
    """The entries of ``home/partial`` (partial transfers are named by their archive's sha256)."""
    partial = home / "partial"
    return sorted(p.name for p in partial.iterdir()) if partial.is_dir() else []


def verified_bytes(home: Path, archive_hash: str) -> int:
    """Bytes of the archive ``home``'s partial transfer holds, as its ledger says.

    After a SIGKILL the ledger is the truth: a chunk's index is appended only after its bytes
    were written, and the kernel keeps what a killed process wrote.
    """
    directory = home / "partial" / archive_hash
    if not directory.is_dir():
        return 0
    manifest = read_stored_manifest(directory)
    if (directory / "complete").exists():
        return manifest.total_size
    claimed = read_ledger(directory / "ledger", manifest.chunk_count)
    return sum(manifest.chunk_length(index) for index in claimed)


def trigger(threshold: int) -> tuple[trio.Event, Callable[[str, int], bool]]:
    """An event set once a transfer hook reports ``threshold`` bytes, and that hook (it never cuts)."""
    reached = trio.Event()

    def hook(peer: str, count: int) -> bool:
        if count >= threshold:
            reached.set()
        return False

    return reached, hook


async def drain(node: NodeProcess) -> tuple[bool, list[dict[str, Any]]]:
    """Read what a killed node process printed: whether its command was done, and its errors."""
    try:
        while True:
            await node.next_event()
    except NodeExited:
        pass
    done = any(e["event"] == "done" and e["op"] in ("fetch", "distribute") for e in node.events)
    return done, [e for e in node.events if e["event"] == "error"]


async def check_serving(orch: Orchestrator, version: str) -> None:
    """The service is at ``version``, runs (its desired state) and answers."""
    record = orch.store.get(NAME)
    assert record.current.version == version, record.current.version
    assert record.desired_state == "running" and orch.is_running(NAME)
    assert await orch.rpc.call(f"{NAME}/example_method") == {"message": "Hello from service!"}


async def run_fetch_trial(trial: Kill, world: World, blob: Blob, tmp_path: Path) -> None:
    """Kill a node process while it fetches v3 from a peer and installs it; restart; fetch again."""
    rng = random.Random(trial.seed)
    home = tmp_path / "fetcher"
    digests = world.digests | blob.digests
    (v3_hash,) = blob.digests
    write_config(home, node_config(fsync=True))
    async with Orchestrator(home) as orch:
        await orch.install_service(world.paths[V1])
        orch.store.set_desired_state(NAME, "running")
    async with swarm(1, tmp_dir=tmp_path / "server", config=fast_config()) as nodes:
        server = nodes[0]
        server.transfers.chunk_size = FETCH_CHUNK
        await server.orchestrator.install_service(blob.path)
        point = (trial.point or rng.choice(INSTALL_POINTS)) if trial.when == "install" else None
        reached, hook = trigger(rng.randrange(1, blob.size // FETCH_CHUNK) * FETCH_CHUNK)
        server.transfers.hooks.chunk_sent = hook
        async with node_process(home) as fetcher:
            before = _alive_now(set(fetcher.ready["pids"].values()))
            await server.set_role(fetcher.peer_id, "reader")
            assert (await fetcher.command("connect", address=server.listen_addrs[0]))["event"] == "done"
            await fetcher.send("fetch", name=NAME, peer=server.peer_id, crashpoint=point)
            await fetcher.wait_for("begin", limit=30)
            if trial.when == "transfer":
                with trio.fail_after(30):
                    await reached.wait()
            elif trial.when == "random":
                await trio.sleep(rng.uniform(0.0, 1.5))  # about the transfer and the install
            if point is None:
                before |= recorded_processes(home)
                fetcher.signal(signal.SIGKILL)
            code = await fetcher.wait_exit(limit=60)
            assert code == -signal.SIGKILL, f"{trial}: the node exited with {code}:\n{fetcher.stderr()}"
            before |= recorded_processes(home)
            done, errors = await drain(fetcher)
            assert not errors, f"{trial}: the fetch failed on its own: {errors}"
        server.transfers.hooks.chunk_sent = None

        async with Node.open(home) as node:
            orch = node.orchestrator
            check_store(orch, digests)
            version = orch.store.get(NAME).current.version
            assert version in (V1, V3), f"{trial}: {version} is neither the old nor the new state"
            if done:
                assert version == V3, f"{trial}: reported done, but {version} after restart"
            await check_serving(orch, version)
            survivors = [pid for pid, ticks in before.items() if same_process_alive(pid, ticks)]
            assert not survivors, f"{trial}: service processes of the killed node still run: {survivors}"
            leftovers = partial_transfers(home)  # at most v3's partial transfer, to resume
            assert set(leftovers) <= ({v3_hash} if version == V1 else set()), (trial, version, leftovers)
            had = verified_bytes(home, v3_hash)
            # the second fetch resumes: it receives exactly what the killed node had not verified
            # (nothing when v3 is installed already: the store's cache has it; reinstalled by force)
            await node.connect(server.listen_addrs[0])
            again = await orch.fetch_service(NAME, server.peer_id, force_reinstall=version == V3)
            received = again["transfer"]["bytes_received"]
            assert received == (0 if version == V3 else blob.size - had), (trial, had, again["transfer"])
            assert again["archive_hash"] == v3_hash
            await check_serving(orch, V3)
            check_store(orch, digests)
            assert partial_transfers(home) == [], partial_transfers(home)


@pytest.mark.parametrize("trial", FETCH_QUICK, ids=str)
async def test_sigkill_while_fetching(trial: Kill, world: World, blob: Blob, tmp_path: Path) -> None:
    with trio.fail_after(90):
        await run_fetch_trial(trial, world, blob, tmp_path)


@pytest.mark.slow
@pytest.mark.parametrize("trial", FETCH_FULL, ids=str)
async def test_sigkill_while_fetching_full(trial: Kill, world: World, blob: Blob, tmp_path: Path) -> None:
    with trio.fail_after(120):
        await run_fetch_trial(trial, world, blob, tmp_path)


# -- the origin of a distribution killed --------------------------------------------------------

ORIGIN_QUICK = [Kill(41, "transfer", targets=2), Kill(42, "random")]
ORIGIN_FULL = [
    Kill(seed, ("transfer", "random")[seed % 2], targets=1 if seed % 4 < 2 else 2) for seed in range(400, 410)
]


def service_pid(node: Node) -> int | None:
    unit = node.orchestrator.supervisor.find(NAME)
    return unit.process.pid if unit is not None and unit.process is not None else None


async def settled(targets: Sequence[Node], limit: float = 30.0) -> None:
    """Until no target has a transfer stream open (their ends are in the killed process: polled)."""
    with trio.fail_after(limit):
        while any(t.transfers.limiter.open_streams() for t in targets):  # noqa: ASYNC110
            await trio.sleep(0.02)


async def run_origin_trial(trial: Kill, world: World, blob: Blob, tmp_path: Path) -> None:
    """Kill the node process that distributes v3; the targets carry on; restart it; distribute again."""
    rng = random.Random(trial.seed)
    home = tmp_path / "origin"
    digests = world.digests | blob.digests
    (v3_hash,) = blob.digests
    write_config(home, node_config(fsync=True))
    async with Orchestrator(home) as orch:
        await orch.install_service(blob.path)
        orch.store.set_desired_state(NAME, "running")
    async with swarm(trial.targets, tmp_dir=tmp_path / "targets", config=fast_config()) as targets:
        peers = [target.peer_id for target in targets]
        running: dict[str, int | None] = {}
        for target in targets:
            await target.orchestrator.install_service(world.paths[V1])
            await target.orchestrator.start_service(NAME)
            running[target.peer_id] = service_pid(target)
        reached, hook = trigger(int(rng.uniform(0.05, 0.9) * blob.size))
        for target in targets:
            target.transfers.hooks.chunk_stored = hook
        async with node_process(home) as origin:
            before = _alive_now(set(origin.ready["pids"].values()))
            assert origin.ready["pids"].get(NAME), origin.ready
            for target in targets:
                await target.set_role(origin.peer_id, "deployer")
                assert (await origin.command("connect", address=target.listen_addrs[0]))["event"] == "done"
            await origin.send("distribute", name=NAME, targets=peers)
            await origin.wait_for("begin", limit=30)
            if trial.when == "transfer":
                with trio.fail_after(30):
                    await reached.wait()
            else:
                await trio.sleep(rng.uniform(0.0, 1.5))
            before |= recorded_processes(home)
            origin.signal(signal.SIGKILL)
            assert await origin.wait_exit(limit=30) == -signal.SIGKILL, origin.stderr()
            before |= recorded_processes(home)
            done, errors = await drain(origin)
            assert not errors, f"{trial}: the distribution failed on its own: {errors}"
        for target in targets:
            target.transfers.hooks.chunk_stored = None

        # the targets, still running, notice the origin's death and are left consistent
        await settled(targets)
        versions = {}
        for target in targets:
            orch = target.orchestrator
            check_store(orch, digests)
            version = versions[target.peer_id] = orch.store.get(NAME).current.version
            assert version in (V1, V3), f"{trial}: {version} is neither the old nor the new state"
            if done:
                assert version == V3, f"{trial}: reported done, but {version} on {target.peer_id}"
            await check_serving(orch, version)
            if version == V1:  # untouched: the same service process runs
                assert service_pid(target) == running[target.peer_id]
            leftovers = partial_transfers(orch.home)  # at most v3's partial transfer, to resume
            assert set(leftovers) <= ({v3_hash} if version == V1 else set()), (trial, version, leftovers)

        async with Node.open(home) as node:
            orch = node.orchestrator
            check_store(orch, digests)
            await check_serving(orch, V3)
            assert partial_transfers(home) == [], partial_transfers(home)
            survivors = [pid for pid, ticks in before.items() if same_process_alive(pid, ticks)]
            assert not survivors, f"{trial}: service processes of the killed node still run: {survivors}"
            had = {target.peer_id: verified_bytes(target.orchestrator.home, v3_hash) for target in targets}
            for target in targets:  # the targets still serve
                await node.connect(target.listen_addrs[0])
                answer = await node.proxy(target.peer_id).call_method(f"{NAME}/example_method")
                assert answer == {"message": "Hello from service!"}
            # distributed again (forced: a target may have v3 already, and forcing needs the
            # admin role there), it succeeds everywhere
            for target in targets:
                await target.set_role(node.peer_id, "admin")
            again = await orch.distribute_service(NAME, peers, force_reinstall=True)
            assert again["successful_distributions"] == len(peers), again
            for peer in peers:  # each target resumes from the chunks it had verified
                transfer = again["results"][peer]["result"]["transfer"]
                why = (trial, had[peer], transfer)
                if versions[peer] == V1:
                    assert transfer["tries"][0]["receiver_had"] == had[peer], why
                if versions[peer] == V1 and transfer["attempts"] == 1:
                    assert transfer["receiver"]["bytes"] + had[peer] == blob.size, why
        for target in targets:
            check_store(target.orchestrator, digests)
            await check_serving(target.orchestrator, V3)
            assert partial_transfers(target.orchestrator.home) == []


@pytest.mark.parametrize("trial", ORIGIN_QUICK, ids=str)
async def test_sigkill_the_origin_of_a_distribution(
    trial: Kill, world: World, blob: Blob, tmp_path: Path
) -> None:
    with trio.fail_after(90):
        await run_origin_trial(trial, world, blob, tmp_path)


@pytest.mark.slow
@pytest.mark.parametrize("trial", ORIGIN_FULL, ids=str)
async def test_sigkill_the_origin_of_a_distribution_full(
    trial: Kill, world: World, blob: Blob, tmp_path: Path
) -> None:
    with trio.fail_after(120):
        await run_origin_trial(trial, world, blob, tmp_path)


def _dead_pid() -> int:
    """A pid no process has now."""
    pid = 4_000_000
    while Path(f"/proc/{pid}").exists():
        pid -= 1
    return pid


async def test_what_a_killed_writer_left_is_removed_and_its_process_killed(tmp_path: Path) -> None:
    """A node killed mid atomic write leaves ``.<file>.<pid>.tmp``; one killed mid pid record, ``run/<s>.tmp``.

    The next node removes the first kind (when its writer is gone) and reads the
    second (its process is an orphan to kill) before removing it, so repeated
    crashes accumulate nothing.
    """
    import subprocess

    home = tmp_path / "home"
    home.mkdir()
    dead = home / f".peers.json.{_dead_pid()}.tmp"
    live = home / f".roles.toml.{os.getpid()}.tmp"  # a writer that still runs is left alone
    dead.write_text("{")
    live.write_text("[roles]")
    orphan = subprocess.Popen(["sleep", "60"], start_new_session=True)
    try:
        (home / "run").mkdir()
        ticks = process_start_ticks(orphan.pid)
        (home / "run" / "ghost.tmp").write_text(
            json.dumps({"pid": orphan.pid, "start_ticks": ticks, "pgid": orphan.pid})
        )
        async with Orchestrator(home):
            assert orphan.wait(timeout=5) == -signal.SIGKILL
            assert not dead.exists() and live.exists()
            assert list((home / "run").iterdir()) == []
    finally:
        orphan.kill()
        orphan.wait()
