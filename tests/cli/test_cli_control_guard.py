"""A node's own services cannot drive it through its control socket (a real node process)."""

from __future__ import annotations

import json
import socket
from pathlib import Path

from tests.cli.conftest import NodeFactory
from tests.helpers import make_service

KNOCK = """
import socket
import subprocess
import sys

from service_framework import BaseService, service_method

CLIENT = (
    "import socket, sys; s = socket.socket(socket.AF_UNIX); s.settimeout(5); "
    "s.connect(sys.argv[1]); print(len(s.recv(64)))"
)


class Run(BaseService):
    @service_method(public=False)
    async def knock(self, path: str):
        here = socket.socket(socket.AF_UNIX)
        here.settimeout(5)
        here.connect(path)
        received = len(here.recv(64))
        here.close()
        child = subprocess.run([sys.executable, "-c", CLIENT, path], capture_output=True, text=True, check=True)
        return {"service": received, "its_child": int(child.stdout)}
"""


def test_a_service_and_its_children_are_refused_on_the_control_socket(
    nodes: NodeFactory, tmp_path: Path
) -> None:
    node = nodes("home")
    source = make_service(tmp_path / "src", "knocker", files={"main.py": KNOCK})
    archive = tmp_path / "knocker.tar.gz"
    node.ok("pack", str(source), "-o", str(archive))
    node.ok("install", str(archive))
    control = node.info["control_socket"]
    answer = node.ok("call", "knocker/knock", "--params", json.dumps({"path": control}))
    assert answer == {"service": 0, "its_child": 0}  # closed before a byte: not even the node's hello
    # while the operator's own connection gets the node's hello
    with socket.socket(socket.AF_UNIX) as operator:
        operator.settimeout(5)
        operator.connect(control)
        assert len(operator.recv(64)) > 0
    assert "Refused a control connection from a process of service knocker" in node.log()
