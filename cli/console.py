"""Where the CLI writes, and the one way a command fails.

User mistakes (a bad pipeline file, a missing dataset, an unknown provider, bad data) print one line and
exit 2; a provider refusal or a failed job prints one line and exits 1. Anything else is a bug and keeps its
traceback.
"""

from __future__ import annotations

import typer
from rich.console import Console
from rich.text import Text

from providers.errors import ConfigError, LoraflowError

console = Console()
errors = Console(stderr=True)


def exit_code(problem: LoraflowError | str) -> int:
    return 2 if isinstance(problem, ConfigError | str) else 1


def fail(problem: LoraflowError | str, code: int | None = None) -> typer.Exit:
    """Print `error: <problem>` on stderr and return the Exit to raise (code 2 for a user mistake, else 1)."""
    # a Text, not markup: a path or key with brackets in it is printed as it is
    errors.print(Text.assemble(("error:", "bold red"), " ", str(problem)), highlight=False, soft_wrap=True)
    return typer.Exit(exit_code(problem) if code is None else code)
