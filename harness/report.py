"""What a long harness run shows: a progress bar, a final summary table, a JSON report.

``rich`` draws the bar and the table when it is installed (the ``test`` extra); without
it the same content is printed as plain text, so the harness works on a bare install.
The JSON report holds the same numbers as the table, plus every finding, the seed and
the command that reproduces the run.
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, TextIO

try:
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn
    from rich.progress import Progress as RichProgress
    from rich.table import Table

    HAVE_RICH = True
except ImportError:  # pragma: no cover - the test extra installs rich
    HAVE_RICH = False


@dataclass(frozen=True)
class Finding:
    """One violation: what kind, where (cycle, crash state), and the details."""

    kind: str
    where: str
    detail: str


@dataclass
class Report:
    """The outcome of one harness run."""

    title: str
    seed: int
    rows: list[tuple[str, str]]
    """The summary, as (label, value) lines of the final table."""
    data: dict[str, Any]
    """The same numbers, machine-readable, for the JSON report."""
    findings: list[Finding] = field(default_factory=list)
    reproduce: str = ""
    """The command that runs the same seed again."""

    @property
    def ok(self) -> bool:
        """True if nothing was found."""
        return not self.findings

    def to_json(self) -> str:
        """The JSON report."""
        body = {
            "title": self.title,
            "ok": self.ok,
            "seed": self.seed,
            **self.data,
            "findings": [asdict(f) for f in self.findings],
            "reproduce": self.reproduce,
        }
        return json.dumps(body, indent=2, sort_keys=True)

    def write_json(self, path: Path) -> None:
        """Write the JSON report to ``path``."""
        path.write_text(self.to_json() + "\n")

    def render(self, stream: TextIO = sys.stdout, limit: int = 20) -> None:
        """Print the summary table, then the first ``limit`` findings."""
        verdict = "PASS: 0 violations" if self.ok else f"FAIL: {len(self.findings)} violations"
        if HAVE_RICH:
            console = Console(file=stream, highlight=False, width=max(100, _width(stream)))
            table = Table(title=f"{self.title}: {verdict}", show_header=False)
            table.add_column(style="bold")
            table.add_column()
            for label, value in self.rows:
                table.add_row(label, value)
            console.print(table)
        else:
            print(f"{self.title}: {verdict}", file=stream)
            width = max(len(label) for label, _ in self.rows) if self.rows else 0
            for label, value in self.rows:
                print(f"  {label:<{width}}  {value}", file=stream)
        for finding in self.findings[:limit]:
            print(f"  [{finding.kind}] {finding.where}: {finding.detail}", file=stream)
        if len(self.findings) > limit:
            print(f"  ... and {len(self.findings) - limit} more (see the JSON report)",
                  file=stream)
        if not self.ok and self.reproduce:
            print(f"reproduce with: {self.reproduce}", file=stream)


def _width(stream: TextIO) -> int:
    try:
        return os.get_terminal_size(stream.fileno()).columns
    except (OSError, ValueError, AttributeError):
        return 100


def seconds_summary(samples: Sequence[float]) -> dict[str, float]:
    """p50 and max of ``samples`` in seconds (0 when there are none)."""
    if not samples:
        return {"p50": 0.0, "max": 0.0}
    return {"p50": statistics.median(samples), "max": max(samples)}


class Progress:
    """A progress bar on a terminal, a line per tenth of the run otherwise.

    Use as a context manager; ``advance`` after each step with a short status text.
    """

    def __init__(self, total: int, description: str, enabled: bool = True,
                 stream: TextIO = sys.stderr) -> None:
        self.total = total
        self.description = description
        self.enabled = enabled
        self.stream = stream
        self.done = 0
        self._rich: Any = None
        self._task: Any = None
        self._next_line = 0
        self._started = time.monotonic()

    def __enter__(self) -> Progress:
        terminal = getattr(self.stream, "isatty", lambda: False)()
        if self.enabled and HAVE_RICH and terminal:
            self._rich = RichProgress(
                TextColumn("[bold]{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                TextColumn("{task.fields[status]}"),
                console=Console(file=self.stream),
                transient=False,
            )
            self._rich.start()
            self._task = self._rich.add_task(self.description, total=self.total, status="")
        return self

    def advance(self, steps: int = 1, status: str = "") -> None:
        """Record ``steps`` more steps done (past ``total``, the total grows with them:
        a run that finishes whole rounds may do a few more steps than it aimed for)."""
        self.done += steps
        self.total = max(self.total, self.done)
        if self._rich is not None:
            self._rich.update(self._task, advance=steps, total=self.total, status=status)
        elif self.enabled and self.done >= self._next_line:
            self._next_line = self.done + max(1, self.total // 10)
            elapsed = time.monotonic() - self._started
            print(f"{self.description}: {self.done}/{self.total} ({elapsed:.0f} s) {status}",
                  file=self.stream, flush=True)

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if self._rich is not None:
            self._rich.stop()
