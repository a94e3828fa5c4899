"""Benchmark of the data step: N synthetic chat examples with duplicates and PII mixed in.

The text is real English (sentences of the standard library's docstrings, recombined), so tokenising
costs what it costs on real data.

Prints, measured in the same run and interleaved (floor, prepare, floor, prepare, ...; the best of each):
- the floor: the ten-line check a user would write (OpenAI cookbook style): json-parse each line, check
  the roles, count o200k tokens per message with tiktoken, in one process;
- the whole prepare step (validate, PII, dedupe, tokens, split, written files) on every core.
Each phase runs in its own process; its memory is sampled every 20 ms over the process and its workers
(the summed proportional set size: a page shared by forked workers counts once in all), and the peak
resident set of the largest single process is printed too. Targets: prepare no slower than the floor;
under 500 MB at 1,000,000 examples.

`--long-line` measures instead the check of a file with one line of that many MB (issue 21: under 300 MB).

    .venv/bin/python bench/data_prep.py                      # 100,000 examples
    .venv/bin/python bench/data_prep.py -n 1000000 --repeat 1
    .venv/bin/python bench/data_prep.py --long-line 30
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import subprocess
import sys
import tempfile
import threading
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
    """The cookbook's check: parse, check roles, count tokens per message (num_tokens_from_messages)."""
    from tasks.data.tokens import token_counter

    token_counter(PROVIDER, MODEL, "o200k_base").encode_length("")  # seeds tiktoken's offline cache
    import tiktoken

    encoding = tiktoken.get_encoding("o200k_base")
    start, tokens, bad = time.perf_counter(), 0, 0
    with path.open("rb") as handle:
        for raw in handle:
            messages = json.loads(raw)["messages"]
            bad += any(m.get("role") not in ("system", "user", "assistant", "tool") for m in messages)
            tokens += 3
            for message in messages:
                tokens += 3
                for key, value in message.items():
                    tokens += len(encoding.encode(value)) + (key == "name")
    return {"seconds": time.perf_counter() - start, "tokens": tokens, "bad": bad}


def prepare(path: Path) -> dict:
    from tasks.data.config import DataConfig
    from tasks.data.stage import prepare as prepare_data
    from tasks.data.target import DataTarget
    from tasks.data.tokens import token_counter
    from tasks.rundir import RunDir

    token_counter(PROVIDER, MODEL, "o200k_base").encode_length("")  # loading it is not part of the step
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


def check_long(path: Path) -> dict:
    from tasks.data.config import DataConfig
    from tasks.data.stage import check_file
    from tasks.data.target import DataTarget

    start = time.perf_counter()
    report = check_file(DataConfig(path=path), DataTarget(PROVIDER, MODEL, EPOCHS))
    first = report["diagnostics"]["kept"][0]
    return {"seconds": time.perf_counter() - start, "first": f"line {first['line']}: {first['code']} "
                                                              f"{first['message']}"}


def write_long(path: Path, megabytes: int) -> None:
    """One line of `megabytes` MB (English prose in one assistant message), then ten ordinary lines."""
    pool, rng = sentences(), random.Random(3)
    with path.open("w", encoding="utf-8") as out:
        out.write('{"messages": [{"role": "user", "content": "Summarise."}, '
                  '{"role": "assistant", "content": "')
        written = 0
        while written < megabytes * 1_000_000:
            chunk = " ".join(rng.choices(pool, k=200)).replace("\\", " ").replace('"', "'") + " "
            out.write(chunk)
            written += len(chunk.encode())
        out.write('"}]}\n')
        for index in range(10):
            out.write(json.dumps({"messages": [{"role": "user", "content": f"q{index}"},
                                               {"role": "assistant", "content": pool[index]}]}) + "\n")


def _tree_memory(pid: int) -> tuple[int, int]:
    """(summed proportional set size, largest resident set size) in bytes over `pid` and its descendants
    (Linux /proc). PSS divides each shared page among the processes that map it, so forked workers that
    share the parent's tokenizer are not counted twice."""
    pss, rss, stack = 0, 0, [pid]
    while stack:
        current = stack.pop()
        try:
            rollup = Path(f"/proc/{current}/smaps_rollup").read_text()
            status = Path(f"/proc/{current}/status").read_text()
            children = Path(f"/proc/{current}/task/{current}/children").read_text().split()
        except OSError:
            continue
        pss += sum(int(line.split()[1]) * 1024 for line in rollup.splitlines() if line.startswith("Pss:"))
        rss = max([rss] + [int(line.split()[1]) * 1024 for line in status.splitlines()
                           if line.startswith("VmRSS:")])
        stack += [int(child) for child in children]
    return pss, rss


def _child(phase: str, path: Path) -> dict:
    process = subprocess.Popen([sys.executable, __file__, "--phase", phase, "--file", str(path)],
                               stdout=subprocess.PIPE, text=True)
    peak = [0, 0]

    def sample() -> None:
        while process.poll() is None:
            summed, largest = _tree_memory(process.pid)
            peak[0], peak[1] = max(peak[0], summed), max(peak[1], largest)
            time.sleep(0.02)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    output, _ = process.communicate()
    sampler.join()
    if process.returncode:
        raise SystemExit(f"phase {phase} failed with exit code {process.returncode}")
    result = json.loads(output.splitlines()[-1])
    result["tree_mb"], result["largest_mb"] = peak[0] / 1e6, max(peak[1] / 1e6, result.pop("self_mb"))
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", "--examples", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=2,
                        help="alternate floor and prepare this many times; "
                             "the best of each is reported (shared machines)")
    parser.add_argument("--long-line", type=int, metavar="MB", help="measure a file with one line of MB")
    parser.add_argument("--phase", choices=["floor", "prepare", "long"])
    parser.add_argument("--file", type=Path)
    args = parser.parse_args()
    if args.phase:
        result = {"floor": floor, "prepare": prepare, "long": check_long}[args.phase](args.file)
        result["self_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 1e6
        used = [resource.getrusage(who) for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)]
        result["cpu"] = sum(usage.ru_utime + usage.ru_stime for usage in used)
        print(json.dumps(result))
        return
    with tempfile.TemporaryDirectory() as scratch:
        if args.long_line:
            long_path = Path(scratch) / "long.jsonl"
            write_long(long_path, args.long_line)
            result = _child("long", long_path)
            print(f"one line of {args.long_line} MB: check {result['seconds']:.1f} s, peak "
                  f"{result['tree_mb']:,.0f} MB over all processes (PSS), {result['largest_mb']:,.0f} MB "
                  f"the largest process (RSS) (target < 300 MB)\n  {result['first']}")
            return
        path = Path(scratch) / "synthetic.jsonl"
        generate(path, args.examples)
        size_mb = path.stat().st_size / 1e6
        runs = [(_child("floor", path), _child("prepare", path)) for _ in range(args.repeat)]
    base = min((floor_run for floor_run, _ in runs), key=lambda r: r["seconds"])
    step = min((prepare_run for _, prepare_run in runs), key=lambda r: r["seconds"])
    for key in ("tree_mb", "largest_mb"):
        step[key] = max(prepare_run[key] for _, prepare_run in runs)
    n = args.examples
    print(f"examples             {n:,} ({size_mb:,.0f} MB), best of {args.repeat}, {os.cpu_count()} cores")
    print(f"floor (parse+tokens) {base['seconds']:.2f} s  {n / base['seconds']:,.0f} examples/s  "
          f"CPU {base['cpu']:.1f} s  peak {base['tree_mb']:,.0f} MB")
    print(f"prepare              {step['seconds']:.2f} s  {n / step['seconds']:,.0f} examples/s  "
          f"CPU {step['cpu']:.1f} s  peak {step['tree_mb']:,.0f} MB over all processes (PSS), "
          f"{step['largest_mb']:,.0f} MB the largest process (RSS)")
    print(f"prepare / floor      {step['seconds'] / base['seconds']:.2f}x (target <= 1x); CPU time "
          f"{step['cpu'] / base['cpu']:.2f}x (on a busy machine the CPU ratio over the cores is the steadier "
          "figure)")
    print(f"outcome              train {step['train']:,}, eval {step['eval']:,}, removed {step['removed']}, "
          f"near clusters {step['near_clusters']:,}, PII {step['pii']}")


if __name__ == "__main__":
    main()
