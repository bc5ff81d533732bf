"""The ``p2p-orchestrator`` command line (click; rich for tables, imported on first use)."""

from p2p_orchestrator.cli.main import main

__all__ = ["main"]
