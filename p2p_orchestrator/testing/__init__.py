"""Test helpers for service authors: run a swarm of real nodes in one trio process.

* :func:`swarm` -- ``async with swarm(3) as nodes: ...`` (see :mod:`.swarm`);
* a pytest plugin (registered as ``p2p_orchestrator``, loaded automatically
  once the package is installed) with a ``swarm`` fixture; see :mod:`.pytest_plugin`.

Importing this package does not import libp2p; starting a swarm does.
"""

from p2p_orchestrator.testing.swarm import RoleRule, Swarm, swarm

__all__ = ["RoleRule", "Swarm", "swarm"]
