"""Every fleet test leaves no child process and no listening host behind (as the node tests)."""

from tests.node.conftest import _nothing_left_behind

__all__ = ["_nothing_left_behind"]
