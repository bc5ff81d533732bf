"""The orchestrator API: one node's services, installed, run, reported and distributed.

:class:`Orchestrator` (``facade.py``) is the public face: the spec's methods, each an
:func:`~p2p_orchestrator.rpc.api_method` whose signature is its entry in the RPC table
(:data:`METHODS`).  Behind it, one part per concern, each given its dependencies when
the orchestrator opens: :mod:`.catalog` (the installed services as the store and the
settings describe them), :mod:`.running`, :mod:`.upgrades`, :mod:`.installs`,
:mod:`.reports` and :mod:`.distribution`; :mod:`.network` is what a node lends it while
it runs.  Nothing here imports libp2p.
"""

from p2p_orchestrator.orchestrator.facade import Orchestrator
from p2p_orchestrator.orchestrator.installs import ArchiveSource
from p2p_orchestrator.orchestrator.network import NetworkLink
from p2p_orchestrator.rpc import MethodSpec, method_table

__all__ = ["METHODS", "ArchiveSource", "NetworkLink", "Orchestrator"]

METHODS: dict[str, MethodSpec] = dict(method_table(Orchestrator))
"""The ``orchestrator/<method>`` RPC table: each method's permission and parameters."""
