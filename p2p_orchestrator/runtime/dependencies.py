"""Dependencies between services: which must run before which, and who needs whom.

A manifest's ``dependencies`` names other *services* this one needs, each
optionally within a version range (``"db>=1.2,<2"``).  The orchestrator treats
them the way systemd treats ``Requires=`` with ``After=``:

* starting a service first starts what it needs, transitively, dependencies
  first (:func:`start_order`), and waits until each is running *and healthy*;
* a dependency that is not installed (``missing_dependency``), installed at a
  version outside the range (``dependency_version``), or a cycle
  (``dependency_cycle``, the cycle named) refuses the start before anything
  starts;
* a new version of a service that a running service needs outside its range
  is not installed unless forced (:func:`broken_by`): the restart onto it
  would break the dependent while it runs;
* a service that running services need is not stopped, and one that installed
  services need is not uninstalled, unless forced: then its dependents are
  stopped first, the ones that need others before the ones they need
  (:func:`dependents_in_stop_order`).

This module is pure computation over a :data:`Graph` (no I/O, no processes).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from p2p_orchestrator.archive import Version
from p2p_orchestrator.archive.version import Dependency
from p2p_orchestrator.errors import OrchestratorError, ServiceManagementError

__all__ = [
    "Graph",
    "Installed",
    "broken_by",
    "dependents_in_stop_order",
    "direct_dependents",
    "graph_of",
    "start_order",
    "stop_layers",
]


@dataclass(frozen=True)
class Installed:
    """One installed service as the graph sees it: its current version and what it needs."""

    version: Version
    needs: tuple[Dependency, ...]


Graph = Mapping[str, Installed]
"""Every installed service by name."""


def graph_of(services: Iterable[tuple[str, str, Mapping[str, Any]]]) -> dict[str, Installed]:
    """The graph of ``(name, current version, current manifest)`` triples.

    Manifests were validated when installed; one that no longer parses is a
    ``bad_dependency`` error naming the service.
    """
    graph: dict[str, Installed] = {}
    for name, version, manifest in services:
        try:
            needs = tuple(Dependency.parse(text) for text in manifest.get("dependencies", ()))
            graph[name] = Installed(Version.parse(version), needs)
        except OrchestratorError as exc:
            raise ServiceManagementError(f"{name}: {exc.message}", code="bad_dependency") from exc
    return graph


def start_order(name: str, graph: Graph) -> list[str]:
    """``name``'s dependencies, transitively, in the order to start them, then ``name`` itself.

    Raises :class:`ServiceManagementError` with ``missing_dependency``,
    ``dependency_version`` or ``dependency_cycle`` (checked for the whole
    closure before anything is started).
    """
    order: list[str] = []
    done: set[str] = set()
    path: list[str] = []

    def visit(node: str) -> None:
        path.append(node)
        for dep in graph[node].needs:
            installed = graph.get(dep.name)
            if installed is None:
                raise ServiceManagementError(
                    f"{node} needs service {dep}, which is not installed"
                    + (f" (needed for {name})" if node != name else ""),
                    code="missing_dependency",
                )
            if not dep.allows(installed.version):
                raise ServiceManagementError(
                    f"{node} needs {dep}, but {dep.name} {installed.version} is installed",
                    code="dependency_version",
                )
            if dep.name in path:
                cycle = [*path[path.index(dep.name) :], dep.name]
                raise ServiceManagementError(
                    f"services depend on each other in a cycle: {' -> '.join(cycle)}", code="dependency_cycle"
                )
            if dep.name not in done:
                visit(dep.name)
        path.pop()
        done.add(node)
        order.append(node)

    visit(name)
    return order


def direct_dependents(name: str, graph: Graph) -> list[str]:
    """The services whose manifest names ``name``, sorted."""
    return sorted(other for other, installed in graph.items() if any(d.name == name for d in installed.needs))


def broken_by(name: str, version: Version, graph: Graph) -> list[tuple[str, Dependency]]:
    """The services whose range for ``name`` leaves out ``version``, each with that dependency."""
    return [
        (other, dep)
        for other, installed in sorted(graph.items())
        for dep in installed.needs
        if dep.name == name and other != name and not dep.allows(version)
    ]


def dependents_in_stop_order(name: str, graph: Graph) -> list[str]:
    """Every service that needs ``name``, transitively, in the order to stop them.

    A service comes before every service it needs (reverse topological order),
    so nothing is stopped while something still running needs it.  Cycles among
    them (possible only between services installed without checks) are broken
    arbitrarily but deterministically.
    """
    closure: set[str] = set()
    todo = [name]
    while todo:
        for other in direct_dependents(todo.pop(), graph):
            if other not in closure and other != name:
                closure.add(other)
                todo.append(other)
    order: list[str] = []
    seen: set[str] = set()

    def visit(node: str) -> None:  # dependencies first, restricted to the closure
        seen.add(node)
        for dep in graph[node].needs:
            if dep.name in closure and dep.name not in seen:
                visit(dep.name)
        order.append(node)

    for node in sorted(closure):
        if node not in seen:
            visit(node)
    return order[::-1]


def stop_layers(names: Iterable[str], graph: Graph) -> list[list[str]]:
    """``names`` in groups to stop one after the other (each group concurrently) at shutdown.

    The first group holds the services none of the others needs; each later
    group, those only earlier groups needed.  Services outside ``graph`` and
    services in a cycle go in the last group.
    """
    remaining = set(names)
    layers: list[list[str]] = []
    while remaining:
        needed = {d.name for n in remaining if n in graph for d in graph[n].needs}
        layer = sorted(remaining - needed) or sorted(remaining)
        layers.append(layer)
        remaining.difference_update(layer)
    return layers
