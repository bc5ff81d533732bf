"""Signed releases, no node needed: ``keygen`` and ``sign``.

A publisher makes a key once (``keygen``), gives its public key to the nodes that should trust
it (``[publishers.<label>]`` in their ``config.toml``), and signs each archive it releases
(``sign``), which writes the archive's release statement (``p2p_orchestrator.release``).
"""

from __future__ import annotations

import datetime
import time
from pathlib import Path
from typing import Any

import click

from p2p_orchestrator.cli import _render
from p2p_orchestrator.cli._context import CliContext, pass_cli
from p2p_orchestrator.cli._options import json_option

__all__ = ["register"]


@click.command()
@click.option(
    "-o",
    "--output",
    "key_file",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    metavar="KEYFILE",
    help="Key file to create (mode 0600; an existing file is never overwritten).",
)
@json_option
@pass_cli
def keygen(cli: CliContext, key_file: Path, as_json: bool) -> None:
    """Make a new publisher key for signing releases.

    Prints its public key, the line that nodes trusting this publisher put in
    [publishers.<label>] public_key. Keep KEYFILE secret: whoever reads it
    can sign releases in your name.
    """
    from p2p_orchestrator.release import PublisherKey

    key = PublisherKey.generate()
    key.save(key_file)
    result = {"public_key": key.public_text}
    cli.output(result, as_json, lambda result: _render.line(result["public_key"]))


def _when(timestamp: int | None) -> str:
    if timestamp is None:
        return "never"
    return datetime.datetime.fromtimestamp(timestamp, tz=datetime.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


@click.command()
@click.argument("archive", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--key",
    "key_file",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    metavar="KEYFILE",
    help="The publisher key (from `p2p-orchestrator keygen`).",
)
@click.option(
    "-o",
    "--output",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    metavar="RELEASE",
    help="Statement file to write (by convention ARCHIVE.release, beside the archive).",
)
@click.option(
    "--expires-in",
    type=click.IntRange(min=1),
    metavar="SECONDS",
    help="The statement expires this long after now (default: never).",
)
@json_option
@pass_cli
def sign(
    cli: CliContext, *, archive: Path, key_file: Path, output: Path, expires_in: int | None, as_json: bool
) -> None:
    """Sign a service ARCHIVE: write its release statement.

    The archive is checked as an install checks it; its name and version are
    read from its manifest. The statement names them, the archive's sha256
    and size, and the publisher's key, signed with KEYFILE.
    """
    from p2p_orchestrator._files import write_atomically
    from p2p_orchestrator.release import PublisherKey, ReleaseError, sign_archive

    key = PublisherKey.load(key_file)
    statement = sign_archive(archive, key, now=int(time.time()), expires_in=expires_in)
    try:
        write_atomically(output, statement.to_bytes(), mode=0o644)
    except OSError as exc:
        raise ReleaseError(
            f"cannot write the release statement {output}: {exc}", code="write_failed"
        ) from exc
    result = {
        "name": statement.name,
        "version": statement.version,
        "archive_sha256": statement.archive_sha256,
        "archive_size": statement.archive_size,
        "publisher_key": statement.publisher_text,
        "issued_at": statement.issued_at,
        "expires_at": statement.expires_at,
        "path": str(output),
    }

    def show(result: dict[str, Any]) -> None:
        _render.line(
            f"signed   {result['name']} {result['version']} ({archive}, {result['archive_size']} bytes)"
        )
        _render.line(f"sha256   {result['archive_sha256']}")
        _render.line(f"key      {result['publisher_key']}")
        _render.line(f"expires  {_when(result['expires_at'])}")
        _render.line(f"wrote    {result['path']}")

    cli.output(result, as_json, show)


def register(group: click.Group) -> None:
    """Add this module's commands to ``group``."""
    group.add_command(keygen)
    group.add_command(sign)
