"""For service authors, no node needed: ``pack`` and ``new``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from p2p_orchestrator.cli import _render
from p2p_orchestrator.cli._context import CliContext, pass_cli
from p2p_orchestrator.cli._options import json_option
from p2p_orchestrator.errors import OrchestratorError

__all__ = ["register"]


@click.command()
@click.argument("directory", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Archive to write (default NAME.tar.gz).",
)
@json_option
@pass_cli
def pack(cli: CliContext, directory: Path, output: Path | None, as_json: bool) -> None:
    """Pack a service DIRECTORY into a deterministic .tar.gz archive."""
    from p2p_orchestrator.archive import pack_service

    source = directory.resolve()
    output = output or Path(f"{source.name}.tar.gz")
    temp = output.with_name(f".{output.name}.partial")
    try:
        with open(temp, "wb") as out:
            digest = pack_service(source, out)
        temp.replace(output)
    except (OrchestratorError, OSError):
        temp.unlink(missing_ok=True)
        raise
    result = {"archive": str(output), "archive_hash": digest, "size": output.stat().st_size}

    def show(result: dict[str, Any]) -> None:
        _render.line(f"packed {directory} -> {output} ({result['size']} bytes, sha256 {digest})")

    cli.output(result, as_json, show)


@click.command()
@click.argument("name")
@click.option(
    "-d",
    "--directory",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path(),
    help="Where to create NAME/ and test_NAME.py (default: here).",
)
@json_option
@pass_cli
def new(cli: CliContext, name: str, directory: Path, as_json: bool) -> None:
    """Create a new service and its swarm test.

    Writes NAME/ (main.py, manifest.json, config/default.json) and
    test_NAME.py, which runs it on two real nodes with pytest.
    """
    from p2p_orchestrator.archive import check_service_name
    from p2p_orchestrator.cli._scaffold import scaffold

    try:
        check_service_name(name)
    except OrchestratorError as exc:
        raise click.BadParameter(exc.message, param_hint="NAME") from exc
    try:
        files = scaffold(name, directory)
    except FileExistsError as exc:
        raise click.UsageError(f"{exc.args[0]} already exists; pick another name or directory") from exc
    result = {"service_name": name, "directory": str(directory / name), "files": [str(f) for f in files]}

    def show(result: dict[str, Any]) -> None:
        for path in result["files"]:
            _render.line(f"created {path}")
        _render.line(
            f"next: pytest {directory / f'test_{name}.py'}   then   p2p-orchestrator pack {directory / name}"
        )

    cli.output(result, as_json, show)


def register(group: click.Group) -> None:
    """Add this module's commands to ``group``."""
    group.add_command(pack)
    group.add_command(new)
