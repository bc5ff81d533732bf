"""Node configuration: ``config.toml`` in the node's home directory.

Every key has a default, so a missing file is a valid configuration.  Unknown
sections and keys are refused with a message naming them: a typo in an operator's
file must not silently fall back to a default.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any, TypeVar

from p2p_orchestrator._patterns import PEER_ID, PEER_NAME
from p2p_orchestrator.archive import ArchiveLimits, check_service_name
from p2p_orchestrator.errors import ConfigError, OrchestratorError
from p2p_orchestrator.release import Publisher, TrustPolicy, parse_public_key
from p2p_orchestrator.runtime.health import HealthPolicy
from p2p_orchestrator.runtime.policy import RestartPolicy

__all__ = [
    "ACCESS_ROLES",
    "CONFIG_FILE_NAME",
    "AccessSettings",
    "ConfigError",
    "DashboardSettings",
    "MetricsSettings",
    "NodeSettings",
    "OrchestratorConfig",
    "RuntimeSettings",
    "SecuritySettings",
    "ServiceSettings",
    "StoreSettings",
    "UpdateSettings",
    "default_home",
    "load_config",
]

CONFIG_FILE_NAME = "config.toml"
HOME_ENV = "P2P_ORCHESTRATOR_HOME"
_T = TypeVar("_T")


@dataclass(frozen=True)
class StoreSettings:
    """How installed versions are kept on disk."""

    keep_versions: int = 3
    """Installed versions kept per service (the current one included) for rollback."""
    fsync: bool = True
    """Flush installed files to disk before switching to them (survives power loss)."""


@dataclass(frozen=True)
class RuntimeSettings:
    """How service processes are run (``[runtime]``); every service gets these unless overridden."""

    start_timeout: float = 10.0
    """Seconds a service may take to import ``main.py`` and finish ``initialize()``."""
    stop_timeout: float = 5.0
    """Grace period for ``cleanup()`` on stop, before SIGTERM and then SIGKILL."""
    call_timeout: float = 30.0
    """Default deadline of one call to a service method (and of a service's proxy call)."""
    memory_limit_mb: int = 0
    """Address-space limit (RLIMIT_AS) of each service process in MiB; 0 means none."""
    log_max_bytes: int = 1024 * 1024
    """Size at which a service's log file is rotated."""
    log_backups: int = 3
    """Rotated log files kept per service (``<name>.log.1`` ... ``.log.N``)."""
    max_concurrent_calls: int = 64
    """Method calls one service process runs at once; more wait their turn (health probes never wait)."""
    dependency_timeout: float = 30.0
    """Seconds a start waits for each dependency to be running and healthy."""
    auto_revert: bool = True
    """Revert an upgrade that fails to start or fails within ``revert_window``."""
    revert_window: float = 30.0
    """Seconds an upgraded service must stay up and healthy before the upgrade counts as good."""
    wheel_dir: str = ""
    """Wheels that services' virtual environments are built from (offline); empty: the package index."""
    requirements_timeout: float = 600.0
    """Seconds installing a service's ``requirements.txt`` may take."""
    auto_start: bool = True
    """Start a service when it is installed, unless its manifest says ``"auto_start": false``."""
    sandbox: bool = True
    """Confine each service process with Landlock (its own files and data only; see docs/operations.md)."""
    pass_env: tuple[str, ...] = ()
    """Environment variables of the node that service processes get too (they get none but a few by default)."""
    fork_server: bool = True
    """Fork service processes from a warm process that imported the runtime once (see docs/operations.md)."""


@dataclass(frozen=True)
class ServiceSettings:
    """What the node operator sets for one service, overriding its manifest."""

    config: Mapping[str, Any] = field(default_factory=dict)
    auto_start: bool | None = None
    restart: Mapping[str, Any] = field(default_factory=dict)
    """Overrides of the manifest's ``restart`` object (see :class:`~p2p_orchestrator.runtime.policy.RestartPolicy`)."""
    memory_limit_mb: int | None = None
    """Overrides ``[runtime] memory_limit_mb`` for this service."""
    health: Mapping[str, Any] = field(default_factory=dict)
    """Overrides of the manifest's ``health`` object (see :class:`~p2p_orchestrator.runtime.health.HealthPolicy`)."""
    auto_revert: bool | None = None
    """Overrides ``[runtime] auto_revert`` for this service."""
    network: bool | None = None
    """``False`` forbids the service TCP (bind and connect); overrides its manifest's ``network``."""
    may: tuple[str, ...] = ()
    """Permissions its proxy calls get beyond reading (``"deploy"``, ``"admin"``) for ``orchestrator/*``."""
    revert_window: float | None = None
    """Overrides ``[runtime] revert_window`` for this service."""


@dataclass(frozen=True)
class MetricsSettings:
    """``[metrics]``: the Prometheus endpoint of node and service metrics."""

    listen: str = ""
    """``HOST:PORT`` to serve ``/metrics`` on (``127.0.0.1:9464``; port 0: any free one); empty: not served."""


@dataclass(frozen=True)
class DashboardSettings:
    """``[dashboard]``: the fleet's live view in a browser (:mod:`p2p_orchestrator.dashboard`)."""

    listen: str = ""
    """``HOST:PORT`` to serve the dashboard on (``127.0.0.1:8080``; port 0: any free one); empty: not served."""
    allow_remote: bool = False
    """Let ``listen`` name an address other than loopback (reading then needs the token too)."""

    @property
    def remote(self) -> bool:
        """Whether ``listen`` names an address other than loopback."""
        return bool(self.listen) and not is_loopback_host(self.listen.rpartition(":")[0])


def is_loopback_host(host: str) -> bool:
    """Whether ``host`` (a name or an address, IPv6 with or without brackets) is this machine only."""
    host = host.strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # any other name may resolve anywhere


@dataclass(frozen=True)
class SecuritySettings:
    """``[security]``: what this node demands of the archives it installs."""

    require_signed: bool = False
    """Refuse an archive that comes without a release statement (``p2p-orchestrator sign``); whoever
    signed it must be a trusted publisher (``[publishers.*]``) of its service."""


MAX_FOLLOWED = 64
"""Services ``[updates] follow`` may name: what a node keeps per followed service is bounded by it."""


@dataclass(frozen=True)
class UpdateSettings:
    """``[updates]``: the services this node follows, installing their newer trusted releases itself.

    See :mod:`p2p_orchestrator.orchestrator.updates` and ``docs/operations.md``, "Following
    services (automatic updates)".
    """

    follow: tuple[str, ...] = ()
    """Service names whose signed releases this node installs when its peers announce or list them."""
    check_interval: float = 300.0
    """Seconds between two rounds of asking the connected peers which releases they hold."""
    window: tuple[datetime.time, datetime.time] | None = None
    """``(start, end)`` local times between which updates are installed (``"02:00-04:00"``; an end
    before the start wraps past midnight); ``None``: any time.  Outside it, updates wait."""

    def in_window(self, now: datetime.time) -> bool:
        """Whether an update may be installed at local time ``now``."""
        if self.window is None:
            return True
        start, end = self.window
        if start <= end:
            return start <= now < end
        return now >= start or now < end


# -- [node] and [access]: the network layer (p2p_orchestrator.node) -------------------------


@dataclass(frozen=True)
class NodeSettings:
    """How the node sits on the network (``[node]``); read by :mod:`p2p_orchestrator.node`.

    Timeouts are seconds.  The stream limits bound what one peer, and all peers
    together, can make this node hold open; see ``docs/protocol.md``.
    """

    listen: tuple[str, ...] = ("/ip4/127.0.0.1/tcp/0",)
    """Multiaddrs to listen on (TCP); port 0 picks a free port."""
    bootstrap: tuple[str, ...] = ()
    """Multiaddrs with ``/p2p/<peer id>`` dialled at start and kept connected."""
    mdns: bool = False
    """Announce and discover peers on the local network with mDNS."""
    call_timeout: float = 30.0
    """Default deadline of one remote call (``node.proxy(peer).call_method``)."""
    dial_timeout: float = 10.0
    """Deadline of one attempt to connect to a peer."""
    read_timeout: float = 10.0
    """A stream's first frame, and the rest of any frame once begun, must arrive within this."""
    idle_timeout: float = 60.0
    """A stream with no request in flight is closed after this long without a frame."""
    write_timeout: float = 10.0
    """A peer that does not take a frame we write within this has its stream reset."""
    max_streams_per_peer: int = 8
    """RPC streams one peer may hold open at once; more are answered ``busy`` and closed."""
    max_streams_total: int = 128
    """RPC streams all peers together may hold open at once."""
    max_in_flight_per_stream: int = 64
    """Requests one stream may have outstanding; more are answered ``busy``."""
    max_pending_connections: int = 64
    """Inbound connections in their handshake at once (16 per address); one more drops the oldest."""
    max_stranger_connections: int = 64
    """Inbound connections peers without a role may hold together; more are closed at once."""
    max_stranger_connections_per_ip: int = 8
    """Inbound connections peers without a role may hold from one IP address."""
    reconnect_attempts: int = 6
    """Dials after a connection to a bootstrap or pinned peer drops (then it is left alone)."""
    reconnect_delay: float = 0.5
    """First delay between reconnect attempts; doubled after each failure."""
    reconnect_max_delay: float = 30.0
    """Cap on the delay between reconnect attempts."""
    # -- archive transfers (p2p_orchestrator.node.distribution.transfers; docs/protocol.md "Transfer protocol")
    distribute_concurrency: int = 8
    """Targets ``distribute_service`` sends to at once (its ``concurrency`` argument overrides it)."""
    transfer_attempts: int = 3
    """Tries per target of one distribution or fetch; a cut transfer resumes from what arrived."""
    install_timeout: float = 900.0
    """How long a sender waits for the receiver's result once every chunk is there (install time)."""
    max_transfers_per_peer: int = 4
    """Transfer streams one peer may hold open to this node at once; more are refused ``busy``."""
    max_transfers_total: int = 64
    """Transfer streams all peers together may hold open to this node at once."""
    labels: Mapping[str, str] = field(default_factory=dict)
    """``{key: value}`` this node is known by (``labels = {zone = "a"}``): a replica rule may keep
    its copies on the nodes with a label (``replicas NAME COUNT --label zone=a``)."""


ACCESS_ROLES = ("admin", "deployer", "reader")
"""The roles ``[access.roles]`` may give a peer (see :mod:`p2p_orchestrator.node.access`)."""


@dataclass(frozen=True)
class AccessSettings:
    """Who may call what on this node from the network (``[access]``)."""

    roles: Mapping[str, str] = field(default_factory=dict)
    """``{peer id: "admin" | "deployer" | "reader"}``."""
    unknown_peers: str = "public"
    """``"public"``: peers without a role may call public service methods; ``"none"``: nothing."""


@dataclass(frozen=True)
class OrchestratorConfig:
    """Everything a node reads from its configuration file."""

    archive: ArchiveLimits = field(default_factory=ArchiveLimits)
    store: StoreSettings = field(default_factory=StoreSettings)
    runtime: RuntimeSettings = field(default_factory=RuntimeSettings)
    services: Mapping[str, ServiceSettings] = field(default_factory=dict)
    node: NodeSettings = field(default_factory=NodeSettings)
    access: AccessSettings = field(default_factory=AccessSettings)
    peers: Mapping[str, str] = field(default_factory=dict)
    """``[peers]``: names for peer IDs (``coordinator = "12D3KooW..."``), usable wherever a peer is
    named: ``--peer NAME``, ``proxy.call(..., peer=NAME)``, ``self.proxy.<svc>.<NAME>.<method>()``."""
    metrics: MetricsSettings = field(default_factory=MetricsSettings)
    publishers: tuple[Publisher, ...] = ()
    """``[publishers.<label>]``: the keys whose release statements this node trusts, each for some
    services (``services = ["web", "api_*"]``)."""
    security: SecuritySettings = field(default_factory=SecuritySettings)
    updates: UpdateSettings = field(default_factory=UpdateSettings)
    """``[updates]``: the services this node follows (installs their newer trusted releases itself)."""
    dashboard: DashboardSettings = field(default_factory=DashboardSettings)
    """``[dashboard]``: where the node serves its dashboard, if anywhere."""

    def trust_policy(self) -> TrustPolicy:
        """The publishers and ``require_signed`` as the checks of :mod:`p2p_orchestrator.release` use them."""
        return TrustPolicy(self.publishers, require_signed=self.security.require_signed)

    def resolve_peer(self, peer: str) -> str:
        """The peer ID that ``peer`` names: a name of ``[peers]``, or ``peer`` itself."""
        return self.peers.get(peer, peer)

    def service(self, name: str) -> ServiceSettings:
        """The operator's settings for ``name`` (defaults when none are given)."""
        return self.services.get(name, ServiceSettings())


def default_home() -> Path:
    """``$P2P_ORCHESTRATOR_HOME``, or ``~/.p2p-orchestrator``."""
    env = os.environ.get(HOME_ENV)
    return Path(env).expanduser() if env else Path.home() / ".p2p-orchestrator"


def check_not_writable_by_others(path: Path, what: str) -> None:
    """Refuse (``insecure_permissions``) a file or directory that users other than its owner may write.

    A home, ``config.toml`` or ``roles.toml`` that another user can write lets that
    user give itself a role or change what the node runs.
    """
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        return
    except OSError as exc:
        raise ConfigError(f"cannot check the permissions of {what} {path}: {exc}") from exc
    if mode & 0o022:
        raise ConfigError(
            f"{what} {path} may be written by other users (mode {mode & 0o777:o}): anyone who can write "
            f"it controls the node; fix it with: chmod go-w {path}",
            code="insecure_permissions",
        )


def load_config(home: Path) -> OrchestratorConfig:
    """Read ``home/config.toml``; defaults when it does not exist (refused if others may write either)."""
    path = home / CONFIG_FILE_NAME
    check_not_writable_by_others(home, "the node home")
    check_not_writable_by_others(path, "the configuration")
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return OrchestratorConfig()
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read {path}: {exc}") from exc
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path} is not valid TOML: {exc}") from exc
    return config_from_dict(data, source=str(path))


def config_from_dict(data: Mapping[str, Any], *, source: str = "configuration") -> OrchestratorConfig:
    """Build an :class:`OrchestratorConfig` from parsed TOML, checking every key."""
    known = {
        "archive",
        "store",
        "runtime",
        "services",
        "node",
        "access",
        "peers",
        "metrics",
        "publishers",
        "security",
        "updates",
        "dashboard",
    }
    _refuse_unknown(data, known, source)
    config = OrchestratorConfig()
    if "node" in data:
        config = replace(config, node=_node_section(data["node"], f"{source} [node]"))
    if "access" in data:
        config = replace(config, access=_access_section(data["access"], f"{source} [access]"))
    if "peers" in data:
        config = replace(config, peers=_peers_section(data["peers"], f"{source} [peers]"))
    if "metrics" in data:
        config = replace(config, metrics=_metrics_section(data["metrics"], f"{source} [metrics]"))
    if "dashboard" in data:
        config = replace(config, dashboard=_dashboard_section(data["dashboard"], f"{source} [dashboard]"))
    if "publishers" in data:
        config = replace(config, publishers=_publishers_section(data["publishers"], source))
    if "security" in data:
        config = replace(
            config, security=_section(SecuritySettings, data["security"], f"{source} [security]")
        )
    if "updates" in data:
        config = replace(config, updates=_updates_section(data["updates"], f"{source} [updates]"))
    if "archive" in data:
        config = replace(config, archive=_section(ArchiveLimits, data["archive"], f"{source} [archive]"))
    if "store" in data:
        config = replace(config, store=_section(StoreSettings, data["store"], f"{source} [store]"))
    if "runtime" in data:
        config = replace(config, runtime=_section(RuntimeSettings, data["runtime"], f"{source} [runtime]"))
    if "services" in data:
        services_data = _table(data["services"], f"{source} [services]")
        services: dict[str, ServiceSettings] = {}
        for name, raw in services_data.items():
            where = f"{source} [services.{name}]"
            table = _table(raw, where)
            _refuse_unknown(
                table,
                {
                    "config",
                    "auto_start",
                    "restart",
                    "memory_limit_mb",
                    "health",
                    "auto_revert",
                    "revert_window",
                    "network",
                    "may",
                },
                where,
            )
            auto_start = table.get("auto_start")
            if auto_start is not None and not isinstance(auto_start, bool):
                raise ConfigError(f"{where}: auto_start must be true or false")
            memory = table.get("memory_limit_mb")
            if memory is not None and (type(memory) is not int or memory < 0):
                raise ConfigError(f"{where}: memory_limit_mb must be a whole number >= 0 (0: no limit)")
            restart = _table(table.get("restart", {}), f"{where}.restart")
            health = _table(table.get("health", {}), f"{where}.health")
            try:
                RestartPolicy.from_layers(restart, where=f"{where}.restart")
                HealthPolicy.from_layers(health, where=f"{where}.health")
            except ValueError as exc:
                raise ConfigError(str(exc)) from exc
            auto_revert = table.get("auto_revert")
            if auto_revert is not None and not isinstance(auto_revert, bool):
                raise ConfigError(f"{where}: auto_revert must be true or false")
            network = table.get("network")
            if network is not None and not isinstance(network, bool):
                raise ConfigError(f"{where}: network must be true or false")
            may = table.get("may", [])
            if not isinstance(may, list) or not all(item in ("read", "deploy", "admin") for item in may):
                raise ConfigError(f'{where}: may must be a list of "read", "deploy" or "admin"')
            window = table.get("revert_window")
            if window is not None and (
                isinstance(window, bool) or not isinstance(window, int | float) or window < 0
            ):
                raise ConfigError(f"{where}: revert_window must be a number of seconds >= 0")
            services[name] = ServiceSettings(
                config=_table(table.get("config", {}), f"{where}.config"),
                auto_start=auto_start,
                restart=restart,
                memory_limit_mb=memory,
                health=health,
                auto_revert=auto_revert,
                revert_window=float(window) if window is not None else None,
                network=network,
                may=tuple(may),
            )
        config = replace(config, services=services)
    return config


def _peers_section(raw: Any, where: str) -> dict[str, str]:
    table = _table(raw, where)
    peers: dict[str, str] = {}
    for name, peer_id in table.items():
        if PEER_NAME.fullmatch(name) is None:
            raise ConfigError(
                f"{where}: {name!r} is not a peer name (a letter, then letters, digits, '_' or '-')"
            )
        if not isinstance(peer_id, str) or PEER_ID.fullmatch(peer_id) is None:
            raise ConfigError(f"{where}: {name} = {peer_id!r} is not a peer ID")
        peers[name] = peer_id
    return peers


_GLOB_CHARS = frozenset("*?[]!")
_PATTERN_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789_-") | _GLOB_CHARS


def _publishers_section(raw: Any, source: str) -> tuple[Publisher, ...]:
    publishers: list[Publisher] = []
    for label, entry in _table(raw, f"{source} [publishers]").items():
        where = f"{source} [publishers.{label}]"
        if PEER_NAME.fullmatch(label) is None:
            raise ConfigError(
                f"{where}: {label!r} is not a label (a letter, then letters, digits, '_' or '-')"
            )
        table = _table(entry, where)
        _refuse_unknown(table, {"public_key", "services"}, where)
        if "public_key" not in table:
            raise ConfigError(f'{where}: public_key is missing (the "ed25519:..." line keygen printed)')
        try:
            key = parse_public_key(table["public_key"])
        except OrchestratorError as exc:
            raise ConfigError(f"{where}: public_key: {exc.message}") from exc
        services = table.get("services")
        if not isinstance(services, list) or not services or not all(isinstance(s, str) for s in services):
            raise ConfigError(
                f'{where}: services must be a non-empty list of service names or globs, such as ["web", "api_*"]'
            )
        for pattern in services:
            _check_service_pattern(pattern, where)
        publishers.append(Publisher(label, key, tuple(services)))
    return tuple(publishers)


def _check_service_pattern(pattern: str, where: str) -> None:
    """A service name, or an ``fnmatch`` glob made of the characters names use and ``*?[]!``."""
    if _GLOB_CHARS.isdisjoint(pattern):
        try:
            check_service_name(pattern)
        except OrchestratorError as exc:
            raise ConfigError(f"{where}: services: {exc.message}") from exc
    elif not set(pattern) <= _PATTERN_CHARS or len(pattern) > 64:
        raise ConfigError(
            f"{where}: services: {pattern!r} is neither a service name nor a glob of one "
            "(lowercase letters, digits, '_', and * ? [ ] !)"
        )


def _updates_section(raw: Any, where: str) -> UpdateSettings:
    table = _table(raw, where)
    _refuse_unknown(table, {"follow", "check_interval", "window"}, where)
    follow = table.get("follow", [])
    if not isinstance(follow, list) or not all(isinstance(name, str) for name in follow):
        raise ConfigError(f'{where}: follow must be a list of service names (["web", "api"])')
    for name in follow:
        try:
            check_service_name(name)
        except OrchestratorError as exc:
            raise ConfigError(f"{where}: follow: {exc.message}") from exc
    if len(set(follow)) > MAX_FOLLOWED:
        raise ConfigError(f"{where}: follow names {len(set(follow))} services; at most {MAX_FOLLOWED}")
    interval = table.get("check_interval", UpdateSettings.check_interval)
    if isinstance(interval, bool) or not isinstance(interval, int | float) or interval <= 0:
        raise ConfigError(f"{where}: check_interval must be a number of seconds > 0, got {interval!r}")
    window = None
    if "window" in table:
        window = _time_window(table["window"], f"{where} window")
    return UpdateSettings(follow=tuple(dict.fromkeys(follow)), check_interval=float(interval), window=window)


def _time_window(value: Any, where: str) -> tuple[datetime.time, datetime.time]:
    """``"HH:MM-HH:MM"`` as two local times; refused when malformed or empty (start == end)."""
    wanted = f'{where} must be "HH:MM-HH:MM" (local time, e.g. "02:00-04:30"), got {value!r}'
    if not isinstance(value, str) or value.count("-") != 1:
        raise ConfigError(wanted)
    times = []
    for part in value.split("-"):
        hours, colon, minutes = part.strip().partition(":")
        if not (colon and len(hours) == 2 and len(minutes) == 2 and (hours + minutes).isdigit()):
            raise ConfigError(wanted)
        if int(hours) > 23 or int(minutes) > 59:
            raise ConfigError(wanted)
        times.append(datetime.time(int(hours), int(minutes)))
    if times[0] == times[1]:
        raise ConfigError(f"{where}: {value!r} is empty (start and end are the same time)")
    return times[0], times[1]


def _metrics_section(raw: Any, where: str) -> MetricsSettings:
    table = _table(raw, where)
    _refuse_unknown(table, {"listen"}, where)
    listen = table.get("listen", "")
    if not isinstance(listen, str):
        raise ConfigError(f'{where}: listen must be a string such as "127.0.0.1:9464"')
    if listen:
        host, _, port = listen.rpartition(":")
        if not host or not port.isdigit() or not 0 <= int(port) < 65536:
            raise ConfigError(f"{where}: listen = {listen!r} is not HOST:PORT (for example 127.0.0.1:9464)")
    return MetricsSettings(listen=listen)


def _dashboard_section(raw: Any, where: str) -> DashboardSettings:
    table = _table(raw, where)
    _refuse_unknown(table, {"listen", "allow_remote"}, where)
    listen = table.get("listen", "")
    allow_remote = table.get("allow_remote", False)
    if not isinstance(listen, str):
        raise ConfigError(f'{where}: listen must be a string such as "127.0.0.1:8080"')
    if not isinstance(allow_remote, bool):
        raise ConfigError(f"{where}: allow_remote must be true or false")
    if listen:
        host, _, port = listen.rpartition(":")
        if not host or not port.isdigit() or not 0 <= int(port) < 65536:
            raise ConfigError(f"{where}: listen = {listen!r} is not HOST:PORT (for example 127.0.0.1:8080)")
    settings = DashboardSettings(listen=listen, allow_remote=allow_remote)
    if settings.remote and not allow_remote:
        raise ConfigError(
            f"{where}: listen = {listen!r} is not a loopback address: anyone who reaches it sees the fleet "
            "and can try the token; set allow_remote = true to serve it there anyway",
            code="dashboard_not_loopback",
        )
    return settings


def _table(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ConfigError(f"{where} must be a table")
    return value


def _refuse_unknown(data: Mapping[str, Any], known: set[str], where: str) -> None:
    unknown = sorted(set(data) - known)
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")


def _section(cls: type[_T], raw: Any, where: str) -> _T:
    table = _table(raw, where)
    defaults = cls()
    names = {f.name for f in fields(cls)}  # type: ignore[arg-type]
    _refuse_unknown(table, names, where)
    values: dict[str, Any] = {}
    for key, given in table.items():
        default = getattr(defaults, key)
        expected = type(default)
        # TOML's 5 means 5.0 where a float is expected; a list of strings is a tuple here
        value = float(given) if expected is float and type(given) is int else given
        if expected is tuple and isinstance(given, list) and all(isinstance(item, str) for item in given):
            value = tuple(given)
        if type(value) is not expected:
            raise ConfigError(f"{where}: {key} must be of type {expected.__name__}, got {value!r}")
        if expected in (int, float) and (value < 0 or (value == 0 and default != 0)):
            raise ConfigError(f"{where}: {key} must be positive, got {value}")
        values[key] = value
    return replace(defaults, **values)  # type: ignore[type-var]


# -- [node] and [access] parsing ------------------------------------------------------------


def _multiaddr_list(value: Any, where: str, *, need_peer: bool) -> tuple[str, ...]:
    """A list of multiaddr strings (checked lightly here; the node parses them fully)."""
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise ConfigError(f"{where} must be a list of multiaddr strings")
    for item in value:
        if not item.startswith("/") or (need_peer and "/p2p/" not in item):
            wanted = (
                "a multiaddr ending in /p2p/<peer id>"
                if need_peer
                else "a multiaddr such as /ip4/127.0.0.1/tcp/0"
            )
            raise ConfigError(f"{where}: {item!r} is not {wanted}")
    return tuple(value)


def _node_section(raw: Any, where: str) -> NodeSettings:
    table = dict(_table(raw, where))
    settings = NodeSettings()
    if "listen" in table:
        listen = _multiaddr_list(table.pop("listen"), f"{where} listen", need_peer=False)
        if not listen:
            raise ConfigError(f"{where} listen must name at least one multiaddr")
        settings = replace(settings, listen=listen)
    if "bootstrap" in table:
        bootstrap = _multiaddr_list(table.pop("bootstrap"), f"{where} bootstrap", need_peer=True)
        settings = replace(settings, bootstrap=bootstrap)
    labels = _labels(table.pop("labels", {}), f"{where} labels")
    scalars = _section(NodeSettings, table, where)
    return replace(scalars, listen=settings.listen, bootstrap=settings.bootstrap, labels=labels)


_LABEL = re.compile(r"[A-Za-z0-9_.-]{1,64}")


def _labels(raw: Any, where: str) -> dict[str, str]:
    table = _table(raw, where)
    if len(table) > 32:
        raise ConfigError(f"{where}: at most 32 labels")
    for key, value in table.items():
        if not isinstance(value, str) or not _LABEL.fullmatch(key) or not _LABEL.fullmatch(value):
            raise ConfigError(
                f"{where}: {key!r} = {value!r}: keys and values are text of 1-64 letters, digits, '_', '.', '-'"
            )
    return dict(table)


def _access_section(raw: Any, where: str) -> AccessSettings:
    table = _table(raw, where)
    _refuse_unknown(table, {"roles", "unknown_peers"}, where)
    unknown_peers = table.get("unknown_peers", "public")
    if unknown_peers not in ("public", "none"):
        raise ConfigError(f'{where}: unknown_peers must be "public" or "none", got {unknown_peers!r}')
    roles = _table(table.get("roles", {}), f"{where}.roles")
    for peer, role in roles.items():
        if not PEER_ID.fullmatch(peer):
            raise ConfigError(f"{where}.roles: {peer!r} is not a peer ID")
        if role not in ACCESS_ROLES:
            raise ConfigError(
                f"{where}.roles: role of {peer} must be one of {', '.join(ACCESS_ROLES)}, got {role!r}"
            )
    return AccessSettings(roles=dict(roles), unknown_peers=unknown_peers)
