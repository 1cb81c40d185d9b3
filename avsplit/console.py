"""Console output: one rich console on stderr, progress bars, user-facing error lines."""

from __future__ import annotations

import logging

from rich.console import Console
from rich.markup import escape
from rich.logging import RichHandler
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

#: All human-facing output goes to stderr, so stdout stays free for machine-readable results.
console = Console(stderr=True, highlight=False)
#: Results a user asked for (tables of `models`, `evaluate`) go to stdout.
stdout_console = Console(highlight=False)
log = logging.getLogger("avsplit")

_state = {"quiet": False}


def configure(quiet: bool = False, verbose: bool = False) -> None:
    """Set verbosity for the process (called once by the CLI)."""
    _state["quiet"] = quiet
    level = logging.WARNING if quiet else (logging.DEBUG if verbose else logging.INFO)
    log.setLevel(level)
    if not any(isinstance(h, RichHandler) for h in log.handlers):
        handler = RichHandler(console=console, show_time=False, show_path=False, markup=False)
        handler.setFormatter(logging.Formatter("%(message)s"))
        log.addHandler(handler)
    log.propagate = False


def is_quiet() -> bool:
    return _state["quiet"]


def make_progress(transient: bool = False) -> Progress:
    """A rich progress bar with count, elapsed and remaining time; disabled when quiet."""
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        TextColumn("{task.fields[status]}"),
        console=console,
        transient=transient,
        disable=_state["quiet"],
    )


def error_line(message: str) -> None:
    """Print one red error line (always shown, even when quiet)."""
    console.print(f"[red]error:[/red] {escape(message)}", markup=True, highlight=False, soft_wrap=True)


def warn_line(message: str) -> None:
    if not _state["quiet"]:
        console.print(f"[yellow]warning:[/yellow] {escape(message)}", markup=True, highlight=False, soft_wrap=True)
