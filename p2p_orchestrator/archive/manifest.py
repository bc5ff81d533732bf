"""The service manifest (``<name>/manifest.json``)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from p2p_orchestrator.archive._json import load_object
from p2p_orchestrator.archive._limits import DEFAULT_LIMITS, ArchiveLimits
from p2p_orchestrator.archive._names import check_service_name
from p2p_orchestrator.archive.version import Dependency, Version
from p2p_orchestrator.errors import ServiceInstallationError

__all__ = ["EVENT_LOOPS", "FRAMEWORK_DEPENDENCY", "Manifest", "default_manifest", "parse_manifest"]

EVENT_LOOPS = ("asyncio", "trio")
"""The event loops a service can run on (manifest ``event_loop``); the first is the default."""
FRAMEWORK_DEPENDENCY = "service_framework"
"""A dependency on the framework itself, as P2P Core manifests write it: always satisfied."""

# Exposed methods become RPC paths "<service>/<method>"; private and dunder names stay private.
_METHOD_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]{0,63}")
_EMPTY: Mapping[str, Any] = MappingProxyType({})


def _frozen(value: Mapping[str, Any]) -> Mapping[str, Any]:
    return MappingProxyType(dict(value))


def _thaw(value: Any) -> Any:
    """A deep, plain copy (dicts and lists) of a JSON-like value."""
    if isinstance(value, Mapping):
        return {key: _thaw(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_thaw(item) for item in value]
    return value


@dataclass(frozen=True)
class Manifest:
    """What a service says about itself.

    ``raw`` is the JSON object exactly as the archive gave it, unknown keys
    included; the other fields are its validated, typed reading.  The mappings
    are read-only views; :meth:`to_dict` gives a plain JSON-able copy.
    """

    name: str
    version: Version
    description: str = ""
    author: str = ""
    dependencies: tuple[Dependency, ...] = ()
    exposed_methods: tuple[str, ...] = ()
    configuration: Mapping[str, Any] = field(default_factory=lambda: _EMPTY, hash=False)
    auto_start: bool | None = None
    """Whether an install starts the service; ``None`` when the manifest does not say."""
    event_loop: str = EVENT_LOOPS[0]
    network: bool = True
    """``False``: the service needs no TCP, and its process may not use it."""
    restart: Mapping[str, Any] = field(default_factory=lambda: _EMPTY, hash=False)
    health: Mapping[str, Any] = field(default_factory=lambda: _EMPTY, hash=False)
    raw: Mapping[str, Any] = field(default_factory=lambda: _EMPTY, hash=False)
    warnings: tuple[str, ...] = field(default=(), hash=False)
    """What the manifest says that was accepted but is probably a mistake (for the install result)."""

    def to_dict(self) -> dict[str, Any]:
        """The manifest as reported by ``list_services``: ``raw`` with the known fields normalized."""
        result: dict[str, Any] = _thaw(self.raw)
        result.update(
            name=self.name,
            version=str(self.version),
            description=self.description,
            author=self.author,
            dependencies=[str(dep) for dep in self.dependencies],
            exposed_methods=list(self.exposed_methods),
            configuration=_thaw(self.configuration),
            auto_start=self.auto_start,
            event_loop=self.event_loop,
            network=self.network,
            restart=_thaw(self.restart),
            health=_thaw(self.health),
        )
        return result


def default_manifest(service_name: str) -> Manifest:
    """The manifest of a service whose archive has no ``manifest.json``: version ``0.0.0``."""
    return Manifest(name=check_service_name(service_name), version=Version(0, 0, 0))


def _bad(message: str, code: str = "bad_manifest") -> ServiceInstallationError:
    return ServiceInstallationError(f"manifest.json: {message}", code=code)


def _typed(raw: Mapping[str, Any], key: str, kind: type | tuple[type, ...], what: str, default: Any) -> Any:
    value = raw.get(key, default)
    # bool is an int subclass; no field here accepts a number, so a plain isinstance is enough.
    if not isinstance(value, kind):
        raise _bad(f"field {key!r} must be {what}, got {type(value).__name__}")
    return value


def _dependencies(raw: Mapping[str, Any], service_name: str) -> tuple[Dependency, ...]:
    items = _typed(raw, "dependencies", list, "a list of strings", [])
    result: list[Dependency] = []
    seen: set[str] = set()
    for index, item in enumerate(items):
        if not isinstance(item, str):
            raise _bad(f"dependencies[{index}] must be a string, got {type(item).__name__}")
        try:
            dep = Dependency.parse(item)
        except ServiceInstallationError as exc:
            raise _bad(f"dependencies[{index}]: {exc.message}", exc.code) from exc
        if dep.name == FRAMEWORK_DEPENDENCY:
            continue  # the framework is part of every node
        if dep.name == service_name:
            raise _bad(f"dependencies[{index}]: a service cannot depend on itself", "bad_dependency")
        if dep.name in seen:
            raise _bad(f"dependencies[{index}]: {dep.name!r} is listed twice", "bad_dependency")
        seen.add(dep.name)
        result.append(dep)
    return tuple(result)


def _methods(raw: Mapping[str, Any]) -> tuple[str, ...]:
    items = _typed(raw, "exposed_methods", list, "a list of strings", [])
    for index, item in enumerate(items):
        if not isinstance(item, str) or _METHOD_NAME.fullmatch(item) is None:
            raise _bad(
                f"exposed_methods[{index}] = {item!r} is not a method name "
                "(ASCII letters, digits and '_', starting with a letter)"
            )
    if len(set(items)) != len(items):
        raise _bad("exposed_methods lists a method twice")
    return tuple(items)


def parse_manifest(data: bytes, *, service_name: str, limits: ArchiveLimits = DEFAULT_LIMITS) -> Manifest:
    """Parse and validate ``manifest.json`` for the service ``service_name``.

    Known fields must have the right types (see the service archive section of
    the spec); unknown fields are kept in ``raw`` for forward compatibility.
    ``name`` and ``version`` may be omitted (they default to ``service_name``
    and ``0.0.0``).  A ``name`` that differs from ``service_name`` does not
    count: the directory names the service, as in P2P Core, and the manifest's
    :attr:`~Manifest.warnings` say so.  ``dependencies`` may name the framework
    itself (:data:`FRAMEWORK_DEPENDENCY`), which every node has.
    """
    check_service_name(service_name)
    if len(data) > limits.max_manifest_bytes:
        raise _bad(f"larger than {limits.max_manifest_bytes} bytes", "manifest_too_large")
    raw = load_object(data, what="manifest.json", code="bad_manifest")
    warnings: list[str] = []
    name = _typed(raw, "name", str, "a string", service_name)
    if name != service_name:
        warnings.append(
            f"manifest.json names the service {name!r}, but its directory is {service_name!r}: "
            f"it is installed as {service_name!r}"
        )
    event_loop = _typed(raw, "event_loop", str, "a string", EVENT_LOOPS[0])
    if event_loop not in EVENT_LOOPS:
        raise _bad(f"event_loop must be one of {', '.join(map(repr, EVENT_LOOPS))}, got {event_loop!r}")
    auto_start = raw.get("auto_start")
    if auto_start is not None and not isinstance(auto_start, bool):
        raise _bad(f"field 'auto_start' must be true or false, got {type(auto_start).__name__}")
    version_text = _typed(raw, "version", str, "a string", "0.0.0")
    try:
        version = Version.parse(version_text)
    except ServiceInstallationError as exc:
        raise _bad(exc.message, exc.code) from exc
    return Manifest(
        name=service_name,
        version=version,
        description=_typed(raw, "description", str, "a string", ""),
        author=_typed(raw, "author", str, "a string", ""),
        dependencies=_dependencies(raw, service_name),
        exposed_methods=_methods(raw),
        configuration=_frozen(_typed(raw, "configuration", dict, "an object", {})),
        auto_start=auto_start,
        event_loop=event_loop,
        network=_typed(raw, "network", bool, "true or false", True),
        restart=_frozen(_typed(raw, "restart", dict, "an object", {})),
        health=_frozen(_typed(raw, "health", dict, "an object", {})),
        raw=_frozen(raw),
        warnings=tuple(warnings),
    )
