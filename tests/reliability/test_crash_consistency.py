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
"""

from __future__ import annotations

import json
import os
import random
import signal
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
from tests.helpers import make_archive, make_service
from tests.node.support import fast_config
from tests.reliability.consistency import check_store, expected_digest, recorded_processes
from tests.reliability.procs import same_process_alive
from tests.reliability.support import NodeExited, node_config, node_process, write_config

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
            partial = home / "partial"
            leftovers = sorted(p.name for p in partial.iterdir()) if partial.is_dir() else []
            assert set(leftovers) <= set(blob.digests), leftovers  # at most v3's partial, to resume
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
