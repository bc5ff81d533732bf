"""Both sides of ``replica_failover`` (issue 17): a replicated service's holder dies, another answers.

**Layout**: 3 ``p2p-orchestrator node`` processes on 127.0.0.1 (this working tree's console
script, ``python -m p2p_orchestrator.cli``, default configuration: no ``config.toml``), fully
meshed (each later node bootstraps to the earlier ones), each giving the other two ``admin`` and
the caller ``reader`` (``roles.toml`` written before they start).  The example service is
installed on all three (``p2p-orchestrator install``), then ``p2p-orchestrator replicas
example_service 1`` on the first: the rendezvous ranking picks one holder.  The caller is a node
in this process (``Node.open``), connected to the three, calling ``example_service/example_method``
over the network as any client would.

**Sample** (the project side): SIGKILL the holder's node process (its service dies with it:
``PR_SET_PDEATHSIG``), then call ``example_service/example_method`` on each survivor every
20 ms until one answers (``{"message": "Hello from service!"}``); the sample is the time from
the kill to that first answer.  It includes the survivors noticing the closed connection at
their next heartbeat round (every 1 s, ``HEARTBEAT_SECONDS``), the replacement's start of its
copy (it has the archive already) and the call.  Then the killed node is started again (same
home, bootstrapping to the survivors) and the run waits until the count settles: exactly one
copy running, where every node's ``get_replicas`` view says it should be, with all three live.
``extra`` has that settle time (from the restart of the node process; ``settle_seconds``), the
node's own start to announcing itself, and which node took over.

**Baseline**: the local restart, the natural floor of a failover: a fourth node process (same
layout, the same caller) runs the example service without a replica rule; a sample SIGKILLs the
service's own process (its pid from ``get_service_info``) and times until the same node answers
the same call again, through the supervisor's restart policy.  The policy is the default one
(``on-failure``, first delay ``initial_delay`` 0.5 s, +-10 % jitter) except that the node's
``config.toml`` sets ``multiplier = 1`` and ``max_restarts = 1000`` for the service, so every
sample waits the first delay rather than a growing backoff or hitting the restart limit.

Usable alone too::

    .venv/bin/python scripts/benchlib/project_replicas.py --reps 3
"""

from __future__ import annotations

import json
import logging
import os
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

if __package__ in (None, ""):
    _SCRIPTS = Path(__file__).resolve().parent.parent
    sys.path[:0] = [str(_SCRIPTS), str(_SCRIPTS.parent)]

import trio

from benchlib import capabilities
from benchlib.model import Context, Measurement
from benchlib.procs import PYTHON, LineReader, program_env

if TYPE_CHECKING:
    from p2p_orchestrator.node import Node

__all__ = ["baseline", "measure_failover", "measure_local_restart", "project", "requires"]

NAME = "example_service"
CALL = f"{NAME}/example_method"
ANSWER = {"message": "Hello from service!"}
FLEET = 3
POLL = 0.02
"""Seconds between two rounds of calls while waiting for an answer."""
_STARTUP = 120.0
_SETTLE = 60.0
_ANSWER_WITHIN = 60.0
_STOP_GRACE = 30.0
_BASELINE_CONFIG = f"""\
# replica_failover's baseline: the default restart policy, without a growing backoff or a limit
[services.{NAME}.restart]
multiplier = 1.0
max_restarts = 1000
"""


def requires_here() -> str | None:
    """Why replicas cannot be measured with this code (no ``set_replicas``), or ``None``."""
    from p2p_orchestrator import Orchestrator

    if getattr(Orchestrator, "set_replicas", None) is None:
        return "no replica rules yet (issue 17): Orchestrator has no set_replicas"
    return None


async def requires(ctx: Context) -> str | None:
    """The scenario's availability check: the runtime, the network node and replica rules."""
    reason = await capabilities.all_of(capabilities.runtime, capabilities.node)(ctx)
    return reason if reason is not None else requires_here()


# -- node processes ---------------------------------------------------------------------------------


@dataclass
class _NodeProcess:
    """A ``p2p-orchestrator node`` process and what it announced."""

    home: Path
    proc: trio.Process
    peer_id: str
    address: str
    start_seconds: float
    """From launching the process to its announcement (control socket ready)."""


def _env() -> dict[str, str]:
    return {k: v for k, v in program_env().items() if k != "P2P_ORCHESTRATOR_HOME"}


def _open_log(home: Path) -> BinaryIO:
    """The file a node's stderr goes to, next to its home (made if need be)."""
    home.mkdir(parents=True, exist_ok=True)
    return open(home.parent / f"{home.name}.log", "ab")  # the caller closes it


def _log_tail(home: Path, lines: int = 20) -> str:
    try:
        text = (home.parent / f"{home.name}.log").read_text(errors="replace")
    except OSError:
        return "(no log)"
    return "\n".join(text.splitlines()[-lines:])


@dataclass
class _Processes:
    """The node processes started here: every one still alive is stopped (SIGTERM, then SIGKILL)."""

    started: list[trio.Process] = field(default_factory=list)

    async def start(self, home: Path, bootstrap: Sequence[str] = ()) -> _NodeProcess:
        argv = [PYTHON, "-m", "p2p_orchestrator.cli", "--home", str(home), "node"]
        argv += ["--listen", "/ip4/127.0.0.1/tcp/0", "--json"]
        for address in bootstrap:
            argv += ["--bootstrap", address]
        began = time.monotonic()
        with await trio.to_thread.run_sync(_open_log, home) as log:
            proc = await trio.lowlevel.open_process(
                argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=log, env=_env()
            )
        self.started.append(proc)
        assert proc.stdout is not None
        try:
            with trio.fail_after(_STARTUP):
                info = json.loads(await LineReader(proc.stdout).line())
        except (EOFError, trio.TooSlowError, ValueError) as exc:
            raise RuntimeError(
                f"node {home.name} did not start ({exc}); its log:\n{_log_tail(home)}"
            ) from exc
        return _NodeProcess(
            home, proc, str(info["peer_id"]), str(info["listen_addrs"][0]), time.monotonic() - began
        )

    async def aclose(self) -> None:
        with trio.CancelScope(shield=True):
            async with trio.open_nursery() as nursery:
                for proc in self.started:
                    nursery.start_soon(_stop, proc)


async def _stop(proc: trio.Process) -> None:
    if proc.returncode is None:
        proc.send_signal(signal.SIGTERM)  # the node stops its services, then exits
        with trio.move_on_after(_STOP_GRACE):
            await proc.wait()
    if proc.returncode is None:
        print(f"bench: node {proc.pid} did not exit in {_STOP_GRACE:g} s: killing it", file=sys.stderr)
        proc.kill()
        await proc.wait()
    if proc.stdout is not None:
        await proc.stdout.aclose()


@asynccontextmanager
async def _processes() -> AsyncIterator[_Processes]:
    processes = _Processes()
    try:
        with _quiet_libp2p():
            yield processes
    finally:
        await processes.aclose()


@contextmanager
def _quiet_libp2p() -> Iterator[None]:
    """No libp2p errors on stderr meanwhile: the caller's redials of a killed node's old address fail."""
    logger = logging.getLogger("libp2p")
    level = logger.level
    logger.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        logger.setLevel(level)


async def _cli(home: Path, *args: str) -> Any:
    """``p2p-orchestrator --home HOME ARGS --json`` against the running node there: its JSON."""
    argv = [PYTHON, "-m", "p2p_orchestrator.cli", "--home", str(home), *args, "--json"]
    done = await trio.run_process(argv, capture_stdout=True, capture_stderr=True, check=False, env=_env())
    if done.returncode != 0:
        raise RuntimeError(
            f"p2p-orchestrator {' '.join(args)} on {home.name} exited {done.returncode}: "
            f"{done.stdout.decode(errors='replace')}{done.stderr.decode(errors='replace')}"
        )
    return json.loads(done.stdout)


def _identity(home: Path) -> str:
    from p2p_orchestrator.node.identity import load_or_create_identity, peer_id_of

    return peer_id_of(load_or_create_identity(home))


def _write_roles(home: Path, roles: dict[str, str]) -> None:
    from p2p_orchestrator.node.access import ROLES_FILE_NAME

    path = home / ROLES_FILE_NAME
    path.write_text("[roles]\n" + "".join(f'"{peer}" = "{role}"\n' for peer, role in roles.items()))
    path.chmod(0o600)


def _archive(workdir: Path) -> Path:
    from benchlib.project import example_archive

    path = workdir / f"{NAME}.tar.gz"
    path.write_bytes(example_archive(workdir / "src"))
    return path


# -- calls ---------------------------------------------------------------------------------------------


async def _answers(caller: Node, peer: str) -> bool:
    """Whether ``peer`` answers the example method now (a refusal or an error: no)."""
    from p2p_orchestrator import OrchestratorError

    try:
        answer = await caller.call_remote(peer, CALL, {}, time_limit=5)
    except OrchestratorError:
        return False
    if answer != ANSWER:
        raise RuntimeError(f"{peer} answered {CALL} with {answer!r}")
    return True


async def _first_answer(caller: Node, peers: Sequence[str], within: float) -> tuple[str, int]:
    """Call every peer each :data:`POLL` seconds until one answers: (that peer, rounds of calls)."""
    rounds = 0
    with trio.fail_after(within):
        while True:
            rounds += 1
            answered: list[str] = []

            async def ask(peer: str, answered: list[str] = answered) -> None:
                if await _answers(caller, peer):
                    answered.append(peer)

            async with trio.open_nursery() as nursery:
                for peer in peers:
                    nursery.start_soon(ask, peer)
            if answered:
                return answered[0], rounds
            await trio.sleep(POLL)


async def _info(caller: Node, peer: str) -> dict[str, Any] | None:
    from p2p_orchestrator import OrchestratorError

    try:
        info = await caller.call_remote(peer, "orchestrator/get_service_info", {"service_name": NAME}, 5)
    except OrchestratorError:
        return None
    return info if isinstance(info, dict) else None


async def _settled(caller: Node, peers: Sequence[str], within: float) -> str:
    """Wait until exactly one copy runs, where every node wants it, all of ``peers`` live: its peer."""
    with trio.fail_after(within):
        while True:
            infos = [await _info(caller, peer) for peer in peers]
            if all(info is not None for info in infos):
                running = [peer for peer, info in zip(peers, infos, strict=True) if info and info["running"]]
                views = [(info or {}).get("replicas") or {} for info in infos]
                if (
                    len(running) == 1
                    and all(view.get("desired") == running for view in views)
                    and all(sorted(view.get("live", [])) == sorted(peers) for view in views)
                ):
                    return running[0]
            await trio.sleep(0.05)


# -- the project side: failover ----------------------------------------------------------------------


async def measure_failover(workdir: Path, repetitions: int, warmups: int = 0) -> Measurement:
    """``repetitions`` failovers (after ``warmups`` unrecorded ones), in seconds, on 3 node processes."""
    from p2p_orchestrator.node import Node
    from p2p_orchestrator.orchestrator.replicas import DEAD_AFTER_SECONDS, HEARTBEAT_SECONDS

    names = [f"n{i}" for i in range(FLEET)]
    homes = {name: workdir / name for name in names}
    caller_home = workdir / "caller"

    def prepare() -> Path:
        workdir.mkdir(parents=True, exist_ok=True)
        ids = {name: _identity(home) for name, home in homes.items()}
        caller_id = _identity(caller_home)
        for name, home in homes.items():
            _write_roles(home, {**{ids[o]: "admin" for o in names if o != name}, caller_id: "reader"})
        return _archive(workdir)

    archive = await trio.to_thread.run_sync(prepare)
    samples: list[float] = []
    settle: list[float] = []
    restart_announce: list[float] = []
    replacements: list[str] = []
    rounds: list[int] = []
    async with _processes() as processes, Node.open(caller_home) as caller:
        nodes: dict[str, _NodeProcess] = {}
        for name in names:
            nodes[name] = await processes.start(homes[name], [node.address for node in nodes.values()])
        for node in nodes.values():
            await caller.connect(node.address)
        async with trio.open_nursery() as nursery:
            for name in names:
                nursery.start_soon(_cli, homes[name], "install", str(archive))
        setup_began = time.monotonic()
        await _cli(homes[names[0]], "replicas", NAME, "1")
        by_peer = {node.peer_id: name for name, node in nodes.items()}
        holder = by_peer[await _settled(caller, list(by_peer), _SETTLE)]
        first_placement = time.monotonic() - setup_began
        for number in range(warmups + repetitions):
            killed = nodes[holder]
            survivors = [node.peer_id for name, node in nodes.items() if name != holder]
            began = time.monotonic()
            killed.proc.send_signal(signal.SIGKILL)
            replacement, polled = await _first_answer(caller, survivors, _ANSWER_WITHIN)
            seconds = time.monotonic() - began
            await killed.proc.wait()
            restarted = time.monotonic()
            back = await processes.start(killed.home, [nodes[by_peer[p]].address for p in survivors])
            if back.peer_id != killed.peer_id:
                raise RuntimeError(f"{holder} came back as {back.peer_id}, not {killed.peer_id}")
            nodes[holder] = back
            await caller.connect(back.address)
            holder = by_peer[await _settled(caller, list(by_peer), _SETTLE)]
            if number >= warmups:
                samples.append(seconds)
                settle.append(time.monotonic() - restarted)
                restart_announce.append(back.start_seconds)
                replacements.append(by_peer[replacement])
                rounds.append(polled)
    extra = {
        "nodes": FLEET,
        "count": 1,
        "heartbeat_seconds": HEARTBEAT_SECONDS,
        "dead_after_seconds": DEAD_AFTER_SECONDS,
        "poll_seconds": POLL,
        "settle_seconds": [round(s, 3) for s in settle],
        "settle_median_seconds": round(statistics.median(settle), 3),
        "node_restart_to_announce_seconds": round(statistics.median(restart_announce), 3),
        "first_placement_seconds": round(first_placement, 3),
        "replacements": replacements,
        "poll_rounds": rounds,
        "repetitions": repetitions,
        "warmups": warmups,
        "layout": "3 p2p-orchestrator node processes (default config) + a caller node in the bench process",
    }
    return Measurement(samples, extra)


# -- the baseline: the service's own restart on one node -----------------------------------------------


async def measure_local_restart(workdir: Path, repetitions: int, warmups: int = 0) -> Measurement:
    """SIGKILL of the service's process until the same node answers again, in seconds."""
    from p2p_orchestrator.node import Node

    home, caller_home = workdir / "solo", workdir / "caller"

    def prepare() -> Path:
        workdir.mkdir(parents=True, exist_ok=True)
        _identity(home)
        _write_roles(home, {_identity(caller_home): "reader"})
        (home / "config.toml").write_text(_BASELINE_CONFIG)
        return _archive(workdir)

    archive = await trio.to_thread.run_sync(prepare)
    samples: list[float] = []
    pids: list[int] = []
    async with _processes() as processes, Node.open(caller_home) as caller:
        node = await processes.start(home)
        await caller.connect(node.address)
        installed = await _cli(home, "install", str(archive))
        if not installed.get("auto_started"):
            await _cli(home, "start", NAME)
        await _first_answer(caller, [node.peer_id], _ANSWER_WITHIN)
        for number in range(warmups + repetitions):
            info = await _info(caller, node.peer_id)
            pid = info.get("pid") if info is not None else None
            if type(pid) is not int:
                raise RuntimeError(f"get_service_info of {NAME} has no pid: {info!r}")
            began = time.monotonic()
            os.kill(pid, signal.SIGKILL)
            await _first_answer(caller, [node.peer_id], _ANSWER_WITHIN)
            seconds = time.monotonic() - began
            after = await _info(caller, node.peer_id)
            if after is None or after.get("pid") == pid:
                raise RuntimeError(f"{NAME} answered but its process is still {pid}: {after!r}")
            if number >= warmups:
                samples.append(seconds)
                pids.append(pid)
    extra = {
        "restart_policy": (after or {}).get("restart_policy"),
        "repetitions": repetitions,
        "warmups": warmups,
        "layout": "1 p2p-orchestrator node process + the caller node in the bench process",
    }
    return Measurement(samples, extra)


# -- the bench's runners --------------------------------------------------------------------------------


async def project(ctx: Context) -> Measurement:
    """Failovers: 3 in ``--quick`` mode, else 7 after a warm-up."""
    return await measure_failover(ctx.workdir / "replica_failover", ctx.pick(3, 7), ctx.pick(0, 1))


async def baseline(ctx: Context) -> Measurement:
    """Local restarts through the restart policy: 3 in ``--quick`` mode, else 7 after a warm-up."""
    return await measure_local_restart(ctx.workdir / "replica_failover_local", ctx.pick(3, 7), ctx.pick(0, 1))


def main() -> int:
    """``project_replicas.py [--reps R] [--warmups W]``: measure both sides and print the JSON figures."""
    import argparse
    import tempfile

    parser = argparse.ArgumentParser(description="Measure a replicated service's failover.")
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--warmups", type=int, default=0)
    args = parser.parse_args()
    reason = requires_here()
    if reason is not None:
        print(reason, file=sys.stderr)
        return 1

    async def both(work: Path) -> tuple[Measurement, Measurement]:
        local = await measure_local_restart(work / "local", args.reps, args.warmups)
        failover = await measure_failover(work / "failover", args.reps, args.warmups)
        return failover, local

    with tempfile.TemporaryDirectory(prefix="p2p-replicas-bench-") as work:
        failover, local = trio.run(both, Path(work))
    median, floor = statistics.median(failover.samples), statistics.median(local.samples)
    print(json.dumps({
        "seconds": [round(s, 3) for s in failover.samples], "median": round(median, 3),
        "min": round(min(failover.samples), 3), "max": round(max(failover.samples), 3),
        "local_restart_seconds": [round(s, 3) for s in local.samples], "local_restart_median": round(floor, 3),
        "ratio": round(median / floor, 3), **failover.extra, "local_restart": local.extra,
    }, indent=2))  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
