"""``ReplicaKeeper``: keep COUNT copies of a service running across the fleet, with no leader.

``set_replicas("web", 3)`` makes a **rule**: the service, the count, which nodes are eligible (the
nodes listed, the nodes with a label, or by default every node that knows the rule), a version
number one above the last rule of that service, and the peer ID of the node that set it, signed
with that node's identity key (the key its peer ID is made of, so any node can check it).  The
rule spreads: its setter sends it to the peers it is connected to, each node that accepts a
newer rule passes it on, and heartbeats carry the version each node holds, so a node that was
away is sent the rule when it is back.  A node accepts a rule only if it is signed by its setter
and that setter has the ``deploy`` permission on this node.  Of two rules of one service the
higher version wins (then the later ``set_at``, then the greater setter ID): every node ends with
the same one.

**Placement** is computed by every node alike, from the rule and its own view of which eligible
nodes are alive: rendezvous hashing ranks the eligible live nodes by ``sha256(service, peer ID)``
and the first COUNT run a copy.  Each node acts only on itself: it starts its copy when it is
chosen (fetching the archive from a live node that has it, if it does not) and stops it when it
is not.  Liveness comes from heartbeats: every :data:`HEARTBEAT_SECONDS` a node calls
``replica_heartbeat`` on the peers it is connected to, and a peer not heard from (in either
direction) for :data:`DEAD_AFTER_SECONDS`, or whose connection closed (its process died), is
taken for dead: the next node in the ranking starts a copy.  When it is back it ranks first
again, starts its copy, and the node that replaced it, seeing it alive, stops its own: the count
settles at COUNT.

**Guarantees.**  With every node seeing the same live set, exactly ``min(COUNT, eligible live
nodes)`` copies run.  A node whose process dies (its connections close) is replaced within one
heartbeat round plus the replacement's start (its fetch and install, if it has no copy yet); one
that goes silent with its connections open (a partition) within ``DEAD_AFTER_SECONDS`` plus a
round plus that start.
While views differ (a node just died or came back, a partition), nodes may run more than COUNT
copies for about as long; never fewer than each side's live eligible nodes allow, since each side
places COUNT copies among the nodes it sees.  Once every node sees the same live set again (one
heartbeat round after a partition heals), they converge to exactly COUNT.
"""

from __future__ import annotations

import collections
import hashlib
import json
import logging
import math
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import cbor2
import trio

from p2p_orchestrator._files import write_atomically
from p2p_orchestrator._patterns import SERVICE_NAME
from p2p_orchestrator.callers import Permission
from p2p_orchestrator.errors import (
    OrchestratorError,
    PermissionDenied,
    ServiceCallError,
    ServiceDistributionError,
)
from p2p_orchestrator.orchestrator.distribution import Distribution
from p2p_orchestrator.orchestrator.running import ServiceRunner
from p2p_orchestrator.orchestrator.shared import Part, Shared
from p2p_orchestrator.runtime.service_metrics import read_metrics

__all__ = [
    "DEAD_AFTER_SECONDS",
    "HEARTBEAT_SECONDS",
    "ReplicaKeeper",
    "ReplicaNetwork",
    "ReplicaRule",
    "Scaling",
    "rank",
]

log = logging.getLogger("p2p_orchestrator")

REPLICAS_FILE = "replicas.json"
HEARTBEAT_SECONDS = 1.0
"""How often a node calls ``replica_heartbeat`` on its connected peers (and reconciles)."""
DEAD_AFTER_SECONDS = 4.0
"""A peer not heard from for this long is taken for dead (its copies are placed elsewhere)."""
MAX_RULES = 256
MAX_VIEWS = 1024
MAX_PEERS_IN_RULE = 1024
MAX_PENDING = 256
"""Rule exchanges (sent or asked for) under way at once; a peer's beat cannot make more."""
_DOMAIN = b"p2p-orchestrator replica rule 1\n"


@dataclass(frozen=True)
class Scaling:
    """Auto-scaling of a rule: keep ``metric`` per running copy near ``target``, the count within
    ``[minimum, maximum]``, changed at most once per ``cooldown`` seconds on each node."""

    minimum: int
    maximum: int
    metric: str
    """``calls_per_second`` (calls into the service through its node), or the name of a gauge or
    counter the service keeps in ``self.metrics``."""
    target: float
    cooldown: float = 30.0

    def __post_init__(self) -> None:
        if (
            type(self.minimum) is not int
            or type(self.maximum) is not int
            or not 0 <= self.minimum <= self.maximum
        ):
            raise ServiceCallError("scaling needs 0 <= min <= max (whole numbers)", code="bad_params")
        if self.maximum > 10_000:
            raise ServiceCallError("scaling max must be at most 10000", code="bad_params")
        if not isinstance(self.metric, str) or not 0 < len(self.metric) <= 128:
            raise ServiceCallError("scaling needs a metric name", code="bad_params")
        if not isinstance(self.target, int | float) or not self.target > 0:
            raise ServiceCallError("scaling target must be a number > 0", code="bad_params")
        if not isinstance(self.cooldown, int | float) or not 0 <= self.cooldown <= 86_400:
            raise ServiceCallError("scaling cooldown must be 0..86400 seconds", code="bad_params")

    def count_for(self, total: float) -> int:
        """The count that keeps ``total`` (the metric summed over the copies) near target per copy."""
        return max(self.minimum, min(self.maximum, math.ceil(total / self.target)))

    def to_wire(self) -> dict[str, Any]:
        return {
            "min": self.minimum,
            "max": self.maximum,
            "metric": self.metric,
            "target": float(self.target),
            "cooldown": float(self.cooldown),
        }

    @classmethod
    def from_wire(cls, raw: Any) -> Scaling:
        if not isinstance(raw, Mapping) or set(raw) != {"min", "max", "metric", "target", "cooldown"}:
            raise ServiceCallError(
                "not a replica rule: scaling must be {min, max, metric, target, cooldown}", code="bad_rule"
            )
        return cls(raw["min"], raw["max"], raw["metric"], raw["target"], raw["cooldown"])


@dataclass
class _Scale:
    """A node's current count of an auto-scaled rule, and when it last changed."""

    count: int
    changed: float


@dataclass(frozen=True)
class ReplicaRule:
    """How many copies of a service, where; versioned and signed by the node that set it."""

    service: str
    count: int
    version: int
    set_by: str
    set_at: float
    peers: tuple[str, ...] = ()
    """Only these nodes are eligible (empty: see ``label``)."""
    label: tuple[str, str] | None = None
    """Only the nodes with this ``[node] labels`` entry are eligible (``None`` and no ``peers``:
    every node that knows the rule)."""
    cleared: bool = False
    """The rule was removed (``--clear``): a tombstone, so the removal spreads like a rule."""
    scaling: Scaling | None = None
    """Auto-scaling: the count moves between bounds to keep a metric per copy near a target."""
    signature: bytes = b""

    def signed_bytes(self) -> bytes:
        """What the signature covers: every field but the signature, canonical CBOR."""
        body = self.to_wire()
        del body["signature"]
        return _DOMAIN + cbor2.dumps(body, canonical=True)

    def to_wire(self) -> dict[str, Any]:
        return {
            "service": self.service,
            "count": self.count,
            "version": self.version,
            "set_by": self.set_by,
            "set_at": self.set_at,
            "peers": list(self.peers),
            "label": list(self.label) if self.label is not None else None,
            "cleared": self.cleared,
            "scaling": self.scaling.to_wire() if self.scaling is not None else None,
            "signature": self.signature,
        }

    @classmethod
    def from_wire(cls, raw: Any) -> ReplicaRule:
        """A rule from its wire map; ``ServiceCallError`` (``bad_rule``) for anything malformed."""

        def bad(why: str) -> ServiceCallError:
            return ServiceCallError(f"not a replica rule: {why}", code="bad_rule")

        if not isinstance(raw, Mapping) or set(raw) != {
            "service", "count", "version", "set_by", "set_at", "peers", "label", "cleared", "scaling", "signature"
        }:  # fmt: skip
            raise bad("it must be a map of exactly the rule's fields")
        service, count, version = raw["service"], raw["count"], raw["version"]
        if not isinstance(service, str) or not SERVICE_NAME.fullmatch(service):
            raise bad("service must be a service name")
        if type(count) is not int or not 0 <= count <= 10_000:
            raise bad("count must be a whole number in 0..10000")
        if type(version) is not int or not 1 <= version < 2**63:
            raise bad("version must be a whole number >= 1")
        peers, label = raw["peers"], raw["label"]
        if (
            not isinstance(peers, list)
            or len(peers) > MAX_PEERS_IN_RULE
            or not all(isinstance(p, str) and 0 < len(p) <= 128 for p in peers)
        ):
            raise bad("peers must be a list of peer IDs")
        if label is not None and (
            not isinstance(label, list)
            or len(label) != 2
            or not all(isinstance(x, str) and len(x) <= 64 for x in label)
        ):
            raise bad("label must be [key, value]")
        if not isinstance(raw["set_by"], str) or not isinstance(raw["set_at"], int | float):
            raise bad("set_by must be a peer ID and set_at a time")
        if (
            type(raw["cleared"]) is not bool
            or not isinstance(raw["signature"], bytes)
            or len(raw["signature"]) > 256
        ):
            raise bad("cleared must be a boolean and signature bytes")
        return cls(
            service=service,
            count=count,
            version=version,
            set_by=raw["set_by"],
            set_at=float(raw["set_at"]),
            peers=tuple(peers),
            label=(label[0], label[1]) if label is not None else None,
            cleared=raw["cleared"],
            scaling=Scaling.from_wire(raw["scaling"]) if raw["scaling"] is not None else None,
            signature=raw["signature"],
        )

    def supersedes(self, other: ReplicaRule | None) -> bool:
        """Whether this rule replaces ``other`` (the same order on every node)."""
        if other is None:
            return True
        return (self.version, self.set_at, self.set_by) > (other.version, other.set_at, other.set_by)


def rank(service: str, peers: Sequence[str]) -> list[str]:
    """``peers`` in rendezvous order for ``service``: the first COUNT hold its copies."""

    def score(peer: str) -> bytes:
        return hashlib.sha256(f"{service}\0{peer}".encode()).digest()

    return sorted(peers, key=score, reverse=True)


@dataclass(frozen=True)
class ReplicaNetwork:
    """What the keeper needs of the network: who this node is, its peers, calls, signatures, roles."""

    peer_id: str
    peers: Callable[[], list[str]]
    call_peer: Callable[[str, str, dict[str, Any]], Any]
    sign: Callable[[bytes], bytes]
    verify: Callable[[str, bytes, bytes], bool]
    """``(peer ID, data, signature)``: whether that peer's identity key signed ``data``."""
    permissions_of: Callable[[str], frozenset[Permission]]


@dataclass
class _PeerView:
    """What this node last heard from a peer."""

    seen: float
    labels: dict[str, str] = field(default_factory=dict)
    rules: dict[str, int] = field(default_factory=dict)
    running: frozenset[str] = frozenset()
    installed: frozenset[str] = frozenset()
    load: dict[str, float] = field(default_factory=dict)
    """The scaling metric of each copy it runs."""


class ReplicaKeeper(Part):
    """Keeps this node's share of every replica rule; see the module docstring."""

    def __init__(
        self,
        shared: Shared,
        *,
        runner: ServiceRunner,
        distribution: Distribution,
        network: Callable[[], ReplicaNetwork | None],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(shared)
        self._runner = runner
        self._distribution = distribution
        self._network = network
        self._clock = clock
        self._path = self._catalog.home / REPLICAS_FILE
        self._rules: dict[str, ReplicaRule] = {}
        self._views: collections.OrderedDict[str, _PeerView] = collections.OrderedDict()
        self._nursery: trio.Nursery | None = None
        self._wake = trio.Event()
        self._scales: dict[str, _Scale] = {}
        self._load_here: dict[str, float] = {}
        """The scaling metric of each auto-scaled copy this node runs (read each heartbeat)."""
        self._calls_seen: dict[str, tuple[int, float]] = {}
        self._pending: set[tuple[str, str, str]] = set()
        """``(what, peer, service)`` of the rule exchanges under way: one each, at most :data:`MAX_PENDING`."""
        self._load()

    @property
    def labels(self) -> dict[str, str]:
        return dict(self._catalog.config.node.labels)

    # -- the API ------------------------------------------------------------------------------------

    async def set_rule(
        self,
        service: str,
        count: int | None,
        *,
        peers: Sequence[str] | None,
        label: str | None,
        clear: bool,
        scaling: Scaling | None = None,
    ) -> dict[str, Any]:
        """``set_replicas``: a new rule (or its removal), kept here and sent to the connected peers."""
        network = self._need_network()
        if not isinstance(service, str) or not SERVICE_NAME.fullmatch(service):
            raise ServiceCallError(f"{service!r:.80} is not a service name", code="bad_params")
        if not clear and (type(count) is not int or not 0 <= count <= 10_000):
            raise ServiceCallError("count must be a whole number in 0..10000", code="bad_params")
        chosen = tuple(dict.fromkeys(peers or ()))
        if len(chosen) > MAX_PEERS_IN_RULE or not all(isinstance(p, str) and p for p in chosen):
            raise ServiceCallError("peers must be a list of peer IDs", code="bad_params")
        parsed_label = None
        if label is not None:
            key, sep, value = label.partition("=") if isinstance(label, str) else ("", "", "")
            if not sep or not key or not value:
                raise ServiceCallError(f"label must be KEY=VALUE, got {label!r:.80}", code="bad_params")
            parsed_label = (key, value)
        if chosen and parsed_label is not None:
            raise ServiceCallError("give peers or a label, not both", code="bad_params")
        previous = self._rules.get(service)
        if len(self._rules) >= MAX_RULES and previous is None:
            raise ServiceCallError(f"at most {MAX_RULES} replica rules", code="too_many_rules")
        rule = ReplicaRule(
            service=service,
            count=0 if clear else int(count or 0),
            version=(previous.version if previous else 0) + 1,
            set_by=network.peer_id,
            set_at=time.time(),
            peers=chosen,
            label=parsed_label,
            cleared=clear,
            scaling=None if clear else scaling,
        )
        rule = replace(rule, signature=network.sign(rule.signed_bytes()))
        self._scales.pop(service, None)  # a new rule starts from its own count
        await self._keep(rule)
        self._spread(rule, exclude=None)
        log.info(
            "Replica rule of %s: %s (version %d)",
            service,
            "cleared" if clear else f"{rule.count} copies",
            rule.version,
        )
        return self.placement(service)

    def receive(self, raw: Any, *, relayer: str | None) -> dict[str, Any]:
        """``replica_rule``: a rule from a peer; kept (and passed on) if it is valid and newer."""
        rule = ReplicaRule.from_wire(raw)
        network = self._need_network()
        if not network.verify(rule.set_by, rule.signed_bytes(), rule.signature):
            raise PermissionDenied(
                f"the replica rule of {rule.service} is not signed by {rule.set_by}", code="bad_signature"
            )
        if Permission.DEPLOY not in network.permissions_of(rule.set_by) and rule.set_by != network.peer_id:
            raise PermissionDenied(
                f"{rule.set_by} may not set replica rules on this node (it needs the deploy permission here)"
            )
        current = self._rules.get(rule.service)
        if not rule.supersedes(current):
            return {"accepted": False, "version": current.version if current else 0}
        if current is None and len(self._rules) >= MAX_RULES:
            raise ServiceCallError(
                f"this node keeps at most {MAX_RULES} replica rules", code="too_many_rules"
            )
        self._rules[rule.service] = rule
        self._scales.pop(rule.service, None)
        self._save_soon()
        self._spread(rule, exclude=relayer)
        self._wake.set()
        log.info(
            "Replica rule of %s version %d from %s (via %s)", rule.service, rule.version, rule.set_by, relayer
        )
        return {"accepted": True, "version": rule.version}

    def rules_of(self, services: Sequence[str]) -> dict[str, Any]:
        """``replica_rules``: the wire form of the rules of ``services`` this node holds."""
        return {
            "rules": {s: self._rules[s].to_wire() for s in list(services)[:MAX_RULES] if s in self._rules}
        }

    def heartbeat(self, beat: Any, *, peer: str) -> dict[str, Any]:
        """``replica_heartbeat``: note what ``peer`` says of itself; answer with this node's beat."""
        self._note(peer, beat)
        return self._beat()

    def placement(self, service: str) -> dict[str, Any]:
        """The rule of ``service`` and where its copies should run and do run, as this node sees it."""
        rule = self._rules.get(service)
        if rule is None or rule.cleared:
            return {"service_name": service, "rule": None, "desired": [], "running": [], "live": []}
        live = self._live_eligible(rule)
        count = self._count(rule)
        desired = rank(service, live)[:count]
        running = sorted(p for p in live if self._runs(p, service))
        return {
            "service_name": service,
            "count": count,
            "rule": {
                "count": rule.count,
                "scaling": rule.scaling.to_wire() if rule.scaling is not None else None,
                "version": rule.version,
                "set_by": rule.set_by,
                "peers": list(rule.peers),
                "label": "=".join(rule.label) if rule.label else None,
            },
            "desired": desired,
            "running": running,
            "live": sorted(live),
        }

    def summary(self, service: str) -> dict[str, Any] | None:
        """The ``replicas`` field of ``list_services``/``get_service_info`` (``None``: no rule)."""
        view = self.placement(service)
        return None if view["rule"] is None else view

    # -- the loop -------------------------------------------------------------------------------------

    async def run(self) -> None:
        """Heartbeat and reconcile every :data:`HEARTBEAT_SECONDS` until cancelled (a node runs it)."""
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            try:
                while True:
                    self._wake = trio.Event()
                    try:
                        await self._heartbeat_round()
                        await self._reconcile_all()
                    except Exception:  # a bug here must not take the node down: the next round tries again
                        log.exception("Keeping replicas failed; trying again at the next heartbeat")
                    with trio.move_on_after(HEARTBEAT_SECONDS):
                        await self._wake.wait()
            finally:
                self._nursery = None

    async def _heartbeat_round(self) -> None:
        network = self._network()
        if network is None or not self._rules:  # nodes that hold rules drive the exchange
            return
        await self._read_loads()
        beat = self._beat()

        async def one(peer: str) -> None:
            with trio.move_on_after(HEARTBEAT_SECONDS * 2):
                try:
                    answer = await network.call_peer(peer, "orchestrator/replica_heartbeat", {"beat": beat})
                except OrchestratorError as exc:
                    log.debug("No replica heartbeat from %s: %s", peer, exc)
                    return
                self._note(peer, answer)

        async with trio.open_nursery() as nursery:
            for peer in network.peers()[:MAX_VIEWS]:
                if Permission.READ in network.permissions_of(peer):
                    nursery.start_soon(one, peer)

    async def _read_loads(self) -> None:
        """The scaling metric of each auto-scaled copy running here."""
        scaled = {
            name: rule.scaling
            for name, rule in self._rules.items()
            if rule.scaling is not None and not rule.cleared and self._supervisor.is_running(name)
        }
        loads: dict[str, float] = {}
        wanted = [name for name, scaling in scaled.items() if scaling.metric != "calls_per_second"]
        units = [self._supervisor.unit(name) for name in wanted]
        kept = await read_metrics(units) if units else {}
        now = self._clock()
        for name, scaling in scaled.items():
            if scaling.metric == "calls_per_second":
                calls = self._supervisor.unit(name).call_stats.calls
                before = self._calls_seen.get(name)
                self._calls_seen[name] = (calls, now)
                if before is not None and now > before[1]:
                    loads[name] = max(0.0, (calls - before[0]) / (now - before[1]))
                continue
            metrics = kept.get(name) or {}
            value = (metrics.get("gauges") or {}).get(scaling.metric)
            if value is None:
                value = (metrics.get("counters") or {}).get(scaling.metric)
            if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
                loads[name] = float(value)
        self._load_here = loads

    def _count(self, rule: ReplicaRule) -> int:
        """The number of copies of ``rule`` now: its count, or the auto-scaled one."""
        scaling = rule.scaling
        if scaling is None:
            return rule.count
        now = self._clock()
        scale = self._scales.get(rule.service)
        if scale is None:
            scale = self._scales[rule.service] = _Scale(
                max(scaling.minimum, min(scaling.maximum, rule.count)), now
            )
        live = self._live_eligible(rule)
        loads = [load for peer in live if (load := self._load_of(peer, rule.service)) is not None]
        if loads and now - scale.changed >= scaling.cooldown:
            wanted = scaling.count_for(sum(loads))
            if wanted != scale.count:
                log.info(
                    "Scaling %s from %d to %d copies (%s: %g over %d copies, target %g each)",
                    rule.service, scale.count, wanted, scaling.metric, sum(loads), len(loads), scaling.target,
                )  # fmt: skip
                self._events.publish(
                    "replicas_scaled",
                    rule.service,
                    None,
                    count=wanted,
                    previous=scale.count,
                    total=sum(loads),
                )
                scale.count, scale.changed = wanted, now
        return scale.count

    def _load_of(self, peer: str, service: str) -> float | None:
        network = self._network()
        if network is not None and peer == network.peer_id:
            return self._load_here.get(service)
        view = self._views.get(peer)
        return view.load.get(service) if view is not None and service in view.running else None

    def _beat(self) -> dict[str, Any]:
        return {
            "labels": self.labels,
            "rules": {name: rule.version for name, rule in self._rules.items()},
            "running": sorted(name for name in self._rules if self._supervisor.is_running(name)),
            "installed": sorted(name for name in self._rules if name in self._store.records),
            "load": dict(self._load_here),
        }

    def _note(self, peer: str, beat: Any) -> None:
        if not isinstance(beat, Mapping):
            return
        labels, rules, running = beat.get("labels"), beat.get("rules"), beat.get("running")
        installed = beat.get("installed")
        view = _PeerView(
            seen=self._clock(),
            labels=_str_map(labels),
            rules={str(k): v for k, v in (rules or {}).items() if type(v) is int}
            if isinstance(rules, Mapping)
            else {},
            running=_names(running),
            installed=_names(installed),
            load=_loads(beat.get("load")),
        )
        self._views.pop(peer, None)
        self._views[peer] = view
        while len(self._views) > MAX_VIEWS:
            self._views.popitem(last=False)
        for name, version in list(view.rules.items())[:MAX_RULES]:
            mine = self._rules.get(name)
            if mine is None or version > mine.version:
                self._ask_rule(peer, name)
            elif version < mine.version:
                self._send_rule(peer, mine)
        for name, mine in self._rules.items():
            if name not in view.rules:
                self._send_rule(peer, mine)

    # -- placement ------------------------------------------------------------------------------------

    def _live_eligible(self, rule: ReplicaRule) -> list[str]:
        network = self._network()
        me = network.peer_id if network is not None else "self"
        now = self._clock()
        connected = set(network.peers()) if network is not None else set()
        live = [me] if self._eligible(rule, me, self.labels, knows=True) else []
        for peer, view in self._views.items():
            # a closed connection (the peer's process died) counts at once; silence after DEAD_AFTER
            if (
                peer in connected
                and now - view.seen < DEAD_AFTER_SECONDS
                and self._eligible(rule, peer, view.labels, knows=rule.service in view.rules)
            ):
                live.append(peer)
        return live

    @staticmethod
    def _eligible(rule: ReplicaRule, peer: str, labels: Mapping[str, str], *, knows: bool) -> bool:
        if rule.peers:
            return peer in rule.peers
        if rule.label is not None:
            return labels.get(rule.label[0]) == rule.label[1]
        return knows

    def _runs(self, peer: str, service: str) -> bool:
        network = self._network()
        if network is not None and peer == network.peer_id:
            return self._supervisor.is_running(service)
        view = self._views.get(peer)
        return view is not None and service in view.running

    async def _reconcile_all(self) -> None:
        network = self._network()
        if network is None:
            return
        for name, rule in list(self._rules.items()):
            if rule.cleared:
                continue
            try:
                await self._reconcile(network, rule)
            except OrchestratorError as exc:
                log.warning("Keeping the replicas of %s: %s", name, exc)

    async def _reconcile(self, network: ReplicaNetwork, rule: ReplicaRule) -> None:
        name = rule.service
        chosen = network.peer_id in rank(name, self._live_eligible(rule))[: self._count(rule)]
        running = self._supervisor.is_running(name)
        if chosen and not running:
            if name not in self._store.records:
                holders = [
                    p
                    for p, v in self._views.items()
                    if name in v.installed and self._clock() - v.seen < DEAD_AFTER_SECONDS
                ]
                if not holders:
                    log.info("Replica of %s chosen here, but no live node has it to fetch it from", name)
                    return
                log.info("Replica of %s chosen here: fetching it from %s", name, holders[0])
                await self._distribution.fetch(name, holders[0], force_reinstall=False, start=True)
            else:
                log.info("Replica of %s chosen here: starting it", name)
                await self._runner.start(name)
            self._events.publish("replica_started", name, None, rule_version=rule.version)
        elif running and not chosen:
            log.info("Replica of %s no longer chosen here: stopping it", name)
            await self._runner.stop(name)
            self._events.publish("replica_stopped", name, None, rule_version=rule.version)

    # -- spreading ------------------------------------------------------------------------------------

    def _spread(self, rule: ReplicaRule, *, exclude: str | None) -> None:
        network = self._network()
        if network is None:
            return
        for peer in network.peers()[:MAX_VIEWS]:
            if peer != exclude:
                self._send_rule(peer, rule)

    def _send_rule(self, peer: str, rule: ReplicaRule) -> None:
        async def send(network: ReplicaNetwork) -> None:
            await network.call_peer(peer, "orchestrator/replica_rule", {"rule": rule.to_wire()})

        self._exchange(("send", peer, rule.service), send)

    def _ask_rule(self, peer: str, service: str) -> None:
        async def ask(network: ReplicaNetwork) -> None:
            answer = await network.call_peer(peer, "orchestrator/replica_rules", {"services": [service]})
            raw = answer.get("rules", {}).get(service) if isinstance(answer, Mapping) else None
            if raw is not None:
                self.receive(raw, relayer=peer)

        self._exchange(("ask", peer, service), ask)

    def _exchange(self, key: tuple[str, str, str], run: Callable[[ReplicaNetwork], Awaitable[None]]) -> None:
        """Run one rule exchange in the background, unless the same one is under way or too many are."""
        network, nursery = self._network(), self._nursery
        if network is None or nursery is None or key in self._pending or len(self._pending) >= MAX_PENDING:
            return
        self._pending.add(key)

        async def exchange() -> None:
            try:
                with trio.move_on_after(HEARTBEAT_SECONDS * 5):
                    await run(network)
            except OrchestratorError as exc:
                log.info("Replica rule %s of %s with %s failed: %s", key[0], key[2], key[1], exc)
            finally:
                self._pending.discard(key)

        nursery.start_soon(exchange)

    # -- persistence -----------------------------------------------------------------------------------

    def _need_network(self) -> ReplicaNetwork:
        network = self._network()
        if network is None:
            raise ServiceDistributionError(
                "replica rules need a network node (start it as a node: p2p-orchestrator node)",
                code="no_network",
            )
        return network

    async def _keep(self, rule: ReplicaRule) -> None:
        self._rules[rule.service] = rule
        self._save_soon()
        self._wake.set()

    def _save_soon(self) -> None:
        data = json.dumps(
            {
                name: {**rule.to_wire(), "signature": rule.signature.hex()}
                for name, rule in self._rules.items()
            },
            indent=1,
            sort_keys=True,
        ).encode()
        try:
            write_atomically(self._path, data, fsync=self._catalog.config.store.fsync)
        except OSError as exc:
            log.warning("Could not save %s: %s", self._path, exc)

    def _load(self) -> None:
        try:
            raw = json.loads(self._path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return
        except (OSError, ValueError) as exc:
            log.warning("Ignoring %s: %s", self._path, exc)
            return
        for name, wire in raw.items() if isinstance(raw, dict) else []:
            try:
                rule = ReplicaRule.from_wire({**wire, "signature": bytes.fromhex(wire.get("signature", ""))})
            except (ServiceCallError, ValueError, AttributeError, TypeError) as exc:
                log.warning("Ignoring the replica rule of %s in %s: %s", name, self._path, exc)
                continue
            self._rules[rule.service] = rule


def _loads(raw: Any) -> dict[str, float]:
    if not isinstance(raw, Mapping):
        return {}
    return {
        str(k)[:128]: float(v)
        for k, v in list(raw.items())[:MAX_RULES]
        if isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)
    }


def _names(raw: Any) -> frozenset[str]:
    if not isinstance(raw, list):
        return frozenset()
    return frozenset(name for name in raw[:MAX_RULES] if isinstance(name, str))


def _str_map(raw: Any) -> dict[str, str]:
    if not isinstance(raw, Mapping):
        return {}
    return {str(k)[:64]: str(v)[:64] for k, v in list(raw.items())[:32]}
