"""The release package stays a low layer: it never loads the configuration, the store, the runtime,
the orchestrator, the node, trio or libp2p."""

from __future__ import annotations

import subprocess
import sys

FORBIDDEN = (
    "trio",
    "libp2p",
    "p2p_orchestrator.config",
    "p2p_orchestrator.store",
    "p2p_orchestrator.runtime",
    "p2p_orchestrator.orchestrator",
    "p2p_orchestrator.node",
)


def test_importing_and_using_the_release_package_loads_no_higher_layer() -> None:
    code = (
        "import sys, p2p_orchestrator.release as r\n"
        "r.PublisherKey(bytes(32)).sign('web', '1.0.0', '0' * 64, 1, issued_at=0, expires_at=None)\n"
        f"print(sorted(m for m in sys.modules if m.startswith({FORBIDDEN!r})))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"
