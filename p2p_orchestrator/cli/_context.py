"""What every command shares: the home, the connection to its node, and how results are printed."""

from __future__ import annotations

import base64
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from p2p_orchestrator.control.client import ControlClient
from p2p_orchestrator.errors import OrchestratorError

__all__ = ["CliContext", "OperationFailed", "pass_cli", "print_json"]


class OperationFailed(click.ClickException):
    """An operation the node (or this process) refused: its code and message on stderr, exit 1."""

    exit_code = 1

    def __init__(self, error: OrchestratorError) -> None:
        super().__init__(error.message)
        self.error = error

    def format_message(self) -> str:
        return f"[{self.error.code}] {self.error.message}"

    def show(self, file: Any = None) -> None:
        click.echo(f"error [{self.error.code}]: {self.error.message}", err=True)


class CliContext:
    """The state of one command-line call (``ctx.obj``)."""

    def __init__(self, home: Path) -> None:
        self.home = home
        self._client: ControlClient | None = None

    def client(self) -> ControlClient:
        """The connection to the home's node (opened on first use; ``NodeNotRunning`` if none)."""
        if self._client is None:
            client = ControlClient(self.home)
            client.connect()
            self._client = client
        return self._client

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    def call(self, method: str, params: dict[str, Any] | None = None, *, peer: str | None = None) -> Any:
        """Call ``method`` on the local node, or on ``peer`` through it."""
        if peer is not None:
            return self.client().call("node/call", {"method": method, "params": params or {}, "peer": peer})
        return self.client().call(method, params or {})

    def orchestrator(self, name: str, peer: str | None = None, **params: Any) -> Any:
        """Call ``orchestrator/<name>`` with keyword params."""
        return self.call(f"orchestrator/{name}", params, peer=peer)

    @staticmethod
    def output(result: Any, as_json: bool, render: Callable[[Any], None]) -> None:
        """The result exactly as JSON with ``--json``, else as ``render`` shows it."""
        if as_json:
            print_json(result)
        else:
            render(result)


pass_cli = click.make_pass_decorator(CliContext)


def _jsonable(value: Any) -> Any:
    if isinstance(value, bytes | bytearray):
        return {"base64": base64.b64encode(value).decode("ascii")}
    raise TypeError(f"cannot show {type(value).__name__} as JSON")


def print_json(result: Any, *, compact: bool = False) -> None:
    """One JSON document on stdout (bytes as ``{"base64": ...}``); ``compact``: one line (JSON Lines)."""
    text = json.dumps(result, indent=None if compact else 2, sort_keys=True, default=_jsonable)
    sys.stdout.write(text + "\n")
    sys.stdout.flush()
