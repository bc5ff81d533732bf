"""Command definitions.  Exit codes: 0 success, 1 the operation failed, 2 usage error."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from p2p_orchestrator.archive import pack_service
from p2p_orchestrator.cli import _render
from p2p_orchestrator.cli._backend import LocalBackend
from p2p_orchestrator.config import default_home
from p2p_orchestrator.errors import OrchestratorError

json_option = click.option("--json", "as_json", is_flag=True, help="Print the result as JSON, exactly.")


class _State:
    def __init__(self, home: Path) -> None:
        self.home = home
        self.backend = LocalBackend(home)

    def call(self, method: str, **params: Any) -> Any:
        try:
            return self.backend.call(f"orchestrator/{method}", params)
        except OrchestratorError as exc:
            click.echo(f"error [{exc.code}]: {exc.message}", err=True)
            sys.exit(1)


pass_state = click.make_pass_decorator(_State)


@click.group()
@click.option(
    "--home",
    type=click.Path(file_okay=False, path_type=Path),
    envvar="P2P_ORCHESTRATOR_HOME",
    help="Node home directory (default ~/.p2p-orchestrator; also P2P_ORCHESTRATOR_HOME).",
)
@click.version_option(package_name="p2p-orchestrator")
@click.pass_context
def cli(ctx: click.Context, home: Path | None) -> None:
    """Install, run and distribute services on peer-to-peer nodes."""
    ctx.obj = _State(home or default_home())


@cli.command()
@click.argument("directory", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), help="Archive to write.")
@json_option
def pack(directory: Path, output: Path | None, as_json: bool) -> None:
    """Pack a service DIRECTORY into a deterministic .tar.gz archive."""
    output = output or Path(f"{directory.resolve().name}.tar.gz")
    try:
        with open(output, "wb") as out:
            digest = pack_service(directory.resolve(), out)
    except OrchestratorError as exc:
        output.unlink(missing_ok=True)
        click.echo(f"error [{exc.code}]: {exc.message}", err=True)
        sys.exit(1)
    result = {"archive": str(output), "archive_hash": digest, "size": output.stat().st_size}
    if as_json:
        _render.print_json(result)
    else:
        _render.print_line(f"packed {directory} -> {output} ({result['size']} bytes, sha256 {digest})")


@cli.command()
@click.argument("archive", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--force", is_flag=True, help="Reinstall the same version or downgrade.")
@json_option
@pass_state
def install(state: _State, archive: Path, force: bool, as_json: bool) -> None:
    """Install a service ARCHIVE (.tar.gz)."""
    result = state.call("install_service", archive_data=archive.read_bytes(), force_reinstall=force)
    if as_json:
        _render.print_json(result)
    else:
        _render.print_line(f"installed {result['service_name']} (sha256 {result['archive_hash']})")


def _simple(method: str, verb: str, help_text: str) -> None:
    @click.argument("name")
    @json_option
    @pass_state
    def command(state: _State, name: str, as_json: bool) -> None:
        result = state.call(method, service_name=name)
        if as_json:
            _render.print_json(result)
        else:
            _render.print_line(f"{verb} {name}")

    command.__doc__ = help_text
    cli.command(name=method.split("_", maxsplit=1)[0])(command)


_simple("uninstall_service", "uninstalled", "Uninstall service NAME and all its kept versions.")
_simple("rollback_service", "rolled back", "Switch service NAME back to its previous version.")
_simple("start_service", "started", "Start service NAME.")
_simple("stop_service", "stopped", "Stop service NAME.")
_simple("restart_service", "restarted", "Restart service NAME.")


@cli.command(name="list")
@json_option
@pass_state
def list_(state: _State, as_json: bool) -> None:
    """List installed services."""
    result = state.call("list_services")
    if as_json:
        _render.print_json(result)
    else:
        _render.print_services(result)


@cli.command()
@click.argument("name")
@json_option
@pass_state
def info(state: _State, name: str, as_json: bool) -> None:
    """Show everything known of service NAME."""
    result = state.call("get_service_info", service_name=name)
    if as_json:
        _render.print_json(result)
    else:
        _render.print_mapping(name, result)


@cli.command()
@click.argument("name")
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), required=True)
@json_option
@pass_state
def export(state: _State, name: str, output: Path, as_json: bool) -> None:
    """Write the archive of service NAME's current version to OUTPUT."""
    data: bytes = state.call("export_service", service_name=name)
    output.write_bytes(data)
    result = {"service_name": name, "archive": str(output), "size": len(data)}
    if as_json:
        _render.print_json(result)
    else:
        _render.print_line(f"exported {name} -> {output} ({len(data)} bytes)")


@cli.command()
@json_option
@pass_state
def status(state: _State, as_json: bool) -> None:
    """Show the orchestrator's status and counters."""
    result = state.call("get_orchestrator_status")
    if as_json:
        _render.print_json(result)
    else:
        _render.print_mapping("orchestrator", result)


def main() -> None:
    """Console-script entry point."""
    cli(prog_name="p2p-orchestrator")
