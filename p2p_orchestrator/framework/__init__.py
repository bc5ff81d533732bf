"""The service framework: what a service author's ``main.py`` builds on.

Services import it as ``from service_framework import BaseService, service_method``
(a top-level module this package installs) or from :mod:`p2p_orchestrator`.
"""

from p2p_orchestrator.framework.configuration import merge_configuration
from p2p_orchestrator.framework.service import BaseService, MethodInfo, ServiceProxy, service_method

__all__ = ["BaseService", "MethodInfo", "ServiceProxy", "merge_configuration", "service_method"]
