"""Between nodes: ``distribute`` and ``fetch`` (``orchestrator/distribute_service`` and ``fetch_service``).

Without ``--json`` a distribution shows a progress bar (the bytes every target received, and the
targets done), fed by the node's ``distribution_progress`` events on the same connection.
"""

from __future__ import annotations

from typing import Any

import click

from p2p_orchestrator.cli import _render
from p2p_orchestrator.cli._context import CliContext, OperationFailed, pass_cli
from p2p_orchestrator.cli._options import check_peer_ids, json_option, peer_option
from p2p_orchestrator.cli._progress import DistributionBar
from p2p_orchestrator.errors import ServiceDistributionError

__all__ = ["register"]


@click.command()
@click.argument("name")
@click.argument("peer_ids", metavar="PEER_ID...", nargs=-1, required=True, callback=check_peer_ids)
@click.option(
    "--strategy", help="How to spread it: swarm (the default: targets also serve each other) or push."
)
@click.option("--force", is_flag=True, help="Reinstall the same version, or downgrade, on the targets.")
@click.option("--start", is_flag=True, help="Also start it on each target (else: the target's own policy).")
@click.option(
    "--concurrency", type=click.IntRange(min=1), help="Targets served at once (default: [node] setting)."
)
@peer_option
@json_option
@pass_cli
def distribute(
    cli: CliContext,
    *,
    name: str,
    peer_ids: tuple[str, ...],
    strategy: str | None,
    force: bool,
    start: bool,
    concurrency: int | None,
    peer: str | None,
    as_json: bool,
) -> None:
    """Send service NAME to other nodes and install it there.

    The targets are peer IDs; each must give this node the deployer role.
    """
    params: dict[str, Any] = {"service_name": name, "target_nodes": list(peer_ids)}
    optional = {"strategy": strategy, "force_reinstall": force or None, "auto_start": start or None}
    params.update({key: value for key, value in optional.items() if value is not None})
    if concurrency is not None:
        params["concurrency"] = concurrency
    if as_json or peer is not None:
        result = cli.orchestrator("distribute_service", peer, **params)
    else:
        client = cli.client()  # connect first: no bars for a node that is not running
        with DistributionBar(name, len(set(peer_ids))) as progress:
            result = client.call_watching(
                "orchestrator/distribute_service",
                params,
                watch=("node/events", {"limit": 0, "follow": True, "types": ["distribution_progress"]}),
                on_item=progress.update,
            )
            progress.finish(result)
    cli.output(result, as_json, _render.distribution_table)
    failed = result.get("failed_distributions") if isinstance(result, dict) else None
    if failed:
        error = ServiceDistributionError(
            f"{name} did not reach {failed} of {result.get('total_nodes')} node(s)",
            code="distribution_failed",
        )
        raise OperationFailed(error)


@click.command()
@click.argument("name")
@click.option(
    "--from",
    "source",
    required=True,
    metavar="PEER_ID",
    callback=check_peer_ids,
    help="The node to fetch it from.",
)
@click.option("--force", is_flag=True, help="Reinstall the same version, or downgrade.")
@peer_option
@json_option
@pass_cli
def fetch(cli: CliContext, *, name: str, source: str, force: bool, peer: str | None, as_json: bool) -> None:
    """Fetch service NAME from another node and install it here.

    The other node must give this one the reader role.
    """
    params: dict[str, Any] = {"service_name": name, "from_peer": source}
    if force:
        params["force_reinstall"] = True
    result = cli.orchestrator("fetch_service", peer, **params)

    def show(result: dict[str, Any]) -> None:
        if isinstance(result, dict) and "service_name" in result:
            _render.mapping_table(f"fetched {name} from {source}", result)
        else:
            _render.line(f"fetched {name} from {source}")

    cli.output(result, as_json, show)


def register(group: click.Group) -> None:
    """Add this module's commands to ``group``."""
    group.add_command(distribute)
    group.add_command(fetch)
