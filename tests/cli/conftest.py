from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.cli.support import NodeProcess, start_node

NodeFactory = Callable[..., NodeProcess]


@pytest.fixture
def nodes(tmp_path: Path) -> Iterator[NodeFactory]:
    """``nodes("a")`` starts a node with home ``tmp_path/a``; every node is stopped after the test."""
    started: list[NodeProcess] = []

    def start(name: str, *extra: str, **options: Any) -> NodeProcess:
        node = start_node(tmp_path / name, *extra, **options)
        started.append(node)
        return node

    yield start
    for node in started:
        node.stop()


@pytest.fixture(scope="module")
def shared_node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NodeProcess]:
    """One node for the tests of a module that each use services of their own."""
    node = start_node(tmp_path_factory.mktemp("shared") / "home")
    try:
        yield node
    finally:
        node.stop()
