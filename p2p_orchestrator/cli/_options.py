"""Options shared by many commands."""

from __future__ import annotations

import re

import click

__all__ = ["check_peer", "check_peer_ids", "json_option", "peer_option"]

_PEER_ID_RE = re.compile(r"[1-9A-HJ-NP-Za-km-z]{32,128}")
_PEER_NAME_RE = re.compile(r"[A-Za-z][A-Za-z0-9_-]{0,63}")


def check_peer_ids(ctx: click.Context, param: click.Parameter, value: object) -> object:
    """Click callback: a usage error unless the value (or each value of a tuple) is a peer ID."""
    values = value if isinstance(value, tuple) else (value,)
    for item in values:
        if item is not None and not _PEER_ID_RE.fullmatch(str(item)):
            raise click.BadParameter(f"{item!r} is not a peer ID (12D3KooW...)")
    return value


def check_peer(ctx: click.Context, param: click.Parameter, value: object) -> object:
    """Click callback: a usage error unless the value is a peer ID or a peer name (of ``[peers]``)."""
    if value is not None and not (_PEER_ID_RE.fullmatch(str(value)) or _PEER_NAME_RE.fullmatch(str(value))):
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
