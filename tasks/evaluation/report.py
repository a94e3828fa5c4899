"""The evaluation report (eval/report.md and the `eval-report` artifact): per-suite base, candidate, delta and
CI, the decision and why, what the evaluation cannot show, and the most telling discordant items."""

from __future__ import annotations

from tasks.evaluation.compare import Comparison
from tasks.evaluation.decision import Decision
from tasks.evaluation.evaluate import Evaluation


def _value(c: Comparison, side: str) -> str:
    passed = c.base_passed if side == "base" else c.candidate_passed
    value = c.base_value if side == "base" else c.candidate_value
    if c.kind == "binary":
        return f"{passed}/{c.n} ({value:.1%})"
    if c.kind == "pairwise":
        return f"{value:.1%} wins+ties/2"
    return f"{value:.3f}"


def _row(c: Comparison) -> str:
    adjusted = f"{c.adjusted_p:.2g}" if c.adjusted_p is not None else ""
    mde = f"{c.mde * 100:.1f} pp" if c.mde is not None else "n/a"
    name = f"**{c.grader}** (primary)" if c.primary else c.grader
    if c.slice:
        name = f"{c.grader} [{c.slice}]"
    return (f"| {c.suite} | {c.role} | {name} | {c.n} | {_value(c, 'base')} | {_value(c, 'candidate')} | "
            f"{c.delta * 100:+.1f} pp [{c.ci_low * 100:+.1f}, {c.ci_high * 100:+.1f}] | {c.p_value:.2g} | "
            f"{adjusted} | {mde} | {c.test} |")


_HEADER = ["| suite | role | grader | n | base | candidate | delta [95% CI] | p | Holm p | MDE | test |",
           "|---|---|---|---|---|---|---|---|---|---|---|"]


def _fenced(text: str) -> str:
    return "```text\n" + text.replace("```", "ʼʼʼ") + "\n```"


def render_report(decision: Decision, evaluation: Evaluation) -> str:
    base, cand = evaluation.models["base"].model_id, evaluation.models["candidate"].model_id
    verdict = f"**{decision.outcome.upper()}** ({decision.rules_version}, primary `{decision.primary}`): "
    lines = [f"# Evaluation: `{cand}` against `{base}`", "", verdict + decision.reason, "",
             f"Next: {decision.action}", "", "## Results", "", *_HEADER]
    lines += [_row(c) for c in decision.comparisons if c.slice is None]
    if decision.never_stops is not None:
        lines += ["", f"Never stops: {decision.never_stops.describe()}."]
    sliced = [c for c in decision.comparisons if c.slice is not None]
    if sliced:
        lines += ["", "Slices (exploratory, never gating):", "", *_HEADER, *(_row(c) for c in sliced)]
    if decision.notes:
        lines += ["", "## What this evaluation cannot show", "", *(f"- {note}" for note in decision.notes)]
    lines += ["", "## Why: the rules in order", "", "| rule | holds | why |", "|---|---|---|"]
    lines += [f"| {c.outcome} | {'**yes**' if c.matched else 'no'} | {c.why} |" for c in decision.checks]
    if decision.telling:
        lines += ["", "## Telling items", ""]
        for t in decision.telling:
            quoted = "\n".join(f"> {line}" for line in t.prompt.splitlines() or [""])
            lines += [f"### {t.suite} / `{t.item}`: {t.direction}", "", quoted, "",
                      f"base: {t.base_grade}", "", _fenced(t.base_output), "",
                      f"candidate: {t.candidate_grade}", "", _fenced(t.candidate_output), ""]
    lines += ["", "## The run", "", *_run_facts(decision, evaluation)]
    return "\n".join(lines) + "\n"


def _run_facts(decision: Decision, evaluation: Evaluation) -> list[str]:
    usage = evaluation.usage
    facts = [(f"- decoding (same for both models): `{evaluation.decoding.model_dump_json()}`, "
              f"{evaluation.samples} sample(s) per item"),
             (f"- answers: {len(evaluation.results)}; infra errors: {evaluation.answer_errors} answers, "
              f"{evaluation.grade_errors} grades (limit {decision.thresholds.max_infra_error_rate:.0%})"),
             (f"- provider calls {usage.get('calls', 0)}, from the cache {usage.get('cache_hits', 0)}"
              + (f" ({usage['reused']} from earlier run directories)" if usage.get("reused") else "")
              + f", retries {usage.get('retries', 0)}")]
    if "judge_calls" in usage:
        facts.append(f"- judge calls {usage['judge_calls']}, from the cache {usage['judge_cache_hits']}, "
                     f"retries {usage['judge_retries']}")
    for suite in evaluation.suites:
        graders = ", ".join(f"{g.id} ({g.name} v{g.version}"
                            + (f", judge {g.judge_model}, prompt {g.prompt_sha256[:12]}"
                               if g.judge_model else "")
                            + (f", kappa {g.human_agreement['kappa']:.2f} n={g.human_agreement['n']}"
                               if g.human_agreement else "") + ")" for g in suite.graders.values())
        facts.append(f"- suite {suite.name} ({suite.role}, {suite.source}, {len(suite.items)} items): "
                     f"{graders}")
    t = decision.thresholds
    facts.append(f"- thresholds: target_min {t.target_min:g}, minor {t.minor:g}, major {t.major:g}, "
                 f"safety_margin {t.safety_margin:g}, format_floor {t.format_floor:g}, alpha {t.alpha:g}")
    return facts
