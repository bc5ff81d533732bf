"""Life-cycle commands, each one orchestrator method: install ... status.

``--json`` prints the method's result exactly (the spec's shapes); ``export``,
whose method answers bytes, prints ``{service_name, archive, size, archive_hash}``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from p2p_orchestrator.cli import _render
from p2p_orchestrator.cli._context import CliContext, pass_cli, print_json
from p2p_orchestrator.cli._options import json_option, peer_option

__all__ = ["register"]


@click.command()
@click.argument("archive", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--force", is_flag=True, help="Reinstall the same version, or downgrade.")
@click.option(
    "--release",
    "release",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="The archive's release statement (default: ARCHIVE.release, if it is there).",
)
@click.option(
    "--allow-unsigned", is_flag=True, help="Install without a release statement ([security] require_signed)."
)
@click.option("--allow-rollback", is_flag=True, help="Install a signed release older than one this node ran.")
@peer_option
@json_option
@pass_cli
def install(
    cli: CliContext,
    *,
    archive: Path,
    force: bool,
    release: Path | None,
    allow_unsigned: bool,
    allow_rollback: bool,
    peer: str | None,
    as_json: bool,
) -> None:
    """Install a service ARCHIVE (.tar.gz).

    The node reads the file itself (it never goes through the socket); with
    --peer it sends it to that node.  A release statement (--release, or
    ARCHIVE.release beside it) travels with it and is verified by the node that
    installs it.
    """
    params: dict[str, Any] = {"archive_path": str(archive.resolve()), "force_reinstall": force}
    if release is not None:
        params["release_path"] = str(release.resolve())
    params.update(
        {k: True for k, v in (("allow_unsigned", allow_unsigned), ("allow_rollback", allow_rollback)) if v}
    )
    result = cli.orchestrator("install_service", peer, **params)

    def show(result: dict[str, Any]) -> None:
        started = "started" if result.get("auto_started") else "not started"
        _render.line(f"installed {result['service_name']} ({started}; sha256 {result['archive_hash']})")
        if result.get("auto_start_error"):
            _render.line(f"auto start failed: {result['auto_start_error']}")
        if result.get("reverted"):
            _render.line(f"reverted to the previous version: {result.get('revert_reason')}")

    cli.output(result, as_json, show)


_STOP_DEPENDENTS = "Stop the running services that need it first."


def _life_cycle(method: str, verb: str, doc: str, *, force_help: str | None = None) -> click.Command:
    @click.argument("name")
    @peer_option
    @json_option
    @pass_cli
    def command(cli: CliContext, /, name: str, peer: str | None, as_json: bool, **options: Any) -> None:
        params = {"service_name": name, **{k: v for k, v in options.items() if v}}
        result = cli.orchestrator(method, peer, **params)

        def show(result: dict[str, Any]) -> None:
            if "to_version" in result:
                _render.line(f"{verb} {name}: {result.get('from_version')} -> {result['to_version']}")
            else:
                _render.line(result.get("message") or f"{verb} {name}")

        cli.output(result, as_json, show)

    command.__doc__ = doc
    if force_help is not None:
        command = click.option("--force", is_flag=True, help=force_help)(command)
    return click.command(name=method.removesuffix("_service"))(command)


@click.command(name="list")
@peer_option
@json_option
@pass_cli
def list_(cli: CliContext, peer: str | None, as_json: bool) -> None:
    """List installed services and their state."""
    cli.output(cli.orchestrator("list_services", peer), as_json, _render.services_table)


@click.command()
@click.argument("name")
@peer_option
@json_option
@pass_cli
def info(cli: CliContext, name: str, peer: str | None, as_json: bool) -> None:
    """Show everything known of service NAME."""
    result = cli.orchestrator("get_service_info", peer, service_name=name)
    cli.output(result, as_json, lambda r: _render.mapping_table(name, r))


@click.command()
@click.argument("name")
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), required=True)
@peer_option
@json_option
@pass_cli
def export(cli: CliContext, name: str, output: Path, peer: str | None, as_json: bool) -> None:
    """Write service NAME's archive to a file.

    It is the current version's archive, byte-identical to the one installed.
    """
    params: dict[str, Any] = {"service_name": name, "path": str(output.resolve())}
    if peer is not None:
        params["peer"] = peer
    result = cli.client().call("node/export", params)

    def show(result: dict[str, Any]) -> None:
        _render.line(f"exported {name} -> {output} ({result['size']} bytes, sha256 {result['archive_hash']})")

    cli.output(result, as_json, show)


@click.command()
@peer_option
@json_option
@pass_cli
def status(cli: CliContext, peer: str | None, as_json: bool) -> None:
    """Show the orchestrator's status and counters."""
    result = cli.orchestrator("get_orchestrator_status", peer)
    if as_json:
        print_json(result)
        return
    node = cli.client().call("node/id") if peer is None else None
    _render.status_table(result, node)


@click.command()
@click.argument("name", required=False)
@peer_option
@json_option
@pass_cli
def metrics(cli: CliContext, name: str | None, peer: str | None, as_json: bool) -> None:
    """Show the metrics of every service (or of service NAME) and of the node.

    For each service: its state, health, restarts, and the calls the node passed to
    it; then what the service keeps in self.metrics (counters, gauges, timers).
    """
    params = {"service_name": name} if name is not None else {}
    cli.output(cli.orchestrator("get_metrics", peer, **params), as_json, _render.metrics_tables)


def register(group: click.Group) -> None:
    """Add this module's commands to ``group``."""
    group.add_command(install)
    group.add_command(
        _life_cycle(
            "uninstall_service",
            "uninstalled",
            "Uninstall service NAME and all its kept versions.",
            force_help=_STOP_DEPENDENTS,
        )
    )
    group.add_command(_life_cycle("start_service", "started", "Start service NAME (and what it needs)."))
    group.add_command(
        _life_cycle(
            "stop_service", "stopped", "Stop service NAME (it stays stopped).", force_help=_STOP_DEPENDENTS
        )
    )
    group.add_command(_life_cycle("restart_service", "restarted", "Restart service NAME."))
    group.add_command(
        _life_cycle(
            "rollback_service",
            "rolled back",
            "Switch service NAME back to its previous version.",
            force_help="Even if running services need a version in a range it leaves out.",
        )
    )
    group.add_command(list_)
    group.add_command(info)
    group.add_command(export)
    group.add_command(status)
    group.add_command(metrics)
