"""Every hostile archive, installed over a service that is already there, changes nothing."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from p2p_orchestrator import Orchestrator, ServiceInstallationError
from tests.archive.test_archive_hostile import CASES, VALID
from tests.helpers import tree_digest


@pytest.fixture
async def installed(tmp_path: Path) -> AsyncIterator[tuple[Orchestrator, Path]]:
    home = tmp_path / "home"
    async with Orchestrator(home) as orch:
        await orch.install_service(VALID)
        yield orch, home


@pytest.mark.parametrize(("data", "code", "fragment"), CASES)
async def test_a_refused_archive_leaves_the_node_exactly_as_it_was(
    installed: tuple[Orchestrator, Path], data: bytes, code: str, fragment: str
) -> None:
    orch, home = installed
    before_tree = tree_digest(home / "services")
    before_archives = tree_digest(home / "archives")
    before_listing = await orch.list_services()
    before_entries = sorted(p.name for p in home.iterdir())
    with pytest.raises(ServiceInstallationError) as refused:
        await orch.install_service(data, force_reinstall=True)
    assert refused.value.code == code
    assert fragment in refused.value.message
    assert tree_digest(home / "services") == before_tree
    assert tree_digest(home / "archives") == before_archives
    assert list((home / "staging").iterdir()) == []
    assert await orch.list_services() == before_listing
    assert sorted(p.name for p in home.iterdir()) == before_entries
