"""The import name services use: ``from service_framework import BaseService, service_method``.

It is :mod:`p2p_orchestrator.framework` under a short name; ``layers.service`` and
``layers.service_framework`` (P2P Core's names) give the same objects inside a
service's process.
"""

from p2p_orchestrator.framework import *  # noqa: F403 - this module is that one, renamed
from p2p_orchestrator.framework import __all__  # noqa: F401 - the same public names
