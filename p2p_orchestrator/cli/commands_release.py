"""Signed releases: ``keygen`` and ``sign`` (no node needed), ``publish`` and ``updates``.

A publisher makes a key once (``keygen``), gives its public key to the nodes that should trust
it (``[publishers.<label>]`` in their ``config.toml``), and signs each archive it releases
(``sign``), which writes the archive's release statement (``p2p_orchestrator.release``).
``publish`` installs a signed release on a node and announces it to that node's peers; nodes
that follow the service (``[updates] follow``) install it themselves, and ``updates`` shows
where each followed service stands.
"""

from __future__ import annotations

import datetime
import time
from pathlib import Path
from typing import Any

import click

from p2p_orchestrator.cli import _render
from p2p_orchestrator.cli._context import CliContext, pass_cli
from p2p_orchestrator.cli._options import json_option, peer_option

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


@click.command()
@click.argument("archive", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--release",
    "release",
    required=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    metavar="RELEASE",
    help="The archive's release statement (from `p2p-orchestrator sign`).",
)
@json_option
@pass_cli
def publish(cli: CliContext, *, archive: Path, release: Path, as_json: bool) -> None:
    """Install a signed release ARCHIVE on this node and announce it to its peers.

    The peers that follow the service ([updates] follow) and trust its
    publisher install it themselves, fetching it from this node or from
    another that already has it.
    """
    result = cli.client().call(
        "node/publish", {"archive_path": str(archive.resolve()), "release_path": str(release.resolve())}
    )

    def show(result: dict[str, Any]) -> None:
        started = "started" if result.get("auto_started") else "not started"
        _render.line(f"installed {result['service_name']} ({started}; sha256 {result['archive_hash']})")
        if result.get("auto_start_error"):
            _render.line(f"auto start failed: {result['auto_start_error']}")
        announced = result.get("announced", {})
        accepted = sum(1 for answer in announced.values() if answer.get("accepted"))
        _render.line(f"announced to {len(announced)} peer(s); {accepted} will install it")
        delivered = result.get("delivered") or {}
        outcomes = delivered.get("results", {})
        for peer, answer in sorted(announced.items()):
            what = answer.get("reason") or answer.get("error")
            outcome = outcomes.get(peer)
            if outcome is not None:
                what = (
                    "delivered, installed"
                    if outcome.get("success")
                    else f"delivery failed: {outcome.get('error')}"
                )
            _render.line(f"  {peer}  {what}")
        if delivered:
            _render.line(
                f"delivered to {delivered.get('successful_distributions', 0)} of "
                f"{delivered.get('total_nodes', 0)} peer(s) that asked for it"
            )

    cli.output(result, as_json, show)


@click.command()
@peer_option
@json_option
@pass_cli
def updates(cli: CliContext, *, peer: str | None, as_json: bool) -> None:
    """Show each followed service: its version, the newest trusted release seen, the last attempt."""
    result = cli.orchestrator("get_updates", peer)

    def show(result: dict[str, Any]) -> None:
        window = result.get("window") or "any time"
        _render.line(f"check every {result['check_interval']:g} s; window {window}")
        if not result["services"]:
            _render.line("no service is followed ([updates] follow in config.toml)")
        for name, entry in sorted(result["services"].items()):
            newest = entry["newest_version"] or "-"
            source = f" (from {entry['from_peer']})" if entry.get("from_peer") else ""
            _render.line(f"{name}: current {entry['current_version'] or '-'}, newest {newest}{source}")
            attempt = entry.get("last_attempt")
            if attempt:
                reason = f": {attempt['reason']}" if attempt.get("reason") else ""
                _render.line(
                    f"  last attempt {attempt['version']} {attempt['outcome']} at {attempt['at']}{reason}"
                )
            if entry["failed_versions"]:
                _render.line(f"  never again: {', '.join(entry['failed_versions'])}")

    cli.output(result, as_json, show)


def register(group: click.Group) -> None:
    """Add this module's commands to ``group``."""
    group.add_command(keygen)
    group.add_command(sign)
    group.add_command(publish)
    group.add_command(updates)
