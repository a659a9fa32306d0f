"""A rich progress bar that implements aisec's progress callback.

On a terminal: one live bar per task with samples done of total, the task's elapsed time and the time
since the run started; bars of tasks that never finished are removed at the end (no stale bars). When
the output is not a terminal (CI logs, pipes), no bars: one plain line per finished task instead.
"""

from __future__ import annotations

import time
from types import TracebackType

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)
from rich.text import Text


def _clock(seconds: float) -> str:
    m, s = divmod(int(seconds), 60)
    h, m = divmod(m, 60)
    return f"{h}:{m:02d}:{s:02d}"


class _SinceStart(ProgressColumn):
    """Time since the whole run started (every bar shows the same clock)."""

    def __init__(self, t0: float) -> None:
        super().__init__()
        self.t0 = t0

    def render(self, task: Task) -> Text:
        return Text(f"run {_clock(time.monotonic() - self.t0)}", style="dim")


class RichProgress:
    """Context manager; call it as ``progress(task, done, total)``. Silent when disabled."""

    def __init__(self, *, enabled: bool = True, console: Console | None = None) -> None:
        self.enabled = enabled
        self.console = console or Console(stderr=True)
        self.live = enabled and self.console.is_terminal
        self.t0 = time.monotonic()
        self._bar = Progress(
            TextColumn("[bold]{task.description:<16}"), BarColumn(), MofNCompleteColumn(),
            TimeElapsedColumn(), _SinceStart(self.t0), console=self.console, transient=False,
            disable=not self.live,
        )
        self._tasks: dict[str, TaskID] = {}
        self._started: dict[str, float] = {}

    def __enter__(self) -> RichProgress:
        self.t0 = time.monotonic()
        if self.live:
            self._bar.start()
        return self

    def __exit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self.live:
            for task_id in list(self._tasks.values()):
                if not self._bar.tasks[task_id].finished:
                    self._bar.remove_task(task_id)  # a bar left half-way would read as work still running
            self._bar.stop()

    def __call__(self, task: str, done: int, total: int) -> None:
        if not self.enabled:
            return
        if not self.live:
            if done <= 1 or task not in self._started:
                self._started.setdefault(task, time.monotonic())
            if total and done >= total:
                took = time.monotonic() - self._started.pop(task, time.monotonic())
                self.console.print(f"{task}: {done}/{total} done in {took:.1f} s "
                                   f"(run {_clock(time.monotonic() - self.t0)})", highlight=False)
            return
        if task not in self._tasks or (done < total and self._bar.tasks[self._tasks[task]].finished):
            if task in self._tasks:  # the same work again (the next eps): the bar starts over
                self._bar.reset(self._tasks[task], total=total, completed=done)
                return
            self._tasks[task] = self._bar.add_task(task, total=total)
        self._bar.update(self._tasks[task], completed=done, total=total)
