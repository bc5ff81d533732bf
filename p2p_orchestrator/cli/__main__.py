"""``python -m p2p_orchestrator.cli``."""

from p2p_orchestrator.cli.main import main

main()
