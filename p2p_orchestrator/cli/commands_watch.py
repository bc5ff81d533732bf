"""Calling and watching: ``call``, ``logs``, ``events``.

With ``--json``: ``call`` prints the method's result; ``logs`` prints
``{service_name, lines}`` (with ``--peer``, ``{service_name, lines, truncated}``) and
``events`` ``{events}``; with ``--follow`` both print JSON Lines instead (one
``{service_name, line}`` or one event per line), until Ctrl-C, which ends them normally
(exit 0).  ``--follow`` is for the local node only.
"""

from __future__ import annotations

import json
from typing import Any

import click

from p2p_orchestrator._patterns import METHOD_PATH
from p2p_orchestrator.cli import _render
from p2p_orchestrator.cli._context import CliContext, pass_cli, print_json
from p2p_orchestrator.cli._options import json_option, peer_option

__all__ = ["register"]


def _method_path(ctx: click.Context, param: click.Parameter, value: str) -> str:
    if not METHOD_PATH.fullmatch(value):
        raise click.BadParameter(f"{value!r} is not SERVICE/METHOD (e.g. example_service/greet)")
    return value


def _json_object(ctx: click.Context, param: click.Parameter, value: str | None) -> dict[str, Any]:
    if value is None:
        return {}
    try:
        params = json.loads(value)
    except ValueError as exc:
        raise click.BadParameter(f"not JSON: {exc}") from exc
    if not isinstance(params, dict):
        raise click.BadParameter('must be a JSON object, e.g. \'{"name": "Ada"}\'')
    return params


@click.command()
@click.argument("method", metavar="SERVICE/METHOD", callback=_method_path)
@click.option("--params", callback=_json_object, metavar="JSON", help="The parameters, as a JSON object.")
@peer_option
@json_option
@pass_cli
def call(cli: CliContext, method: str, params: dict[str, Any], peer: str | None, as_json: bool) -> None:
    """Call SERVICE/METHOD and print its result.

    Any path of the node's RPC table works, e.g. orchestrator/list_services.
    """
    request: dict[str, Any] = {"method": method, "params": params}
    if peer is not None:
        request["peer"] = peer
    result = cli.client().call("node/call", request)
    if as_json:
        print_json(result)
    elif isinstance(result, dict):
        _render.mapping_table(method, result)
    else:
        _render.line(json.dumps(result, indent=2, default=repr))


@click.command()
@click.argument("name")
@click.option(
    "-n", "--lines", default=50, show_default=True, help="How many of the last lines to show first."
)
@click.option("-f", "--follow", is_flag=True, help="Keep printing new lines until Ctrl-C (this node only).")
@peer_option
@json_option
@pass_cli
def logs(cli: CliContext, *, name: str, lines: int, follow: bool, peer: str | None, as_json: bool) -> None:
    """Show the output (stdout and stderr) of service NAME.

    With --peer, the last lines (at most 1000, 1 MiB) of the service on that node, which must
    give this one the read role.
    """
    if peer is not None:
        _refuse_follow(follow)
        remote = cli.orchestrator("get_service_logs", peer, service_name=name, lines=lines)
        if as_json:
            print_json(remote)
            return
        for line in remote["lines"]:
            click.echo(line)
        if remote["truncated"]:
            click.echo("(older lines left out: a reply from another node carries at most 1 MiB)", err=True)
        return
    items = cli.client().stream("node/logs", {"service_name": name, "lines": lines, "follow": follow})
    if as_json and not follow:
        print_json({"service_name": name, "lines": list(items)})
        return
    try:
        for line in items:
            if as_json:
                print_json({"service_name": name, "line": line}, compact=True)
            else:
                click.echo(line)
    except KeyboardInterrupt:
        return  # the way to stop following


def _refuse_follow(follow: bool) -> None:
    if follow:
        raise click.UsageError("--follow works on this node only; without it, --peer shows the last lines")


@click.command()
@click.option("-n", "--limit", default=20, show_default=True, help="How many recent events to show first.")
@click.option("-f", "--follow", is_flag=True, help="Keep printing new events until Ctrl-C.")
@click.option("--type", "types", multiple=True, metavar="TYPE", help="Only events of this type (repeatable).")
@peer_option
@json_option
@pass_cli
def events(
    cli: CliContext, *, limit: int, follow: bool, types: tuple[str, ...], peer: str | None, as_json: bool
) -> None:
    """Show what happened on this node (or, with --peer, on that one: recent events only).

    Installs, starts, failures, health changes, reverts, distributions.
    """
    params: dict[str, Any] = {"limit": limit}
    if types:
        params["types"] = list(types)
    if peer is not None:
        _refuse_follow(follow)
        remote = cli.orchestrator("get_events", peer, **params)
        if as_json:
            print_json(remote)
            return
        for event in remote["events"]:
            _render.line(_render.event_text(event))
        return
    items = cli.client().stream("node/events", {**params, "follow": follow})
    if as_json and not follow:
        print_json({"events": list(items)})
        return
    try:
        for event in items:
            if as_json:
                print_json(event, compact=True)
            else:
                _render.line(_render.event_text(event))
    except KeyboardInterrupt:
        return


def register(group: click.Group) -> None:
    """Add this module's commands to ``group``."""
    for command in (call, logs, events):
        group.add_command(command)
