"""The progress bar of a distribution, fed by ``distribution_progress`` events (on stderr).

An event's ``data`` (see :class:`p2p_orchestrator.orchestrator.distribution.DistributionProgress`):
``bytes_received`` (what the targets hold, from the origin or, in a swarm, from each other)
of ``bytes_total`` (the archive's size times the targets), and ``targets_done``,
``targets_failed``, ``targets_total``.  The bar shows ``bytes_received``; a node too old to
send it gets ``bytes_sent`` (what the origin sent) instead.  Missing numbers are left as they
were, so an older or newer node never breaks the bar.
"""

from __future__ import annotations

from types import TracebackType
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rich.progress import Progress, TaskID

__all__ = ["DistributionBar"]


class DistributionBar:
    """One bar for the bytes all targets received, and a count of finished targets (``with``: shown)."""

    def __init__(self, service: str, targets: int) -> None:
        from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeElapsedColumn

        from p2p_orchestrator.cli._render import console

        self._service = service
        self._targets = targets
        self._progress: Progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            DownloadColumn(),
            TimeElapsedColumn(),
            console=console(stderr=True),
        )
        self._task: TaskID = self._progress.add_task(self._describe(0, 0), total=None)

    def _describe(self, done: int, failed: int) -> str:
        text = f"{self._service}: {done}/{self._targets} node(s)"
        return f"{text}, {failed} failed" if failed else text

    def update(self, event: Any) -> None:
        """Apply one event (anything but a ``distribution_progress`` of this service is ignored)."""
        if not isinstance(event, dict) or event.get("type") != "distribution_progress":
            return
        if event.get("service") != self._service:
            return
        data = event.get("data") or {}
        received, total = data.get("bytes_received"), data.get("bytes_total")
        if not isinstance(received, int):
            received = data.get("bytes_sent")  # an older node: the origin's bytes only
        if isinstance(received, int) and isinstance(total, int) and total > 0:
            self._progress.update(self._task, completed=min(received, total), total=total)
        done, failed = data.get("targets_done"), data.get("targets_failed")
        if isinstance(done, int) and isinstance(failed, int):
            self._progress.update(self._task, description=self._describe(done, failed))

    def finish(self, result: Any) -> None:
        """Show the outcome of the distribution's result (its last events may still be on the way)."""
        if not isinstance(result, dict):
            return
        total, failed = result.get("total_nodes"), result.get("failed_distributions")
        if isinstance(total, int) and isinstance(failed, int):
            self._progress.update(self._task, description=self._describe(total, failed))
        task = self._progress.tasks[0]
        if task.total is not None:
            self._progress.update(self._task, completed=task.total)

    def __enter__(self) -> DistributionBar:
        self._progress.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._progress.stop()
