"""The data report: one JSON document (report.json) and one screen of markdown (report.md, and the
Prefect artifact "data-report"). PII appears as counts and line numbers only, never as text."""

from __future__ import annotations

from typing import Any

import numpy as np

from tasks.data.analysis import Analysis
from tasks.data.split import DROPPED, EVAL, TRAIN
from tasks.data.tokens import distribution

CLUSTERS_SHOWN = 10
LINES_SHOWN = 8


def build_report(analysis: Analysis) -> dict[str, Any]:
    config, target, diagnostics = analysis.config, analysis.target, analysis.diagnostics
    columns, destination = analysis.scan.columns, analysis.destination
    lines = columns.numpy("line")
    tokens = columns.numpy("tokens")
    eval_tokens = (analysis.eval_scan.columns.numpy("tokens")[analysis.eval_file_rows] if analysis.eval_scan
                   else np.empty(0, dtype=np.int64))
    kept_tokens = np.r_[tokens[destination != DROPPED], eval_tokens]
    train_tokens = int(tokens[destination == TRAIN].sum())
    return {
        "input": str(config.path), "input_sha256": analysis.scan.sha256,
        "status": "blocked" if diagnostics.errors else "ready",
        "target": {"provider": target.provider, "model": target.base_model, "format": target.format.name,
                   "tokenizer": analysis.counter.name, "tokenizer_exact": analysis.counter.exact,
                   "context_tokens": target.context_tokens, "epochs": target.epochs},
        "counts": {"lines": analysis.scan.lines, "usable": len(columns),
                   "removed": _removed(analysis), "train": analysis.count(TRAIN),
                   "eval": analysis.eval_examples,
                   "eval_file": str(config.eval_path) if config.eval_path else None},
        "tokens": {"train": train_tokens, "eval": int(kept_tokens.sum()) - train_tokens,
                   "distribution": distribution(kept_tokens),
                   "over_limit": sum(n for (code, _), n in diagnostics.counts.items() if code == "too_long"),
                   "epochs": target.epochs,
                   "billable": train_tokens * target.epochs if target.epochs else None},
        "pii": {"policy": config.pii.policy, "examples": analysis.scan.tally.examples,
                "counts": dict(sorted(analysis.scan.tally.counts.items())),
                "rules": dict(sorted(analysis.scan.tally.rules.items())),
                "lines": dict(sorted(analysis.scan.tally.lines.items()))},
        "duplicates": {"threshold": config.dedupe.threshold, "exact": _clusters(analysis.exact_groups, lines),
                       "near": _clusters(analysis.near_groups, lines)},
        "leakage": _leakage(analysis, lines),
        "split": _split(analysis),
        "diversity": analysis.diversity,
        "checks": [{"code": f.code, "severity": str(f.severity), "message": f.message}
                   for f in analysis.findings],
        "diagnostics": {"errors": diagnostics.errors, "warnings": diagnostics.count("warning"),
                        "by_code": diagnostics.summary(),
                        "kept": [d.as_json() for d in diagnostics.kept if d.line is not None]},
    }


def _removed(analysis: Analysis) -> dict[str, int]:
    policy = analysis.config.dedupe
    leaked = {train for train, _ in analysis.leaks}
    return {"exact_duplicates": (sum(g.size - 1 for g in analysis.exact_groups)
                                 if policy.exact == "remove" else 0),
            "near_duplicates": (sum(g.size - 1 for g in analysis.near_groups)
                                if policy.near == "remove" else 0),
            "leaked": len(leaked) if policy.leakage == "remove" else 0}


def _clusters(groups: list[np.ndarray], lines: np.ndarray) -> dict[str, Any]:
    largest = sorted(groups, key=lambda g: (-g.size, int(g[0])))[:CLUSTERS_SHOWN]
    return {"clusters": len(groups), "examples": int(sum(g.size for g in groups)),
            "largest": [{"size": int(g.size), "lines": lines[g[:LINES_SHOWN]].tolist()} for g in largest]}


def _leakage(analysis: Analysis, lines: np.ndarray) -> dict[str, Any]:
    rows = len(lines)
    eval_lines = (analysis.eval_scan.columns.numpy("line") if analysis.eval_scan
                  else np.empty(0, dtype=np.int64))
    shown = [{"train_line": int(lines[train]),
              "eval_line": int(lines[other]) if other < rows else int(eval_lines[other - rows]),
              "in_eval_file": bool(other >= rows)} for train, other in analysis.leaks[:CLUSTERS_SHOWN]]
    return {"policy": analysis.config.dedupe.leakage, "pairs": len(analysis.leaks),
            "train_examples": len({train for train, _ in analysis.leaks}), "shown": shown}


def _split(analysis: Analysis) -> dict[str, Any]:
    config = analysis.config
    split: dict[str, Any] = {"salt": config.split_salt, "eval_fraction": config.eval_fraction,
                             "stratify_by": config.stratify_by, "eval_file": str(config.eval_path)
                             if config.eval_path else None}
    if config.stratify_by:
        strata = analysis.scan.columns.numpy("stratum")
        split["strata"] = {
            name: {"train": int(np.count_nonzero((strata == index) & (analysis.destination == TRAIN))),
                   "eval": int(np.count_nonzero((strata == index) & (analysis.destination == EVAL)))}
            for name, index in analysis.scan.strata.items()}
    return split


def render_markdown(report: dict[str, Any]) -> str:
    """One screen: status, counts, tokens, PII, duplicates, leakage, checks, then the diagnostics."""
    target, counts, tokens, removed = (report["target"], report["counts"], report["tokens"],
                                       report["counts"]["removed"])
    diagnostics = report["diagnostics"]
    status = (f"**blocked**: {_count(diagnostics['errors'], 'error')}" if report["status"] == "blocked"
              else "**ready**") + f", {_count(diagnostics['warnings'], 'warning')}"
    distribution = tokens["distribution"]
    billable = (f"{tokens['train']:,} train tokens x {tokens['epochs']} epochs = "
                f"**{tokens['billable']:,} billable**"
                if tokens["billable"] is not None
                else f"{tokens['train']:,} train tokens per epoch (epochs: provider's default)")
    lines = [
        f"# Data report: {report['input'].rsplit('/', 1)[-1]}", "",
        (f"{status} · target {target['provider']} `{target['model'] or 'no model given'}` "
         f"({target['format']})"), "",
        "| lines | usable | exact dup. removed | near dup. removed | leaked removed | train | eval |",
        "|---:|---:|---:|---:|---:|---:|---:|",
        (f"| {counts['lines']:,} | {counts['usable']:,} | {removed['exact_duplicates']:,} | "
         f"{removed['near_duplicates']:,} | {removed['leaked']:,} | {counts['train']:,} | "
         f"{counts['eval']:,} |"), "",
        (f"**Tokens** ({target['tokenizer']}{'' if target['tokenizer_exact'] else ', estimated'}): "
         f"min {distribution['min']:,} · median {distribution['median']:,} · p95 {distribution['p95']:,} · "
         f"max {distribution['max']:,} · over the {_limit(target)} limit: {tokens['over_limit']:,}  "),
        f"{billable}; eval {tokens['eval']:,} tokens", "",
        _pii_line(report["pii"]),
        _duplicates_line(report["duplicates"]),
        _leakage_line(report["leakage"]),
        _diversity_line(report["diversity"]), "",
    ]
    lines += [f"- {c['severity']}: {c['message']}" for c in report["checks"]]
    lines += ["", *_diagnostics_table(diagnostics)]
    return "\n".join(lines) + "\n"


def _count(n: int, noun: str) -> str:
    return f"{n:,} {noun}{'' if n == 1 else 's'}"


def _limit(target: dict[str, Any]) -> str:
    return f"{target['context_tokens']:,}" if target["context_tokens"] else "unknown"


def _pii_line(pii: dict[str, Any]) -> str:
    if not pii["counts"]:
        return "**PII**: none found  "
    found = ", ".join(f"{kind} {n} (lines {', '.join(map(str, pii['lines'][kind][:5]))}"
                      f"{', ...' if n > 5 else ''})" for kind, n in pii["counts"].items())
    fired = ", ".join(f"{rule} {n}" for rule, n in pii.get("rules", {}).items())
    return f"**PII** ({pii['policy']}, {_count(pii['examples'], 'example')}): {found}; rules: {fired}  "


def _duplicates_line(duplicates: dict[str, Any]) -> str:
    parts = []
    for kind in ("exact", "near"):
        found = duplicates[kind]
        shown = "; ".join(f"{c['size']}x lines {', '.join(map(str, c['lines'][:4]))}"
                          for c in found["largest"][:3])
        parts.append(f"{kind} {found['clusters']:,} clusters ({found['examples']:,} examples)"
                     + (f": {shown}" if shown else ""))
    return f"**Duplicates** (near: Jaccard >= {duplicates['threshold']}): " + " · ".join(parts) + "  "


def _leakage_line(leakage: dict[str, Any]) -> str:
    if not leakage["pairs"]:
        return "**Leakage** train/eval: none  "
    shown = ", ".join(f"train {p['train_line']} ~ {'eval file' if p['in_eval_file'] else 'eval'} "
                      f"{p['eval_line']}"
                      for p in leakage["shown"][:4])
    return (f"**Leakage** train/eval: {leakage['train_examples']:,} training examples ({leakage['policy']}): "
            f"{shown}  ")


def _diversity_line(diversity: dict[str, Any]) -> str:
    return (f"**Diversity**: {diversity.get('distinct_system_prompts', 0):,} distinct system prompts, "
            f"{diversity.get('refusal_share', 0):.1%} refusals")


def _diagnostics_table(diagnostics: dict[str, Any]) -> list[str]:
    if not diagnostics["by_code"]:
        return ["No diagnostics."]
    rows = ["| code | severity | count | first lines |", "|---|---|---:|---|"]
    first: dict[str, list[str]] = {}
    for item in diagnostics["kept"]:
        kept = first.setdefault(item["code"], [])
        if len(kept) < 5:
            kept.append(str(item["line"]))
    for code, levels in diagnostics["by_code"].items():
        for level, count in levels.items():
            rows.append(f"| `{code}` | {level} | {count:,} | {', '.join(first.get(code, [])) or '-'} |")
    examples = [d for d in diagnostics["kept"] if d["severity"] == "error"][:10]
    if examples:
        rows += ["", *(f"- line {d['line']}: `{d['code']}` {d['message']}" for d in examples)]
    return rows
