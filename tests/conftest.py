from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from p2p_orchestrator import Orchestrator
from p2p_orchestrator.crashpoints import set_crash_hook


@pytest.fixture
def home(tmp_path: Path) -> Path:
    return tmp_path / "home"


@pytest.fixture
async def orch(home: Path) -> AsyncIterator[Orchestrator]:
    async with Orchestrator(home) as orchestrator:
        yield orchestrator


@pytest.fixture(autouse=True)
def _no_crash_hook() -> None:
    set_crash_hook(None)
