"""Where the CLI writes, and the one way a command fails.

User mistakes (a bad pipeline file, a missing dataset, an unknown provider, bad data) print one line and
exit 2; a provider refusal or a failed job prints one line and exits 1. `expected()` is the one boundary
around every command: our error tree, OS errors on our paths, YAML, text encoding and database errors that
escape a command are printed the same way, with a traceback only under `loraflow --debug`. Anything else is
a bug and keeps its traceback.
"""

from __future__ import annotations

import os

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


def expected(exc: BaseException) -> LoraflowError | str | None:
    """What to print for an exception a user can act on, or None for a bug (which keeps its traceback)."""
    import yaml
    from sqlalchemy.exc import SQLAlchemyError

    if isinstance(exc, LoraflowError):
        return exc
    if isinstance(exc, OSError):
        where = f"{_absolute(exc.filename)}: " if exc.filename else ""
        return f"{where}{exc.strerror or exc}; check the path, its permissions and the free space"
    if isinstance(exc, UnicodeError):
        return f"text that is not UTF-8 ({exc}); save the file as UTF-8"
    if isinstance(exc, yaml.YAMLError):
        return f"not valid YAML: {exc}"
    if isinstance(exc, SQLAlchemyError):
        cause = getattr(exc, "orig", None) or exc
        return (f"the registry database failed: {type(cause).__name__}: {str(cause).splitlines()[0]}; check "
                "registry_url / LORAFLOW_REGISTRY_URL, or move a damaged $LORAFLOW_HOME/registry.db away")
    return None


def _absolute(filename: object) -> str:
    """A relative path as the user can find it from anywhere (a URL as it is)."""
    name = os.fsdecode(filename) if isinstance(filename, str | bytes) else str(filename)
    return name if "://" in name else os.path.abspath(name)
