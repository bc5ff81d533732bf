"""Options shared by many commands."""

from __future__ import annotations

import click

from p2p_orchestrator._patterns import PEER_ID, PEER_NAME

__all__ = ["check_peer", "check_peer_ids", "json_option", "peer_option"]


def check_peer_ids(ctx: click.Context, param: click.Parameter, value: object) -> object:
    """Click callback: a usage error unless the value (or each value of a tuple) is a peer ID."""
    values = value if isinstance(value, tuple) else (value,)
    for item in values:
        if item is not None and not PEER_ID.fullmatch(str(item)):
            raise click.BadParameter(f"{item!r} is not a peer ID (12D3KooW...)")
    return value


def check_peer(ctx: click.Context, param: click.Parameter, value: object) -> object:
    """Click callback: a usage error unless the value is a peer ID or a peer name (of ``[peers]``)."""
    if value is not None and not (PEER_ID.fullmatch(str(value)) or PEER_NAME.fullmatch(str(value))):
        raise click.BadParameter(f"{value!r} is neither a peer ID (12D3KooW...) nor a name of [peers]")
    return value


json_option = click.option(
    "--json", "as_json", is_flag=True, help="Print exactly the result's JSON on stdout, nothing else."
)
peer_option = click.option(
    "--peer",
    metavar="PEER",
    callback=check_peer,
    help="Run it on that node (a peer ID, or a name of the node's [peers] table), "
    "through the local one (that node must trust this one).",
)
