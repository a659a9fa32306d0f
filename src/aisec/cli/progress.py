"""A rich progress bar that implements aisec's progress callback."""

from __future__ import annotations

from types import TracebackType

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeElapsedColumn


class RichProgress:
    """Context manager; call it as ``progress(task, done, total)``. Silent when disabled."""

    def __init__(self, *, enabled: bool = True, console: Console | None = None) -> None:
        self.enabled = enabled
        self._bar = Progress(
            TextColumn("[bold]{task.description:<16}"), BarColumn(), MofNCompleteColumn(),
            TimeElapsedColumn(), console=console or Console(stderr=True), transient=False,
            disable=not enabled,
        )
        self._tasks: dict[str, TaskID] = {}

    def __enter__(self) -> RichProgress:
        self._bar.start()
        return self

    def __exit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._bar.stop()

    def __call__(self, task: str, done: int, total: int) -> None:
        if task not in self._tasks or (done == 1 and self._bar.tasks[self._tasks[task]].finished):
            if task in self._tasks:
                self._bar.reset(self._tasks[task], total=total, completed=done)
                return
            self._tasks[task] = self._bar.add_task(task, total=total)
        self._bar.update(self._tasks[task], completed=done, total=total)
