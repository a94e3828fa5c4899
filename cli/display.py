"""The CLI's live view of a run: the `loraflow` log records rendered as rich progress bars."""

from __future__ import annotations

import logging
from typing import Self

from rich.console import Console, Group
from rich.panel import Panel
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table
from rich.text import Text

from tasks.evaluation.decision import Decision

STAGES = ("prepare", "upload", "submit", "train", "evaluate", "decide")
_COLOURS = {"accept": "green", "accept_weak": "green", "marginal": "yellow", "underpowered": "yellow",
            "invalid": "magenta"}


class RunDisplay(logging.Handler):
    """One bar per pipeline stage; milestones print as lines above the bars."""

    def __init__(self, console: Console) -> None:
        super().__init__(level=logging.INFO)
        self.console = console
        self.bars = Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(),
                             MofNCompleteColumn(), TimeElapsedColumn(), console=console)
        self._tasks: dict[str, int] = {}

    def __enter__(self) -> Self:
        self.bars.start()
        return self

    def __exit__(self, *exc: object) -> None:
        for task_id in self._tasks.values():
            task = self.bars.tasks[task_id]
            if task.total is not None and task.completed < task.total and exc[0] is None:
                self.bars.update(task_id, completed=task.total)
        self.bars.stop()

    def emit(self, record: logging.LogRecord) -> None:
        progress = getattr(record, "loraflow_progress", None)
        message = record.getMessage()
        if progress is None:
            self.bars.console.print(f"[dim]{record.levelname.lower():>8}[/] {message}")
            return
        task_id = self._stage(progress.stage)
        if progress.completed is None:
            self.bars.console.print(f"[bold cyan]{progress.stage:>8}[/] {message}")
            self.bars.update(task_id, completed=self.bars.tasks[task_id].total or 1)
        else:
            self.bars.update(task_id, completed=progress.completed, total=progress.total or None,
                             description=f"{progress.stage:>8} {message}")

    def _stage(self, stage: str) -> int:
        if stage not in self._tasks:
            for earlier in STAGES[: STAGES.index(stage)] if stage in STAGES else ():
                if earlier in self._tasks:
                    task = self.bars.tasks[self._tasks[earlier]]
                    self.bars.update(self._tasks[earlier], completed=task.total or 1)
            self._tasks[stage] = self.bars.add_task(f"{stage:>8}", total=1)
        return self._tasks[stage]


def decision_panel(decision: Decision, model_id: str, run_dir: str) -> Panel:
    """The decision, one row per comparison (the primary first), the notes, the candidate and the run
    directory."""
    colour = _COLOURS.get(decision.outcome, "red")
    table = Table(box=None, pad_edge=False)
    for column in ("metric", "kind", "base", "candidate", "delta [95% CI]", "p"):
        table.add_column(column, justify="left" if column in ("metric", "kind") else "right")
    for c in sorted(decision.comparisons, key=lambda c: (c.metric != decision.primary, c.slice is not None)):
        name = f"{c.metric} (primary)" if c.metric == decision.primary else c.metric
        delta = f"{c.delta * 100:+.1f} pp [{c.ci_low * 100:+.1f}, {c.ci_high * 100:+.1f}]"
        table.add_row(name, c.kind, f"{c.base_value:.1%}", f"{c.candidate_value:.1%}", delta,
                      f"{c.p_value:.2g}")
    stops = decision.never_stops
    if stops is not None:  # answers that ran into max_tokens: a model that does not end its turn
        table.add_row(f"cut at max_tokens ({stops.max_tokens})", "stops", f"{stops.base_rate:.1%}",
                      f"{stops.candidate_rate:.1%}",
                      f"{stops.delta * 100:+.1f} pp [{stops.ci_low * 100:+.1f}, {stops.ci_high * 100:+.1f}]",
                      f"{stops.p_value:.2g}")
    verdict = Text.assemble((decision.outcome.upper(), f"bold {colour}"), ": ", decision.reason)
    parts: list[Text | Table] = [verdict, Text(""), table]
    if decision.notes:
        parts += [Text(""), *(Text.assemble(("note ", "dim"), note) for note in decision.notes)]
    parts += [Text(""), Text.assemble(("candidate ", "dim"), model_id, "\n", ("run dir   ", "dim"), run_dir)]
    return Panel(Group(*parts), title=f"decision ({decision.rules_version})", border_style=colour,
                 expand=False)
