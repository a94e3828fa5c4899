"""Evaluation throughput against a rate-limited, slow endpoint: loraflow's runner versus a sequential loop.

500 items x 2 models against the loopback emulator serving chat completions with 200 ms latency under a
600 requests/minute limit (a token bucket that answers 429 with Retry-After). The runner (a thread pool
behind a client-side token bucket that honours Retry-After, no answer cache) should reach at least 90 % of
the limit-bound throughput with no failed item; the sequential loop is bound by the latency instead.

    .venv/bin/python bench/eval_throughput.py                      # the issue's figures (about 5 minutes)
    .venv/bin/python bench/eval_throughput.py --items 100 --no-sequential
    .venv/bin/python bench/eval_throughput.py --unlimited-client   # also: no client limiter, Retry-After only
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from emulator import EmulatorServer
from providers.base import Decoding, ModelRef
from providers.errors import TransientProviderError
from providers.openai.adapter import OpenAIProvider
from tasks.evaluation.calls import ModelCaller
from tasks.evaluation.config import GraderConfig, SuiteConfig
from tasks.evaluation.ratelimit import TokenBucket
from tasks.evaluation.runner import ROLES, run_suites
from tasks.evaluation.suites import build_suite

QUICKSTART = Path(__file__).resolve().parent.parent / "examples" / "quickstart" / "data" / "bullets.jsonl"
MODELS = {"base": ModelRef(provider="openai", model_id="gpt-4o-mini-2024-07-18",
                           base_model="gpt-4o-mini-2024-07-18"),
          "candidate": ModelRef(provider="openai", model_id="gpt-4o-2024-08-06",
                                base_model="gpt-4o-2024-08-06")}
DECODING = Decoding(temperature=0, max_tokens=128)


def items_file(folder: Path, count: int) -> Path:
    lines = QUICKSTART.read_text(encoding="utf-8").splitlines()
    path = folder / "items.jsonl"
    path.write_text("".join(lines[i % len(lines)] + "\n" for i in range(count)), encoding="utf-8")
    return path


def runner(server: EmulatorServer, suite, rpm: int, concurrency: int, limited: bool) -> dict:
    provider = OpenAIProvider.from_options({"max_retries": 0}, base_url=server.base_url, api_key="bench")
    limiter = TokenBucket.per_minute(rpm) if limited else None
    caller = ModelCaller(provider, "openai@bench", limiter=limiter)
    server.state.reset_counters()
    started = time.perf_counter()
    results = run_suites(caller, MODELS, [suite], DECODING, concurrency=concurrency)
    seconds = time.perf_counter() - started
    return {"requests": len(results), "seconds": seconds, "failed": sum(r.error is not None for r in results),
            "throttled": caller.retries, "calls": caller.calls}


def sequential(server: EmulatorServer, suite) -> dict:
    """What a plain loop does: one call after another, sleeping out any Retry-After."""
    provider = OpenAIProvider.from_options({"max_retries": 0}, base_url=server.base_url, api_key="bench")
    failed = throttled = done = 0
    started = time.perf_counter()
    for item in suite.items:
        for role in ROLES:
            for _ in range(5):
                try:
                    provider.infer(MODELS[role], item.messages, DECODING)
                    break
                except TransientProviderError as exc:
                    throttled += 1
                    time.sleep(exc.retry_after or 1.0)
            else:
                failed += 1
            done += 1
    return {"requests": done, "seconds": time.perf_counter() - started, "failed": failed,
            "throttled": throttled, "calls": done + throttled}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--items", type=int, default=500)
    parser.add_argument("--latency", type=float, default=0.2, help="serving latency in seconds")
    parser.add_argument("--rpm", type=int, default=600, help="the endpoint's requests-per-minute limit")
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--no-sequential", action="store_true", help="skip the sequential loop")
    parser.add_argument("--unlimited-client", action="store_true",
                        help="also run the pool without the client limiter (429s and Retry-After only)")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as folder, \
            EmulatorServer(latency_s=args.latency, requests_per_minute=args.rpm) as server:
        suite = build_suite(SuiteConfig(name="bench", items=str(items_file(Path(folder), args.items)),
                                        graders=[GraderConfig(name="five_verb_bullets")]))
        rate = args.rpm / 60
        burst = max(1.0, rate)  # the emulator's bucket starts full with one second's worth
        requests = 2 * args.items
        ceiling = requests / ((requests - burst) / rate + args.latency)
        rows = {"runner": runner(server, suite, args.rpm, args.concurrency, limited=True)}
        if args.unlimited_client:
            rows["runner, no client limiter"] = runner(server, suite, args.rpm, args.concurrency,
                                                       limited=False)
        if not args.no_sequential:
            rows["sequential loop"] = sequential(server, suite)

    print(f"{args.items} items x 2 models = {requests} requests; {args.latency * 1000:.0f} ms latency, "
          f"{args.rpm} requests/minute; limit-bound ceiling {ceiling:.2f} req/s; "
          f"concurrency {args.concurrency}")
    print(f"{'mode':<28}{'seconds':>9}{'req/s':>8}{'of ceiling':>12}{'failed':>8}{'429s':>6}{'calls':>7}")
    for name, row in rows.items():
        throughput = row["requests"] / row["seconds"]
        print(f"{name:<28}{row['seconds']:>9.1f}{throughput:>8.2f}{throughput / ceiling:>11.1%}"
              f"{row['failed']:>8}{row['throttled']:>6}{row['calls']:>7}")
    print(json.dumps({"ceiling_rps": ceiling,
                      **{k: {**v, "rps": v["requests"] / v["seconds"]} for k, v in rows.items()}}))


if __name__ == "__main__":
    main()
