"""The node itself: ``init``, ``node``, ``id``, ``peers``, ``trust``, ``dashboard``.

``init`` and ``id`` work without a running node (they read or create the
home's identity, which loads libp2p: about a second); ``trust`` writes
``roles.toml`` itself when no node runs, and asks the node otherwise (it owns
the file while it runs).
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from pathlib import Path
from typing import Any

import click

from p2p_orchestrator.cli import _render
from p2p_orchestrator.cli._context import CliContext, pass_cli, print_json
from p2p_orchestrator.cli._options import check_peer_ids, json_option
from p2p_orchestrator.control.errors import ControlError, NodeNotRunning

__all__ = ["register"]

_ROLES = ("admin", "deployer", "reader", "none")


@click.command()
@json_option
@pass_cli
def init(cli: CliContext, as_json: bool) -> None:
    """Create the home: identity and config.toml.

    The config file has every setting commented out at its default; an
    existing one is kept.
    """
    from p2p_orchestrator.cli._config_template import CONFIG_TEMPLATE
    from p2p_orchestrator.config import CONFIG_FILE_NAME
    from p2p_orchestrator.node.identity import load_or_create_identity, peer_id_of

    home = cli.home
    home.mkdir(mode=0o700, parents=True, exist_ok=True)
    peer_id = peer_id_of(load_or_create_identity(home))
    config = home / CONFIG_FILE_NAME
    created = False
    try:
        with open(config, "x", encoding="utf-8") as file:
            file.write(CONFIG_TEMPLATE)
        created = True
    except FileExistsError:
        pass
    result = {"home": str(home), "peer_id": peer_id, "config": str(config), "config_created": created}

    def show(result: dict[str, Any]) -> None:
        _render.line(f"home     {result['home']}")
        _render.line(f"peer ID  {result['peer_id']}")
        kept = "written" if result["config_created"] else "kept as it was"
        _render.line(f"config   {result['config']} ({kept})")
        _render.line("next     p2p-orchestrator node")

    cli.output(result, as_json, show)


@click.command()
@click.option(
    "--listen", multiple=True, metavar="MULTIADDR", help="Listen here instead of [node] listen (repeatable)."
)
@click.option(
    "--bootstrap",
    multiple=True,
    metavar="MULTIADDR",
    help="Also connect to (and keep connected) this peer: /ip4/.../tcp/N/p2p/PEER_ID (repeatable).",
)
@click.option(
    "--log-level",
    type=click.Choice(["debug", "info", "warning", "error"]),
    default="info",
    show_default=True,
    help="Logging on stderr.",
)
@json_option
@pass_cli
def node(
    cli: CliContext, listen: tuple[str, ...], bootstrap: tuple[str, ...], log_level: str, as_json: bool
) -> None:
    """Run a node in the foreground until Ctrl-C or SIGTERM.

    It prints its peer ID and listen addresses (with --json: one JSON line,
    once its control socket is ready), serves the control socket, and logs on
    stderr.  It stops its services when it stops.
    """
    from p2p_orchestrator.cli._node_runner import main, node_config

    logging.basicConfig(
        level=log_level.upper(), stream=sys.stderr, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    logging.getLogger("libp2p").setLevel(max(logging.WARNING, logging.getLogger().level))
    config = node_config(cli.home, listen, bootstrap)

    def announce(info: dict[str, Any]) -> None:
        if as_json:
            print_json(info, compact=True)
            return
        _render.line(f"peer ID         {info['peer_id']}")
        for address in info["listen_addrs"]:
            _render.line(f"listening on    {address}")
        _render.line(f"control socket  {info['control_socket']}")
        if info.get("metrics"):
            _render.line(f"metrics         {info['metrics']}")
        if info.get("dashboard"):
            _render.line(f"dashboard       {info['dashboard']}")
        _render.line("(Ctrl-C stops the node)")
        sys.stdout.flush()

    main(cli.home, config, announce)


def _offline_id(home: Path) -> dict[str, Any]:
    from p2p_orchestrator.node.identity import IDENTITY_FILE_NAME, load_or_create_identity, peer_id_of

    if not (home / IDENTITY_FILE_NAME).exists():
        raise ControlError(
            f"{home} has no identity yet: run `p2p-orchestrator --home {home} init`", code="no_identity"
        )
    return {
        "peer_id": peer_id_of(load_or_create_identity(home)),
        "home": str(home),
        "running": False,
        "listen_addrs": [],
        "pid": None,
        "control_socket": None,
    }


@click.command(name="id")
@json_option
@pass_cli
def id_(cli: CliContext, as_json: bool) -> None:
    """Show this node's peer ID (and, while it runs, its addresses)."""
    try:
        result = {**cli.client().call("node/id"), "running": True}
    except NodeNotRunning:
        result = _offline_id(cli.home)

    def show(result: dict[str, Any]) -> None:
        _render.line(f"peer ID       {result['peer_id']}")
        for address in result["listen_addrs"]:
            _render.line(f"listening on  {address}")
        if not result["running"]:
            _render.line(f"(no node is running for {result['home']})")

    cli.output(result, as_json, show)


@click.command()
@json_option
@pass_cli
def peers(cli: CliContext, as_json: bool) -> None:
    """List known and connected peers, and their roles here."""
    cli.output(cli.client().call("node/peers"), as_json, _render.peers_table)


@click.command()
@click.argument("peer_id", callback=check_peer_ids)
@click.option(
    "--role",
    type=click.Choice(_ROLES),
    required=True,
    help="What PEER_ID may do on this node (none: take its role away).",
)
@json_option
@pass_cli
def trust(cli: CliContext, peer_id: str, role: str, as_json: bool) -> None:
    """Give PEER_ID a role on this node.

    admin: everything; deployer: install, start, stop... and read; reader:
    list, info, status, export, fetch; none: take its role away.
    """
    wanted = None if role == "none" else role
    try:
        result = cli.client().call("node/trust", {"peer_id": peer_id, "role": wanted})
    except NodeNotRunning:
        result = _trust_offline(cli.home, peer_id, wanted)

    def show(result: dict[str, Any]) -> None:
        now, before = result["role"] or "no role", result["previous_role"] or "no role"
        _render.line(f"{result['peer_id']} now has {now} here (before: {before})")

    cli.output(result, as_json, show)


def _trust_offline(home: Path, peer_id: str, role: str | None) -> dict[str, Any]:
    """No node runs: write ``roles.toml`` directly (the node reads it when it starts)."""
    from p2p_orchestrator.config import load_config
    from p2p_orchestrator.node.access import AccessControl

    os.makedirs(home, mode=0o700, exist_ok=True)
    access = AccessControl(load_config(home).access, home)
    previous = access.role_of(peer_id)
    access.set_role(peer_id, role)
    current = access.role_of(peer_id)
    return {
        "peer_id": peer_id,
        "role": current.value if current else None,
        "previous_role": previous.value if previous else None,
    }


@click.command()
@click.option(
    "--token",
    "show_token",
    is_flag=True,
    help="Print the token the dashboard's actions need (made if none yet).",
)
@json_option
@pass_cli
def dashboard(cli: CliContext, show_token: bool, as_json: bool) -> None:
    """Where this node serves its dashboard ([dashboard] listen), and its token.

    The pages need no token on loopback; actions (start, stop, restart,
    rollback, rollout, replicas) do: paste it into the page's token field, which
    sends it as an Authorization header.  It is kept in <home>/dashboard.token
    (mode 0600); with --token, only the token is printed.
    """
    from p2p_orchestrator.config import load_config
    from p2p_orchestrator.dashboard.token import load_or_create_token

    if not cli.home.is_dir():
        raise ControlError(
            f"{cli.home} is not a node home yet: run `p2p-orchestrator --home {cli.home} init`",
            code="no_identity",
        )
    settings = load_config(cli.home).dashboard
    listen = settings.listen
    url = f"http://{listen}/" if listen and not listen.endswith(":0") else None
    if listen:
        # The running node knows the port it bound (``:0`` in the configuration); with no node
        # running, the configuration is all there is to tell.
        with contextlib.suppress(NodeNotRunning):
            url = cli.client().call("node/id").get("dashboard") or url
    result: dict[str, Any] = {"listen": listen or None, "url": url, "allow_remote": settings.allow_remote}
    if show_token:
        result["token"] = load_or_create_token(cli.home)
        if not as_json:
            click.echo(result["token"])
            return

    def show(result: dict[str, Any]) -> None:
        if not result["listen"]:
            _render.line(
                'not served: set [dashboard] listen = "127.0.0.1:8080" in config.toml, restart the node'
            )
        elif result["url"] is None:
            _render.line(f"listening on {result['listen']}: start the node to learn its port")
        else:
            _render.line(f"dashboard  {result['url']}")
        _render.line("actions need its token: p2p-orchestrator dashboard --token")

    cli.output(result, as_json, show)


def register(group: click.Group) -> None:
    """Add this module's commands to ``group``."""
    for command in (init, node, id_, peers, trust, dashboard):
        group.add_command(command)
