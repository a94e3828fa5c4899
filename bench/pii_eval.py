"""Precision and recall of PII detection on the labelled set in bench/pii_eval/ (see its README).

A finding counts as correct when a labelled one of the same type overlaps it; each labelled one is
matched once. Prints the scores per type and overall for the dev part, the held-out part and both, and
the detector's speed over the set. Target: precision and recall >= 0.95 overall.

    .venv/bin/python bench/pii_eval.py            # the default configuration (data.pii)
    .venv/bin/python bench/pii_eval.py --misses   # and every miss and false alarm of the dev part
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

CORPUS = Path(__file__).with_name("pii_eval") / "corpus.jsonl"


def score(records: list[dict], scanner, misses: list[str] | None = None) -> dict[str, Counter]:
    """tp/fp/fn per type over `records`."""
    tally: dict[str, Counter] = {}
    for record in records:
        text = record["text"]
        wanted = [(p["type"], p["start"], p["start"] + len(p["value"])) for p in record["pii"]]
        found = [(m.type, m.start, m.end, m.rule) for m in scanner.find(text)]
        unmatched = list(wanted)
        for kind, start, end, rule in found:
            hit = next((w for w in unmatched if w[0] == kind and w[1] < end and start < w[2]), None)
            tally.setdefault(kind, Counter())["tp" if hit else "fp"] += 1
            if hit:
                unmatched.remove(hit)
            elif misses is not None:
                misses.append(f"false alarm {kind} ({rule}) {text[start:end]!r} in: {text}")
        for kind, start, end in unmatched:
            tally.setdefault(kind, Counter())["fn"] += 1
            if misses is not None:
                misses.append(f"missed {kind} {text[start:end]!r} in: {text}")
    return tally


def _ratio(a: int, b: int) -> float:
    return a / b if b else 1.0


def show(name: str, tally: dict[str, Counter]) -> None:
    total = sum(tally.values(), Counter())
    print(f"\n{name}: precision {_ratio(total['tp'], total['tp'] + total['fp']):.3f}  "
          f"recall {_ratio(total['tp'], total['tp'] + total['fn']):.3f}  "
          f"({total['tp']} found, {total['fp']} false alarms, {total['fn']} missed)")
    print(f"  {'type':16s} {'precision':>9s} {'recall':>7s} {'tp':>4s} {'fp':>4s} {'fn':>4s}")
    for kind in sorted(tally):
        c = tally[kind]
        precision, recall = _ratio(c["tp"], c["tp"] + c["fp"]), _ratio(c["tp"], c["tp"] + c["fn"])
        print(f"  {kind:16s} {precision:9.3f} {recall:7.3f} {c['tp']:4d} {c['fp']:4d} {c['fn']:4d}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--misses", action="store_true", help="list the dev part's misses and false alarms")
    args = parser.parse_args()
    from tasks.data.config import PiiConfig
    from tasks.data.pii import PiiScanner

    config = PiiConfig()
    scanner = PiiScanner(config.types, config.phone_regions)
    records = [json.loads(line) for line in CORPUS.read_text(encoding="utf-8").splitlines()]
    parts = {name: [r for r in records if r["set"] == name] for name in ("dev", "heldout")}
    misses: list[str] = []
    print(f"{len(records)} lines ({len(parts['dev'])} dev, {len(parts['heldout'])} held out), "
          f"{len({r['lang'] for r in records})} languages; phone regions: {', '.join(config.phone_regions)}")
    show("dev", score(parts["dev"], scanner, misses if args.misses else None))
    show("held out", score(parts["heldout"], scanner))
    show("all", score(records, scanner))
    start, rounds = time.perf_counter(), 20
    for _ in range(rounds):
        for record in records:
            scanner.find(record["text"])
    chars = rounds * sum(len(r["text"]) for r in records)
    print(f"\nspeed: {rounds * len(records) / (time.perf_counter() - start):,.0f} lines/s "
          f"({chars / (time.perf_counter() - start) / 1e6:.1f} M characters/s) on lines that mostly hold PII")
    for line in misses:
        print(line)


if __name__ == "__main__":
    main()
