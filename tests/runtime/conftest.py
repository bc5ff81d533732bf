from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from p2p_orchestrator import Orchestrator
from tests.runtime import support
from tests.runtime.support import children_of, fast_config


@pytest.fixture(autouse=True, params=["asyncio", "trio"])
def service_loop(request: pytest.FixtureRequest) -> Iterator[str]:
    """Every runtime test runs twice: its services on asyncio, then on trio."""
    support.EVENT_LOOP = request.param
    yield request.param
    support.EVENT_LOOP = "asyncio"


@pytest.fixture
async def rt(home: Path) -> AsyncIterator[Orchestrator]:
    """An open orchestrator with the fast test configuration."""
    async with Orchestrator(home, config=fast_config()) as orchestrator:
        yield orchestrator


@pytest.fixture(autouse=True)
def _no_leftover_children() -> Iterator[None]:
    """Every test must leave no child process of this test process behind."""
    before = set(children_of(os.getpid()))
    yield
    left = set(children_of(os.getpid())) - before
    assert not left, f"test left child processes behind: {sorted(left)}"
