"""``p2p_orchestrator`` loads its public names lazily: all of them resolve, and importing it is cheap."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import p2p_orchestrator

INIT = Path(p2p_orchestrator.__file__)


def test_every_public_name_resolves_and_the_three_lists_agree() -> None:
    tree = ast.parse(INIT.read_text())
    typed: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and ast.unparse(node.test) == "TYPE_CHECKING":
            typed |= {
                alias.name for sub in node.body if isinstance(sub, ast.ImportFrom) for alias in sub.names
            }
    public = set(p2p_orchestrator.__all__) - {"__version__"}
    assert typed == public
    assert set(p2p_orchestrator._LAZY) == public
    for name in sorted(public):
        value = getattr(p2p_orchestrator, name)
        if name == "ArchiveSource":  # a type alias (a union), not a class
            continue
        assert value.__name__ == name or name[0].islower(), name


def test_importing_the_package_loads_neither_trio_nor_libp2p() -> None:
    code = (
        "import sys, p2p_orchestrator.wire; print(sorted(m for m in ('trio', 'libp2p') if m in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"
