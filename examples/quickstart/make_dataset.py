"""Generate the quickstart dataset: planning requests answered with exactly five verb-led bullets.

Each example pairs an everyday goal with a context ("start running" + "with a bad back"), asks for it in
one of several phrasings, and answers with four of the goal's steps (kept in order) plus one tip for the
context. A goal+context pair appears at most once, so no two requests are near-duplicates. The goals,
contexts, tips and phrasings live in phrases.yaml beside this script. Deterministic, and needs only the
standard library and PyYAML: the defaults reproduce data/bullets.jsonl byte for byte.

    python examples/quickstart/make_dataset.py [--out PATH] [--count N] [--seed S]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import tempfile
from dataclasses import dataclass
from pathlib import Path

import yaml

SYSTEM_PROMPT = "You are a concise planning assistant."
HERE = Path(__file__).parent
PHRASES = HERE / "phrases.yaml"
DEFAULT_OUT = HERE / "data" / "bullets.jsonl"
DEFAULT_COUNT = 640
DEFAULT_SEED = 20240601
STEPS_PER_ANSWER = 4


@dataclass(frozen=True)
class Goal:
    text: str
    kind: str
    steps: tuple[str, ...]
    avoid: frozenset[str] = frozenset()


@dataclass(frozen=True)
class Context:
    text: str
    kinds: frozenset[str]
    tips: tuple[str, ...]
    tip_first: bool


@dataclass(frozen=True)
class PhraseBank:
    phrasings: tuple[str, ...]
    contexts: tuple[Context, ...]
    goals: tuple[Goal, ...]


def load_phrases(path: Path = PHRASES) -> PhraseBank:
    """Read the phrase bank, keeping every list in file order (the seeded draw depends on it)."""
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    contexts = tuple(
        Context(c["context"], frozenset(c["fits"]), tuple(c["tips"]), bool(c["tip_first"]))
        for c in data["contexts"]
    )
    goals = tuple(
        Goal(g["goal"], g["kind"], tuple(g["steps"]), frozenset(g.get("avoid", ()))) for g in data["goals"]
    )
    return PhraseBank(tuple(data["phrasings"]), contexts, goals)


def compatible_pairs(bank: PhraseBank) -> list[tuple[Goal, Context]]:
    """Every goal+context request that makes sense, in a fixed order."""
    known = {c.text for c in bank.contexts}
    for g in bank.goals:
        if g.avoid - known:
            raise ValueError(f"goal {g.text!r} avoids unknown contexts: {sorted(g.avoid - known)}")
    return [(g, c) for g in bank.goals for c in bank.contexts if g.kind in c.kinds and c.text not in g.avoid]


def make_examples(count: int, seed: int, bank: PhraseBank | None = None) -> list[dict]:
    """`count` chat examples; the first N are the same for any count >= N with the same seed."""
    bank = load_phrases() if bank is None else bank
    rng = random.Random(seed)
    pairs = compatible_pairs(bank)
    if not 0 < count <= len(pairs):
        raise ValueError(f"count must be between 1 and {len(pairs)} (one per goal+context pair), got {count}")
    rng.shuffle(pairs)
    used: dict[str, set[tuple[int, ...]]] = {g.text: set() for g in bank.goals}
    return [_example(g, c, bank.phrasings, rng, used[g.text]) for g, c in pairs[:count]]


def _example(
    g: Goal, c: Context, phrasings: tuple[str, ...], rng: random.Random, used: set[tuple[int, ...]]
) -> dict:
    user = rng.choice(phrasings).format(request=f"{g.text} {c.text}")
    steps = [g.steps[i] for i in _fresh_steps(len(g.steps), rng, used)]
    tip = rng.choice(c.tips)
    bullets = [tip, *steps] if c.tip_first else [*steps, tip]
    return {
        "messages": [
            {"role": "system", "content": SYSTEM_PROMPT},
            {"role": "user", "content": user},
            {"role": "assistant", "content": "\n".join(f"- {b}" for b in bullets)},
        ]
    }


def _fresh_steps(available: int, rng: random.Random, used: set[tuple[int, ...]]) -> tuple[int, ...]:
    # Two answers to the same goal with the same steps would look like near-duplicates to data prep.
    while True:
        picks = tuple(sorted(rng.sample(range(available), STEPS_PER_ANSWER)))
        if picks not in used or len(used) >= math.comb(available, STEPS_PER_ANSWER):
            used.add(picks)
            return picks


def write_jsonl(examples: list[dict], out: Path) -> None:
    """Write one JSON object per line, atomically: readers see the old file or the new one, never half."""
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=out.parent, prefix=f".{out.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as f:
            for example in examples:
                f.write(json.dumps(example, ensure_ascii=False) + "\n")
        os.chmod(tmp, 0o644)
        os.replace(tmp, out)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="where to write the JSONL file")
    parser.add_argument("--count", type=int, default=DEFAULT_COUNT, help="number of examples")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED, help="random seed")
    args = parser.parse_args(argv)
    try:
        examples = make_examples(args.count, args.seed)
    except ValueError as exc:
        parser.error(str(exc))
    write_jsonl(examples, args.out)
    print(f"wrote {len(examples)} examples to {args.out}")


if __name__ == "__main__":
    main()
