"""A discrete-event simulation of a swarm distribution, driving the real sans-IO state machines.

Nodes are an origin and N targets; every node has an uplink and a downlink of ``rate`` bytes/s
and every message takes ``latency`` seconds one way.  Chunks are fluid flows: the flows active
at a moment share the links max-min fairly (each flow limited by its sender's uplink and its
receiver's downlink, as TCP flows on a switched LAN roughly do); control messages only take the
latency.  Each stream carries one chunk at a time, in the order its
:class:`~p2p_orchestrator.transfer.TransferSender` gives them.

Streams are those of the real protocol: origin -> each target (the push, purpose ``install``),
and every target -> every other target (a pull, purpose ``fetch``; the sender is the target
that holds chunks).  Each target has one :class:`~p2p_orchestrator.transfer.TransferReceiver`
with a :class:`~p2p_orchestrator.transfer.SwarmPlan`, writes verified chunks into a real
:class:`~p2p_orchestrator.transfer.PartialTransfer`, and announces every stored chunk on its own
sender streams -- exactly what the adapter does, minus sockets.  Nothing is timed on the wall
clock: the figures (completion times, origin upload) are in simulated seconds and bytes.
"""

from __future__ import annotations

import heapq
import itertools
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from p2p_orchestrator.errors import ProtocolError, ServiceDistributionError
from p2p_orchestrator.transfer import (
    Action,
    ChunkRejected,
    ChunkStored,
    PartialTransfer,
    Send,
    SourceEnded,
    SwarmPlan,
    TransferComplete,
    TransferManifest,
    TransferMessage,
    TransferReceiver,
    TransferSender,
)

ORIGIN = "origin"
FRAME_OVERHEAD = 64
"""Bytes of framing around a chunk (length prefix, CBOR map)."""


@dataclass
class _Stream:
    sender_node: str
    receiver_node: str
    sender: TransferSender
    open: bool = True
    busy: bool = False


@dataclass
class _Flow:
    stream: _Stream
    message: TransferMessage
    remaining: float
    rate: float = 0.0


@dataclass
class _Target:
    name: str
    partial: PartialTransfer
    receiver: TransferReceiver | None
    done_at: float | None = None
    corrupt_reads: bool = False


@dataclass
class SwarmResult:
    """What one simulated distribution came to."""

    done_at: dict[str, float | None]
    origin_upload: int
    bytes_from: dict[str, dict[str, int]]
    dropped: list[tuple[str, str, str]] = field(default_factory=list)
    """(target, source dropped, error code)."""
    rejected: int = 0

    @property
    def seconds(self) -> float:
        times = [t for t in self.done_at.values() if t is not None]
        return max(times) if len(times) == len(self.done_at) else math.inf


class SwarmSimulation:
    """One distribution of ``archive`` (with ``manifest``) from an origin to ``targets`` targets."""

    def __init__(
        self,
        workdir: Path,
        archive: Path,
        manifest: TransferManifest,
        targets: int,
        *,
        rate: float = 2.5e6,
        latency: float = 0.005,
        window: int = 4,
        plan: bool = True,
        peers: bool = True,
        unreachable_from_origin: frozenset[str] = frozenset(),
        pull_from: int | None = None,
    ) -> None:
        self.workdir = workdir
        self.archive = archive
        self.manifest = manifest
        self.rate = rate
        self.latency = latency
        self.window = window
        self.use_plan = plan
        self.use_peers = peers
        self.unreachable_from_origin = unreachable_from_origin
        self.pull_from = pull_from
        self.unsticks = 0
        self.names = [f"t{i}" for i in range(targets)]
        self.now = 0.0
        self._events: list[tuple[float, int, Callable[[], None]]] = []
        self._seq = itertools.count()
        self._flows: list[_Flow] = []
        self.streams: dict[tuple[str, str], _Stream] = {}
        self.targets: dict[str, _Target] = {}
        self.dropped: list[tuple[str, str, str]] = []
        self.rejected = 0
        self.origin_upload = 0
        self._bytes_from: dict[str, dict[str, int]] = {}
        workdir.mkdir(parents=True, exist_ok=True)
        for name in self.names:
            partial = PartialTransfer.create(workdir / name, manifest, fsync=False)
            self.targets[name] = _Target(name, partial, None)

    # -- the set-up ----------------------------------------------------------------------------

    def _read_origin(self, index: int) -> bytes:
        with open(self.archive, "rb") as file:
            file.seek(self.manifest.chunk_offset(index))
            return file.read(self.manifest.chunk_length(index))

    def _read_target(self, target: _Target) -> Callable[[int], bytes]:
        def read(index: int) -> bytes:
            data = target.partial.read_chunk(index)
            return bytes(b ^ 0xFF for b in data[:16]) + data[16:] if target.corrupt_reads else data

        return read

    def join(self, name: str) -> None:
        """Target ``name`` starts (or comes back): its receiver, the origin's push, the peer streams."""
        target = self.targets[name]
        plan = SwarmPlan.of(self.names, ORIGIN, name) if self.use_plan else None
        target.receiver = TransferReceiver(target.partial, window=self.window, plan=plan)
        if name not in self.unreachable_from_origin:
            self._open(ORIGIN, name, TransferSender(self.manifest, self._read_origin, peers=()))
        if not self.use_peers:
            return
        for other in self.names:
            peer = self.targets[other]
            if other == name or peer.receiver is None:
                continue
            pairs = [(src, dst, holder) for src, dst, holder in ((other, name, peer), (name, other, target))
                     if self._pulls(dst, src)]  # fmt: skip
            for src, dst, holder in pairs:
                sender = TransferSender(
                    self.manifest, self._read_target(holder), purpose="fetch", have=holder.partial.have()
                )
                self._at(2 * self.latency, lambda s=src, d=dst, tx=sender: self._open(s, d, tx))

    def _pulls(self, receiver: str, holder: str) -> bool:
        """Whether ``receiver`` pulls from ``holder`` (all pairs, or the next ``pull_from`` in the ring)."""
        if self.pull_from is None:
            return True
        n = len(self.names)
        step = (self.names.index(holder) - self.names.index(receiver)) % n
        return 1 <= step <= self.pull_from

    def depart(self, name: str) -> None:
        """Target ``name`` goes away: every stream it has ends; others notice after the latency."""
        target = self.targets[name]
        for (src, dst), stream in list(self.streams.items()):
            if name in (src, dst) and stream.open:
                self._close(stream)
                if dst != name:
                    self._at(self.latency, lambda d=dst, s=src: self._source_closed(d, s))
        self._flows = [f for f in self._flows if f.stream.open]
        target.receiver = None
        target.partial.close()
        target.partial = PartialTransfer.resume(self.workdir / name, self.manifest, fsync=False)

    def lie(self, name: str) -> None:
        """Target ``name`` corrupts every chunk it serves (it still receives honestly)."""
        self.targets[name].corrupt_reads = True

    # -- the engine ----------------------------------------------------------------------------

    def _at(self, delay: float, action: Callable[[], None]) -> None:
        heapq.heappush(self._events, (self.now + delay, next(self._seq), action))

    def run(self, *, until: float = 600.0, on: dict[float, Callable[[], None]] | None = None) -> SwarmResult:
        """Start every target, run until all are done (or ``until``), with ``on[t]`` run at time t."""
        for name in self.names:
            self.join(name)
        for when, action in (on or {}).items():
            self._at(when, action)
        while self.now < until and not all(t.done_at is not None for t in self.targets.values()):
            if not self._step(until) and not self._unstick():
                break
        return SwarmResult(
            {n: t.done_at for n, t in self.targets.items()},
            self.origin_upload,
            {n: dict(t.receiver.bytes_from) if t.receiver else {} for n, t in self.targets.items()},
            self.dropped,
            self.rejected,
        )

    def _step(self, until: float) -> bool:
        self._share()
        next_event = self._events[0][0] if self._events else math.inf
        next_flow = min(
            (self.now + f.remaining / f.rate for f in self._flows if f.rate > 0), default=math.inf
        )
        if next_event == next_flow == math.inf:
            return False  # nothing in flight, nothing scheduled
        when = min(next_event, next_flow, until)
        for flow in self._flows:
            flow.remaining -= flow.rate * (when - self.now)
        self.now = when
        finished = [f for f in self._flows if f.remaining <= 1e-6]
        self._flows = [f for f in self._flows if f.remaining > 1e-6]
        for flow in finished:
            flow.stream.busy = False
            self._at(self.latency, lambda f=flow: self._to_receiver(f.stream, f.message))
            self._pump(flow.stream)
        while self._events and self._events[0][0] <= self.now:
            _, _, action = heapq.heappop(self._events)
            action()
        return True

    def _unstick(self) -> bool:
        """Nothing moves: what the adapter's stall timer does -- unstick every unfinished receiver."""
        self.unsticks += 1
        for target in self.targets.values():
            if target.receiver is not None and target.done_at is None:
                self._apply(target, target.receiver.unstick())
        return bool(self._events or self._flows)

    def _share(self) -> None:
        """Max-min fair rates: progressive filling over uplinks and downlinks."""
        capacity: dict[tuple[str, str], float] = {}
        users: dict[tuple[str, str], list[_Flow]] = {}
        for flow in self._flows:
            flow.rate = 0.0
            for key in (("up", flow.stream.sender_node), ("down", flow.stream.receiver_node)):
                capacity.setdefault(key, self.rate)
                users.setdefault(key, []).append(flow)
        active = set(map(id, self._flows))
        while active:
            counts = {k: sum(1 for f in fs if id(f) in active) for k, fs in users.items()}
            share = min(capacity[k] / c for k, c in counts.items() if c)
            for flow in self._flows:
                if id(flow) in active:
                    flow.rate += share
            saturated = set()
            for key, count in counts.items():
                capacity[key] -= share * count
                if count and capacity[key] <= 1e-9:
                    saturated.add(key)
            for key in saturated:
                for flow in users[key]:
                    active.discard(id(flow))

    # -- streams -------------------------------------------------------------------------------

    def _open(self, src: str, dst: str, sender: TransferSender) -> None:
        target = self.targets[dst]
        if target.receiver is None or (src != ORIGIN and self.targets[src].receiver is None):
            return
        stream = _Stream(src, dst, sender)
        self.streams[(src, dst)] = stream
        for message in sender.start():
            self._at(self.latency, lambda m=message: self._to_receiver(stream, m))

    def _close(self, stream: _Stream) -> None:
        stream.open = False

    def _pump(self, stream: _Stream) -> None:
        if not stream.open or stream.busy:
            return
        chunk = stream.sender.next_chunk()
        if chunk is None:
            return
        stream.busy = True
        if stream.sender_node == ORIGIN:
            self.origin_upload += len(chunk.data)
        self._flows.append(_Flow(stream, chunk, len(chunk.data) + FRAME_OVERHEAD))

    def _to_sender(self, stream: _Stream, message: TransferMessage) -> None:
        if not stream.open:
            return
        try:
            stream.sender.receive(message)
        except (ProtocolError, ServiceDistributionError):
            self._close(stream)
            self._at(self.latency, lambda: self._source_closed(stream.receiver_node, stream.sender_node))
            return
        self._pump(stream)

    def _to_receiver(self, stream: _Stream, message: TransferMessage) -> None:
        target = self.targets[stream.receiver_node]
        receiver = target.receiver
        if not stream.open or receiver is None:
            return
        try:
            actions = receiver.receive(stream.sender_node, message)
        except (ProtocolError, ServiceDistributionError) as exc:
            self.dropped.append((target.name, stream.sender_node, exc.code))
            self._close(stream)
            actions = receiver.source_closed(stream.sender_node)
        self._apply(target, actions)

    def _source_closed(self, node: str, source: str) -> None:
        target = self.targets[node]
        if target.receiver is not None:
            self._apply(target, target.receiver.source_closed(source))

    def _apply(self, target: _Target, actions: list[Action]) -> None:
        receiver = target.receiver
        assert receiver is not None
        for action in actions:
            if isinstance(action, Send):
                stream = self.streams.get((str(action.source), target.name))
                if stream is not None:
                    self._at(self.latency, lambda s=stream, m=action.message: self._to_sender(s, m))
            elif isinstance(action, ChunkStored):
                for (src, _), stream in self.streams.items():
                    if src == target.name and stream.open:
                        for message in stream.sender.announce([action.index]):
                            self._at(self.latency, lambda s=stream, m=message: self._to_receiver(s, m))
            elif isinstance(action, ChunkRejected):
                self.rejected += 1
            elif isinstance(action, SourceEnded):
                stream = self.streams.get((str(action.source), target.name))
                if stream is not None:
                    self._close(stream)
            elif isinstance(action, TransferComplete):
                receiver.finish()
                target.done_at = self.now
                self._apply(target, receiver.conclude({"installed": True}))


def simulate(
    workdir: Path, archive: Path, manifest: TransferManifest, targets: int, **options: Any
) -> SwarmResult:
    """Run one distribution to the end with default links (see :class:`SwarmSimulation`)."""
    until = options.pop("until", 600.0)
    return SwarmSimulation(workdir, archive, manifest, targets, **options).run(until=until)
