"""``p2p-orchestrator``: the root command, error handling and exit codes.

Exit codes: 0 success; 1 the operation failed (``error [code]: message`` on
stderr, including "no node is running" with the command that starts one);
2 usage error (click's own).  Commands that need a node talk to it through
its control socket (:mod:`p2p_orchestrator.control.client`): this module and
the command modules import neither trio nor libp2p at import time, so a call
costs little more than starting Python.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import click

from p2p_orchestrator.cli import (
    commands_dev,
    commands_dist,
    commands_fleet,
    commands_node,
    commands_release,
    commands_services,
    commands_watch,
)
from p2p_orchestrator.cli._context import CliContext, OperationFailed
from p2p_orchestrator.control.paths import HOME_ENV, resolve_home
from p2p_orchestrator.errors import OrchestratorError

__all__ = ["cli", "main"]


class _Group(click.Group):
    """Turns an :class:`OrchestratorError` of any command into exit code 1 with its code on stderr."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except OrchestratorError as exc:
            raise OperationFailed(exc) from exc


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--home",
    type=click.Path(file_okay=False, path_type=Path),
    envvar=HOME_ENV,
    help=f"The node's home directory (default ~/.p2p-orchestrator; also ${HOME_ENV}).",
)
@click.version_option(package_name="p2p-orchestrator")
@click.pass_context
def cli(ctx: click.Context, home: Path | None) -> None:
    """Install, run and distribute services on peer-to-peer nodes.

    Start a node with `p2p-orchestrator node`; the other commands drive it
    through its control socket (<home>/control.sock).
    """
    state = CliContext(resolve_home(home))
    ctx.obj = state
    ctx.call_on_close(state.close)


for _module in (
    commands_node,
    commands_dev,
    commands_release,
    commands_services,
    commands_dist,
    commands_fleet,
    commands_watch,
):
    _module.register(cli)


def main() -> None:
    """Console-script entry point."""
    try:
        cli.main(prog_name="p2p-orchestrator")
    except BrokenPipeError:
        # the reader went away (e.g. `p2p-orchestrator logs NAME | head`): stop quietly
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        sys.exit(0)
