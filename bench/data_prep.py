"""Benchmark of the data step: N synthetic chat examples with duplicates and PII mixed in.

The text is real English (sentences of the standard library's docstrings, recombined), so tokenising
costs what it costs on real data.

Prints examples/s and peak RSS of the whole prepare step, and, measured in the same run, the floor:
one pass that only parses each line and counts its tokens with the same tokenizer. Each phase runs in
its own process so that its peak RSS is its own. Targets: prepare within 2x the floor; peak memory
that does not grow with N (1,000,000 examples under 500 MB).

    .venv/bin/python bench/data_prep.py                 # 100,000 examples
    .venv/bin/python bench/data_prep.py -n 1000000 --repeat 1
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

PROVIDER, MODEL, EPOCHS = "openai", "gpt-4o-mini-2024-07-18", 3
SYSTEMS = ["You are a concise planning assistant.", "You are a helpful support agent for a software company.",
           "Answer as a friendly tutor.", "You write short, precise technical answers."]
PII = ["write to {n}.doe@example.com", "call me on (415) 555-01{d:02d}", "card 4111 1111 1111 1111",
       "my IBAN is DE89 3704 0044 0532 0130 00", "key sk-proj-Ab3dE5fG7hJ9kL1mN3pQ5rS7tU9vW1xY{d:02d}"]
# real English, available offline everywhere: the standard library's own documentation
_MODULES = ("argparse", "asyncio", "calendar", "collections", "csv", "datetime", "decimal", "email",
            "fractions", "functools", "http.client", "itertools", "json", "logging", "pathlib", "shutil",
            "statistics", "string", "subprocess", "tarfile", "textwrap", "threading", "unittest",
            "urllib.parse", "zipfile")


def sentences() -> list[str]:
    import importlib
    import inspect
    import re

    found = set()
    for name in _MODULES:
        module = importlib.import_module(name)
        for value in [module, *vars(module).values()]:
            doc = inspect.getdoc(value) if callable(value) or inspect.ismodule(value) else None
            for sentence in re.split(r"(?<=[.!?])\s+", " ".join((doc or "").split())):
                if 40 <= len(sentence) <= 240 and sentence[0].isupper() and sentence[-1] in ".!?":
                    found.add(sentence)
    return sorted(found)


def generate(path: Path, count: int, seed: int = 7) -> None:
    """~3% exact duplicates (case and spaces changed), ~2% near-duplicates, ~1% with PII."""
    rng, pool = random.Random(seed), sentences()
    recent: list[list[str]] = []
    with path.open("w", encoding="utf-8") as out:
        for index in range(count):
            roll = rng.random()
            if roll < 0.03 and recent:
                system, user, answer = rng.choice(recent)
                user = "  " + user.upper()
            elif roll < 0.05 and recent:
                system, user, answer = rng.choice(recent)
                words = answer.split()
                words[rng.randrange(len(words))] = rng.choice(words)
                answer = " ".join(words)
            else:
                system = rng.choice(SYSTEMS)
                user = " ".join(rng.choices(pool, k=rng.randint(1, 2)))
                answer = "\n".join("- " + sentence for sentence in rng.choices(pool, k=rng.randint(3, 6)))
                if roll > 0.99:
                    user += " " + rng.choice(PII).format(n=f"user{index}", d=index % 100)
                recent = (recent + [[system, user, answer]])[-1000:]
            messages = [{"role": "system", "content": system}, {"role": "user", "content": user},
                        {"role": "assistant", "content": answer}]
            out.write(json.dumps({"messages": messages}) + "\n")


def floor(path: Path) -> dict:
    from tasks.data.tokens import token_counter

    counter = token_counter(PROVIDER, MODEL, "o200k_base")
    start, tokens = time.perf_counter(), 0
    with path.open("rb") as handle:
        for raw in handle:
            tokens += counter.example_tokens(json.loads(raw))
    return {"seconds": time.perf_counter() - start, "tokens": tokens}


def prepare(path: Path) -> dict:
    from tasks.data.config import DataConfig
    from tasks.data.stage import prepare as prepare_data
    from tasks.data.target import DataTarget
    from tasks.data.tokens import token_counter
    from tasks.rundir import RunDir

    token_counter(PROVIDER, MODEL, "o200k_base")  # loading the encoding is not part of the step
    with tempfile.TemporaryDirectory() as runs:
        run = RunDir.create(Path(runs), "bench", "0" * 64)
        start = time.perf_counter()
        dataset = prepare_data(DataConfig(path=path, min_train_examples=1), run,
                               DataTarget(PROVIDER, MODEL, EPOCHS))
        seconds = time.perf_counter() - start
        report = json.loads((run.root / "report.json").read_text())
    return {"seconds": seconds, "train": dataset.train_examples, "eval": dataset.eval_examples,
            "removed": report["counts"]["removed"], "pii": report["pii"]["counts"],
            "near_clusters": report["duplicates"]["near"]["clusters"]}


def _child(phase: str, path: Path) -> dict:
    result = subprocess.run([sys.executable, __file__, "--phase", phase, "--file", str(path)], check=True,
                            capture_output=True, text=True)
    return json.loads(result.stdout.splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", "--examples", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=2,
                        help="alternate floor and prepare this many times; "
                             "the best of each is reported (shared machines)")
    parser.add_argument("--phase", choices=["floor", "prepare"])
    parser.add_argument("--file", type=Path)
    args = parser.parse_args()
    if args.phase:
        result = (floor if args.phase == "floor" else prepare)(args.file)
        result["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(json.dumps(result))
        return
    with tempfile.TemporaryDirectory() as scratch:
        path = Path(scratch) / "synthetic.jsonl"
        generate(path, args.examples)
        size_mb = path.stat().st_size / 1e6
        runs = [(_child("floor", path), _child("prepare", path)) for _ in range(args.repeat)]
        base = min((floor_run for floor_run, _ in runs), key=lambda r: r["seconds"])
        step = min((prepare_run for _, prepare_run in runs), key=lambda r: r["seconds"])
        step["peak_rss_mb"] = max(prepare_run["peak_rss_mb"] for _, prepare_run in runs)
    n = args.examples
    print(f"examples             {n:,} ({size_mb:,.0f} MB), best of {args.repeat}")
    print(f"floor (parse+tokens) {base['seconds']:.2f} s  {n / base['seconds']:,.0f} examples/s  "
          f"peak RSS {base['peak_rss_mb']:,.0f} MB")
    print(f"prepare              {step['seconds']:.2f} s  {n / step['seconds']:,.0f} examples/s  "
          f"peak RSS {step['peak_rss_mb']:,.0f} MB")
    print(f"prepare / floor      {step['seconds'] / base['seconds']:.2f}x (target <= 2x)")
    print(f"outcome              train {step['train']:,}, eval {step['eval']:,}, removed {step['removed']}, "
          f"near clusters {step['near_clusters']:,}, PII {step['pii']}")


if __name__ == "__main__":
    main()
