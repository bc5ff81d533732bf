"""The ``p2p-orchestrator`` command line."""

from p2p_orchestrator.cli.main import main

__all__ = ["main"]
