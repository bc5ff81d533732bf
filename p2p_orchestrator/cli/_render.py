"""Printing results: exact JSON with ``--json``, readable tables otherwise."""

from __future__ import annotations

import base64
import json
from typing import Any

from rich.console import Console
from rich.table import Table

_out = Console(highlight=False, soft_wrap=True)


def _jsonable(value: Any) -> Any:
    if isinstance(value, bytes):
        return {"base64": base64.b64encode(value).decode("ascii")}
    raise TypeError(f"cannot show {type(value).__name__} as JSON")


def print_json(result: Any) -> None:
    """The result exactly, as one JSON document on stdout."""
    print(json.dumps(result, indent=2, sort_keys=True, default=_jsonable))


def print_services(result: dict[str, Any]) -> None:
    table = Table(title=f"{result['total_installed']} installed, {result['total_running']} running")
    for column in ("service", "version", "state", "installed at", "hash", "files"):
        table.add_column(column)
    for name, info in result["services"].items():
        state = info.get("state") or ("running" if info["running"] else "stopped")
        table.add_row(
            name,
            str(info.get("version", "")),
            state,
            info["installed_at"],
            info["archive_hash"][:12],
            str(info["files_count"]),
        )
    _out.print(table)


def print_mapping(title: str, data: dict[str, Any]) -> None:
    table = Table(title=title, show_header=False)
    table.add_column("key", style="bold")
    table.add_column("value")
    for key, value in data.items():
        shown = (
            json.dumps(value, sort_keys=True, default=_jsonable)
            if isinstance(value, dict | list)
            else str(value)
        )
        table.add_row(key, shown)
    _out.print(table)


def print_line(text: str) -> None:
    _out.print(text)
