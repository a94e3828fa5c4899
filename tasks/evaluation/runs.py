"""Two runs side by side: what differed in their configuration and what that did to their metrics, so one
change at a time can be judged. (tasks/evaluation/compare.py is the base-versus-candidate comparison inside
one run; this module compares two run directories.)

A run directory holds its configuration (manifest `config`), its data lineage, its job, its cost, its training
health and its decision (decision.json with every paired comparison); runs older than the `config` section
are compared on what they have.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from providers.errors import ConfigError
from tasks.runstore import RunPath

_MISSING = "(unset)"
# what differs between any two runs and says nothing about the change under test
_VOLATILE = ("run_root",)


@dataclass(frozen=True)
class RunFacts:
    root: RunPath
    manifest: dict[str, Any]
    decision: dict[str, Any] | None

    @classmethod
    def read(cls, root: RunPath) -> RunFacts:
        manifest_path = root / "manifest.json"
        if not manifest_path.is_file():
            raise ConfigError(f"{root}: not a run directory (no manifest.json)")
        decision_path = root / "decision.json"
        decision = _json_object(decision_path) if decision_path.is_file() else None
        return cls(root, _json_object(manifest_path), decision)

    def settings(self) -> dict[str, Any]:
        """The configuration as dotted keys, plus the facts that ran (data hash, base model, job)."""
        flat = flatten(self.manifest.get("config", {}))
        data = self.manifest.get("data", {})
        if "input_sha256" in data:
            flat["(data).input_sha256"] = data["input_sha256"]
        return {k: v for k, v in flat.items() if not k.startswith(_VOLATILE)}

    def metrics(self) -> dict[str, float]:
        """Every whole-suite metric's candidate value and its delta against that run's base."""
        found: dict[str, float] = {}
        for c in (self.decision or {}).get("comparisons", []):
            if c.get("slice") is None:
                metric = f"{c['suite']}/{c['grader']}"
                found[metric] = c["candidate_value"]
                found[f"{metric} (delta vs base)"] = c["delta"]
        cost = self.manifest.get("cost", {})
        estimate = (cost.get("estimate") or {}).get("training_usd")
        if isinstance(estimate, int | float):
            found["training cost estimate (usd)"] = estimate
        return found

    def outcome(self) -> str:
        return (self.decision or {}).get("outcome", "(no decision)")

    def health(self) -> str:
        return (self.manifest.get("health") or {}).get("verdict", "(not checked)")


def flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for key, inner in value.items():
            out.update(flatten(inner, f"{prefix}{key}."))
        return out
    return {prefix.rstrip("."): value}


@dataclass(frozen=True)
class RunComparison:
    a: RunFacts
    b: RunFacts
    config: list[tuple[str, Any, Any]]
    metrics: list[tuple[str, float | None, float | None]]

    @property
    def changes(self) -> int:
        return len(self.config)


def _json_object(path: RunPath) -> dict[str, Any]:
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: not valid JSON ({exc}); the run's file is damaged") from None
    if not isinstance(value, dict):
        raise ConfigError(f"{path}: expected a JSON object")
    return value


def compare_runs(a: RunPath, b: RunPath) -> RunComparison:
    """The configuration keys that differ and every metric of either run, A's value beside B's."""
    first, second = RunFacts.read(a), RunFacts.read(b)
    sa, sb = first.settings(), second.settings()
    config = [(k, sa.get(k, _MISSING), sb.get(k, _MISSING)) for k in sorted(set(sa) | set(sb))
              if sa.get(k, _MISSING) != sb.get(k, _MISSING)]
    ma, mb = first.metrics(), second.metrics()
    metrics = [(k, ma.get(k), mb.get(k)) for k in sorted(set(ma) | set(mb))]
    return RunComparison(first, second, config, metrics)


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return json.dumps(value) if isinstance(value, list | dict) else str(value)


def render_markdown(c: RunComparison) -> str:
    lines = [f"# {c.a.root.name} vs {c.b.root.name}", "", "| | A | B |", "|---|---|---|",
             f"| decision | {c.a.outcome()} | {c.b.outcome()} |",
             f"| training health | {c.a.health()} | {c.b.health()} |",
             "", f"## Configuration ({c.changes} differences)", ""]
    if c.changes > 1:
        lines += [(f"{c.changes} settings changed at once: the metric differences cannot be put down to "
                   "any one of them."), ""]
    lines += ["| key | A | B |", "|---|---|---|"]
    lines += [f"| {k} | {_cell(va)} | {_cell(vb)} |" for k, va, vb in c.config] or ["| (none) | | |"]
    lines += ["", "## Metrics", "", "| metric | A | B | B - A |", "|---|---|---|---|"]
    for name, va, vb in c.metrics:
        diff = f"{vb - va:+.4g}" if va is not None and vb is not None else ""
        lines.append(f"| {name} | {_cell(va) if va is not None else '-'} | "
                     f"{_cell(vb) if vb is not None else '-'} | {diff} |")
    return "\n".join(lines) + "\n"
