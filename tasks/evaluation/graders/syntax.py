"""syntax_check: a user-supplied parser decides whether an answer is well-formed (the DSL recipe's grader).

Either a command, run once per answer with the answer on stdin (exit status 0 passes; stderr explains a
failure), or a Python callable named `module:function` that takes the answer text and returns a truthy value
or raises on a parse error. A parser that cannot start is an infra error; one that times out fails the answer
(the output made it hang).
"""

from __future__ import annotations

import importlib
import subprocess
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar

from providers.base import Completion
from tasks.evaluation.graders.base import GraderResult, Kind, scored
from tasks.evaluation.graders.jsonish import FENCE
from tasks.evaluation.items import EvalItem

_MAX_MESSAGE = 160


def load_callable(target: str) -> Callable[[str], Any]:
    """The function named `module:function`; ValueError saying what is wrong."""
    module_name, _, attribute = target.partition(":")
    if not module_name or not attribute:
        raise ValueError(f"expected 'module:function', got {target!r}")
    try:
        function = getattr(importlib.import_module(module_name), attribute)
    except (ImportError, AttributeError) as exc:
        raise ValueError(f"cannot load {target!r}: {exc}") from None
    if not callable(function):
        # pydantic reports ValueError as a config error
        raise ValueError(f"{target!r} is not callable")  # noqa: TRY004
    return function


@dataclass(frozen=True)
class SyntaxCheck:
    command: tuple[str, ...] | None = None
    function: str | None = None
    timeout_s: float = 10.0
    fenced: bool = False
    name: str = field(default="syntax_check", init=False)
    version: str = field(default="1", init=False)
    kind: ClassVar[Kind] = "binary"
    operational: ClassVar[bool] = False

    def grade(self, item: EvalItem, answer: Completion) -> GraderResult:
        text = answer.text.strip()
        if self.fenced:
            found = FENCE.match(text)
            text = found.group(1) if found else text
        if self.function is not None:
            return self._call(text)
        return self._run(text)

    def _call(self, text: str) -> GraderResult:
        try:
            parse = load_callable(self.function)
        except ValueError as exc:  # loadable at config time, gone now: not the answer's fault
            return GraderResult.failed(self, str(exc))
        try:
            ok = parse(text)
        except Exception as exc:  # noqa: BLE001 -- any exception a user's parser raises is its verdict
            return scored(self, False, error=f"{type(exc).__name__}: {exc}"[:_MAX_MESSAGE])
        return scored(self, bool(ok))

    def _run(self, text: str) -> GraderResult:
        try:
            done = subprocess.run(list(self.command), input=text, capture_output=True, text=True,
                                  timeout=self.timeout_s, check=False)
        except subprocess.TimeoutExpired:
            return scored(self, False, error=f"parser timed out after {self.timeout_s:g} s")
        except OSError as exc:
            return GraderResult.failed(self, f"cannot run {self.command[0]!r}: {exc}")
        if done.returncode == 0:
            return scored(self, True)
        why = (done.stderr or done.stdout).strip().splitlines()
        return scored(self, False, exit_status=done.returncode, error=(why[0] if why else "")[:_MAX_MESSAGE])
