"""`loraflow data generate`: a teacher model answers a file of inputs; the answers become chat training data.

The estimate prints before any call; a re-run with the same inputs, teacher and decoding answers only what
is missing (the cache beside the output). The result is checked like any dataset (`loraflow data check`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from cli.console import console, errors, fail
from providers.errors import LoraflowError


def generate(
    inputs: Annotated[Path, typer.Argument(help="JSONL of inputs: {'prompt': ...} or {'messages': [...]}")],
    out: Annotated[Path, typer.Option(help="the chat JSONL to write")],
    teacher_provider: Annotated[str, typer.Option(help="any chat model provider (openai, anthropic, ...)")],
    teacher_model: Annotated[str, typer.Option(help="a pinned snapshot of the teacher")],
    endpoint: Annotated[str | None, typer.Option(help="'emulator' for an offline rehearsal, or a URL")]
    = None,
    api_key_secret: Annotated[str | None, typer.Option(help="a Prefect Secret block with the key")] = None,
    system: Annotated[str | None, typer.Option(help="a system prompt put before inputs that have none")]
    = None,
    max_tokens: Annotated[int, typer.Option(help="longest answer; a longer one is not kept")] = 1024,
    temperature: Annotated[float, typer.Option()] = 0.0,
    concurrency: Annotated[int, typer.Option(min=1, max=64)] = 4,
    requests_per_minute: Annotated[float | None, typer.Option(help="client-side limit")] = None,
    max_usd: Annotated[float | None, typer.Option(help="refuse to start above this estimate")] = None,
    check: Annotated[bool, typer.Option(help="check the result like `loraflow data check`")] = True,
) -> None:
    """Run a teacher model over a file of inputs to produce training examples (resumable, cached, costed)."""
    from cli.rehearsal import emulator_for
    from providers.base import Decoding
    from tasks.connection import open_chat_model
    from tasks.data.generate import Teacher, read_inputs
    from tasks.data.generate import generate as run_generation

    if not inputs.is_file():
        raise fail(f"{inputs}: no such file")
    target = f"{teacher_provider}@{endpoint}" if endpoint else teacher_provider
    teacher = Teacher(teacher_provider, teacher_model, target, Decoding(temperature=temperature,
                                                                       max_tokens=max_tokens), system)
    try:
        console.print(f"{len(read_inputs(inputs, teacher))} inputs; teacher {teacher_model} at {target}")
        with emulator_for(endpoint):
            model = open_chat_model(teacher_provider, {}, endpoint, api_key_secret, where="--api-key-secret",
                                    endpoint_where="--endpoint")
            result = run_generation(inputs, out, teacher, model, concurrency=concurrency,
                                    requests_per_minute=requests_per_minute, max_usd=max_usd)
    except LoraflowError as exc:
        raise fail(exc) from None
    estimate = "unknown" if result.estimate.usd is None else f"${result.estimate.usd:,.4f}"
    actual = "unknown" if result.actual_usd is None else f"${result.actual_usd:,.4f}"
    console.print(f"{result.generated} answered, {result.cached} from the cache, {len(result.failed)} "
                  f"failed; {result.calls} calls; estimated {estimate} ({result.estimate.basis}), "
                  f"paid {actual}")
    for line in result.failed[:10]:
        errors.print(f"  {line}", highlight=False, soft_wrap=True)
    console.print(f"wrote {out}")
    found_errors = _check(out, teacher_provider) if check else 0
    if result.failed or found_errors:
        raise typer.Exit(1)


def _check(out: Path, provider: str) -> int:
    """The number of errors its check finds in the generated file (a non-zero exit, like data check)."""
    # checked against the teacher's own training format, or the default one for a chat-only provider
    from providers import PROVIDERS
    from tasks.data.config import DataConfig
    from tasks.data.stage import UNSPECIFIED, check_file
    from tasks.data.target import DataTarget

    target = DataTarget(provider, "") if provider in PROVIDERS else UNSPECIFIED
    report = check_file(DataConfig(path=out), target)
    diagnostics = report["diagnostics"]
    console.print(f"check: {diagnostics['errors']} errors, {diagnostics['warnings']} warnings "
                  f"(full report: loraflow data check {out})")
    return int(diagnostics["errors"])

