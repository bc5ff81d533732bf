"""A js-libp2p client, written from docs/protocol.md alone, calls a node and pulls an archive from it.

The client (``tests/interop/js/client.mjs``, js-libp2p 2.x: TCP, Noise, Yamux, pinned by its
``package-lock.json``) is installed with ``npm ci`` from the npm registry on first use.  It prints
its peer ID, is given the ``reader`` role, then calls ``orchestrator/list_services`` and fetches a
service's archive over the transfer protocol, checking every rule it receives (exact fields, the
manifest root, each chunk's hash, the archive's).  Skipped, with the reason, where Node.js or npm
is missing.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import trio

from p2p_orchestrator.node import Node
from tests.helpers import make_archive
from tests.node.support import fast_config

JS = Path(__file__).parent / "js"
SERVICE = "interop_service"

pytestmark = pytest.mark.skipif(
    shutil.which("node") is None or shutil.which("npm") is None,
    reason="Node.js and npm are needed for the js-libp2p interop test (not installed here)",
)


@pytest.fixture(scope="session")
def js_client() -> Path:
    """``client.mjs`` with its dependencies installed (``npm ci``, once per checkout)."""
    lock = (JS / "package-lock.json").read_bytes()
    stamp = JS / "node_modules" / ".installed-lock"
    if not stamp.exists() or stamp.read_bytes() != lock:
        subprocess.run(
            ["npm", "ci", "--no-audit", "--no-fund", "--loglevel=error"], cwd=JS, check=True, timeout=600
        )
        stamp.write_bytes(lock)
    return JS / "client.mjs"


async def _lines(stream: trio.abc.ReceiveStream) -> list[dict[str, Any]]:
    data = b""
    while chunk := await stream.receive_some(65536):
        data += chunk
    return [json.loads(line) for line in data.decode().splitlines() if line.strip()]


async def test_a_js_libp2p_client_calls_a_node_and_pulls_an_archive(tmp_path: Path, js_client: Path) -> None:
    padding = os.urandom(2_500_000).hex()  # about 5 MB: several 1 MiB chunks
    archive = make_archive(tmp_path / "src", SERVICE, "1.0.0", files={"padding.txt": padding})
    with trio.fail_after(90):
        async with Node.open(tmp_path / "home", config=fast_config()) as node:
            installed = await node.rpc.call("orchestrator/install_service", {"archive_data": archive})
            process = await trio.lowlevel.open_process(
                ["node", str(js_client)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, cwd=JS
            )
            assert process.stdin is not None and process.stdout is not None
            first = b""
            while not first.endswith(b"\n"):
                chunk = await process.stdout.receive_some(1)
                assert chunk, "the client ended before printing its peer ID"
                first += chunk
            peer_id = json.loads(first)["peer_id"]
            await node.set_role(peer_id, "reader")
            request = {"address": node.listen_addrs[0], "service": SERVICE}
            await process.stdin.send_all(json.dumps(request).encode() + b"\n")
            lines = await _lines(process.stdout)
            code = await process.wait()
    assert code == 0, lines
    rpc, pulled = lines
    assert rpc["rpc"]["t"] == "res" and SERVICE in rpc["rpc"]["result"]["services"]
    assert pulled["archive_hash"] == installed["archive_hash"]
    assert pulled["size"] == len(archive) and pulled["chunks"] == -(-len(archive) // (1024 * 1024))
