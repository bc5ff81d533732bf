"""``p2p-orchestrator new NAME``: a service in the spec's layout, and a test that runs it in a swarm."""

from __future__ import annotations

import json
from pathlib import Path

__all__ = ["scaffold"]

_MAIN = '''\
"""{name}: what it does, in one line."""

from service_framework import BaseService, service_method


class Run(BaseService):
    SERVICE_NAME = "{name}"

    async def initialize(self):
        """Called once the service's process starts; self.config holds its configuration."""
        self.greeting = self.config.get("greeting", "Hello")

    async def cleanup(self):
        """Called when the service stops."""

    async def health_check(self):
        """Probed every few seconds: return {{"healthy": False, "error": "..."}} when unwell."""
        return {{"healthy": True}}

    @service_method(description="Greets someone", public=True)
    async def greet(self, name="world"):
        return {{"message": f"{{self.greeting}}, {{name}}!"}}
'''

_TEST = '''\
"""Runs {name} on a swarm of real nodes (the `swarm` fixture of p2p_orchestrator.testing).

Run it with: pytest {test_file}
"""

from pathlib import Path

import pytest

from p2p_orchestrator import pack_service_bytes

SERVICE = Path(__file__).resolve().parent / "{name}"

pytestmark = pytest.mark.trio


async def test_{name}_answers_another_node(swarm):
    nodes = await swarm(2)  # two connected nodes that trust each other as admin
    here, there = nodes[0], nodes[1]
    remote = here.proxy(there.peer_id)
    archive = pack_service_bytes(SERVICE)

    installed = await remote.call_method("orchestrator/install_service", {{"archive_data": archive}})
    assert installed["service_name"] == "{name}"
    await remote.call_method("orchestrator/start_service", {{"service_name": "{name}"}})

    answer = await remote.call_method("{name}/greet", {{"name": "Ada"}})
    assert answer == {{"message": "Hello, Ada!"}}
'''


def scaffold(name: str, directory: Path) -> list[Path]:
    """Write ``directory/name/`` (the service) and ``directory/test_name.py``; the files written.

    Refuses (``FileExistsError``) to overwrite anything.
    """
    service = directory / name
    test_file = directory / f"test_{name}.py"
    for existing in (service, test_file):
        if existing.exists():
            raise FileExistsError(existing)
    manifest = {
        "name": name,
        "version": "0.1.0",
        "description": f"The {name} service.",
        "author": "",
        "dependencies": [],
        "exposed_methods": ["greet"],
        "configuration": {"greeting": "Hello"},
        "event_loop": "asyncio",
    }
    files = {
        service / "main.py": _MAIN.format(name=name),
        service / "manifest.json": json.dumps(manifest, indent=2) + "\n",
        service / "config" / "default.json": "{}\n",
        test_file: _TEST.format(name=name, test_file=test_file.name),
    }
    for path, text in files.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return list(files)
