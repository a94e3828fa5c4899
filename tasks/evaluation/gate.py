"""The promotion gate: a versioned rule table (tasks/evaluation/rules_v*.yaml) applied to paired comparisons.

The table lists outcomes in order with a named condition each; this module implements the conditions.
Every rule is evaluated (so the report can say why each earlier rule did not fire) and the first that holds
decides. The decision records the table version and the thresholds it used, the comparisons, the telling
discordant items, and notes on what the evaluation cannot show (floor effects, uncalibrated judges).
"""

from __future__ import annotations

import re
from collections.abc import Callable

from prefect import task
from prefect.artifacts import create_markdown_artifact, create_table_artifact

from tasks.evaluation.compare import Comparison, compare_all, telling_items
from tasks.evaluation.config import GateConfig
from tasks.evaluation.decision import Decision, RuleCheck
from tasks.evaluation.evaluate import Evaluation
from tasks.evaluation.report import render_report
from tasks.evaluation.rules import RuleTable, Thresholds, load_rules
from tasks.evaluation.stops import never_stops
from tasks.evaluation.store import EvalStore
from tasks.policy import LOCAL_WORK
from tasks.progress import milestone
from tasks.registry import Registry
from tasks.rundir import RunDir, atomic_write, write_json

_FLOOR = 0.05
_MIN_KAPPA = 0.6
_PINNED = re.compile(r"\d{4}-?\d{2}-?\d{2}|@|:\d|-v\d")


class _Facts:
    """What the predicates look at, computed once."""

    def __init__(self, evaluation: Evaluation, comparisons: list[Comparison], t: Thresholds) -> None:
        self.t = t
        self.evaluation = evaluation
        whole = [c for c in comparisons if c.slice is None]
        target = next(s for s in evaluation.suites if s.role == "target")
        self.primary = next(c for c in whole if c.suite == target.name and c.grader == target.primary)
        self.regressions = [c for c in whole if c.role == "regression"]
        self.safety = [c for c in whole if c.role == "safety"]
        self.formats = [c for c in whole if c.format and c.role != "safety"]
        answers = len(evaluation.results)
        self.answer_error_rate = evaluation.answer_errors / answers if answers else 1.0
        graded = evaluation.grades
        self.grade_error_rate = evaluation.grade_errors / graded if graded else 0.0
        self.never_stops = never_stops(evaluation, confidence=1 - t.alpha)

    def noninferior(self, c: Comparison) -> bool:
        return c.ci_low > -self.t.major and c.delta > -self.t.minor

    def significant_gain(self) -> bool:
        return self.primary.ci_low > 0 and self.primary.p_value < self.t.alpha


def _pp(value: float) -> str:
    return f"{value * 100:+.1f} pp"


def _ci(c: Comparison) -> str:
    return f"{c.metric} {_pp(c.delta)} [{c.ci_low * 100:+.1f}, {c.ci_high * 100:+.1f}]"


def _first_error(f: _Facts, *, grades: bool) -> str:
    for r in f.evaluation.results:
        errors = [g.error for g in r.grades.values() if g.error] if grades else [r.error] if r.error else []
        if errors:
            return f"; first: {errors[0][:160]}"
    return ""


def _run_invalid(f: _Facts) -> tuple[bool, str]:
    limit = f.t.max_infra_error_rate
    if f.answer_error_rate > limit:
        return True, (f"{f.answer_error_rate:.1%} of answers were infra errors (limit {limit:.0%})"
                      + _first_error(f, grades=False))
    if f.grade_error_rate > limit:
        return True, (f"{f.grade_error_rate:.1%} of grades were infra errors (limit {limit:.0%})"
                      + _first_error(f, grades=True))
    if f.primary.n == 0:
        return True, f"no item could be scored on the primary metric {f.primary.metric}"
    return False, f"infra errors {f.answer_error_rate:.1%} of answers, {f.grade_error_rate:.1%} of grades"


def _critical_losses(f: _Facts) -> list[str]:
    critical = {(s.name, i.key) for s in f.evaluation.suites if s.role == "safety"
                for i in s.items if i.critical}
    passed: dict[tuple[str, str, str, str], bool] = {}
    for r in f.evaluation.results:
        if (r.suite, r.item) in critical and r.error is None:
            for gid, grade in r.grades.items():
                if grade.error is None and r.sample == 0:
                    passed[(r.suite, r.item, gid, r.role)] = bool(grade.passed)
    return sorted({f"{suite}/{item}" for (suite, item, gid, role), ok in passed.items()
                   if role == "base" and ok and passed.get((suite, item, gid, "candidate")) is False})


def _safety_regressed(f: _Facts) -> tuple[bool, str]:
    worse = [c for c in f.safety if c.ci_low < -f.t.safety_margin and c.delta < 0]
    critical = _critical_losses(f)
    if worse or critical:
        parts = [_ci(c) for c in worse] + [f"critical item {k} now fails" for k in critical[:3]]
        return True, "safety got worse: " + "; ".join(parts)
    if not f.safety:
        return False, "no safety suite"
    return False, "safety suites not worse beyond the margin: " + "; ".join(_ci(c) for c in f.safety)


def _format_broken(f: _Facts) -> tuple[bool, str]:
    broken = [c for c in f.formats
              if c.candidate_value < f.t.format_floor or (c.delta < 0 and c.p_value < f.t.alpha)]
    if broken:
        return True, "format broken: " + "; ".join(
            f"{c.metric} candidate {c.candidate_value:.1%} (floor {f.t.format_floor:.0%}), {_pp(c.delta)} "
            f"p={c.p_value:.2g}" for c in broken)
    return False, "format graders hold" if f.formats else "no format grader"


def _never_stops(f: _Facts) -> tuple[bool, str]:
    stops = f.never_stops
    if stops is None:
        return False, "no item answered by both models"
    rose = stops.delta > f.t.max_length_rise and stops.ci_low > 0
    if rose:
        return True, f"{stops.describe()} (limit {_pp(f.t.max_length_rise)})"
    return False, f"the candidate ends its answers: {stops.describe()}"


def _regression_major(f: _Facts) -> tuple[bool, str]:
    major = [c for c in f.regressions if c.delta <= -f.t.major or c.ci_high < -f.t.minor]
    if major:
        return True, "regression: " + "; ".join(_ci(c) for c in major)
    return False, "regression suites: " + ("; ".join(_ci(c) for c in f.regressions) or "none")


def _regressions_fine(f: _Facts) -> tuple[bool, str]:
    """Whether no regression suite shows a loss; without any it holds, and the notes say it was not checked
    (a reason here would claim a non-inferiority that nothing measured)."""
    bad = [c for c in f.regressions if not f.noninferior(c)]
    if bad:
        return False, "not shown non-inferior: " + "; ".join(_ci(c) for c in bad)
    return True, "regressions non-inferior" if f.regressions else ""


def _joined(*parts: str) -> str:
    return "; ".join(part for part in parts if part)


def _strong_gain(f: _Facts) -> tuple[bool, str]:
    p, fine = f.primary, _regressions_fine(f)
    gain = f.significant_gain() and p.delta >= f.t.target_min
    needs = f"a strong gain needs at least {_pp(f.t.target_min)} (target_min)"
    return gain and fine[0], _joined(f"primary {_ci(p)}, p={p.p_value:.2g}", needs, fine[1])


def _gain(f: _Facts) -> tuple[bool, str]:
    p, fine = f.primary, _regressions_fine(f)
    return f.significant_gain() and fine[0], _joined(f"primary {_ci(p)}, p={p.p_value:.2g}", fine[1])


def _worse(f: _Facts) -> tuple[bool, str]:
    return f.primary.ci_high < 0, f"primary {_ci(f.primary)}"


def _no_effect_powered(f: _Facts) -> tuple[bool, str]:
    p = f.primary
    width = p.ci_high - p.ci_low
    return (p.ci_low <= 0 <= p.ci_high and width <= 2 * f.t.target_min,
            f"primary CI width {width * 100:.1f} pp (powered when <= {2 * f.t.target_min * 100:.0f} pp)")


def _otherwise(f: _Facts) -> tuple[bool, str]:
    p = f.primary
    width = p.ci_high - p.ci_low
    if width > 2 * f.t.target_min:
        return True, (f"primary {_ci(p)}: CI width {width * 100:.1f} pp > {2 * f.t.target_min * 100:.0f} pp "
                      f"with n={p.n}; the eval set is too small to tell")
    return True, _regressions_fine(f)[1] or f"primary {_ci(p)}"


PREDICATES: dict[str, Callable[[_Facts], tuple[bool, str]]] = {
    "run_invalid": _run_invalid, "safety_regressed": _safety_regressed, "format_broken": _format_broken,
    "never_stops": _never_stops, "regression_major": _regression_major, "strong_gain": _strong_gain,
    "gain": _gain, "worse": _worse, "no_effect_powered": _no_effect_powered, "otherwise": _otherwise,
}


def thresholds_for(gate: GateConfig) -> tuple[RuleTable, Thresholds]:
    table = load_rules(gate.rules)
    overrides = {k: v for k, v in gate.model_dump(exclude={"rules", "min_delta"}).items() if v is not None}
    return table, table.thresholds.model_copy(update=overrides)


def _notes(f: _Facts) -> list[str]:
    notes = []
    stops = f.never_stops
    if stops is not None and stops.delta > f.t.max_length_rise:
        notes.append(f"warning: the candidate does not stop: {stops.describe()}; check the chat template's "
                     "end-of-turn token and the stop tokens (template parity)")
    if not f.regressions:
        notes.append("no regression suite: catastrophic forgetting is not checked (add one with "
                     "role: regression, e.g. items: builtin:general)")
    for c in f.regressions + f.safety:
        if max(c.base_value, c.candidate_value) < _FLOOR:
            notes.append(f"{c.metric}: both models score below {_FLOOR:.0%}; this suite cannot show a "
                         "regression here (floor effect), so non-inferiority on it means little")
    undecided = f.primary.ci_low <= 0 <= f.primary.ci_high
    if undecided and (f.primary.mde is None or f.primary.mde > f.t.target_min):
        shown = ("no effect" if f.primary.mde is None
                 else f"only effects of {f.primary.mde * 100:.1f} pp or more")
        notes.append(f"with n={f.primary.n} and the observed disagreement the primary metric detects {shown} "
                     f"(80 % power); a strong gain needs at least {_pp(f.t.target_min)}")
    for suite in f.evaluation.suites:
        for info in suite.graders.values():
            if info.judge_model is None:
                continue
            if not _PINNED.search(info.judge_model):
                notes.append(f"{suite.name}/{info.id}: judge model {info.judge_model!r} does not look like "
                             "a pinned snapshot")
            kappa = (info.human_agreement or {}).get("kappa")
            if kappa is None:
                notes.append(f"{suite.name}/{info.id}: judge not calibrated against human labels "
                             "(loraflow judge calibrate)")
            elif kappa < _MIN_KAPPA:
                notes.append(f"{suite.name}/{info.id}: judge agreement with humans is low "
                             f"(kappa {kappa:.2f} < {_MIN_KAPPA})")
    return notes


def decide(evaluation: Evaluation, gate: GateConfig | None = None) -> Decision:
    """Apply the rule table to the evaluation; the first rule whose condition holds decides."""
    table, thresholds = thresholds_for(gate or GateConfig())
    comparisons = compare_all(evaluation, thresholds)
    facts = _Facts(evaluation, comparisons, thresholds)
    checks, chosen = [], None
    for rule in table.rules:
        matched, why = PREDICATES[rule.when](facts)
        checks.append(RuleCheck(outcome=rule.outcome, matched=matched, why=why))
        if matched and chosen is None:
            chosen = (rule, why)
    rule, why = chosen or (table.rules[-1], "no rule matched")
    return Decision(outcome=rule.outcome, rules_version=table.version, primary=facts.primary.metric,
                    reason=why, action=rule.action,
                    infra_error_rate=max(facts.answer_error_rate, facts.grade_error_rate),
                    thresholds=thresholds, comparisons=comparisons, checks=checks, notes=_notes(facts),
                    telling=telling_items(evaluation), never_stops=facts.never_stops)


def record_decision(decision: Decision, evaluation: Evaluation, run: RunDir,
                    store: EvalStore | None = None) -> str:
    """decision.json, eval/report.md and the manifest's `decision` section (and a registry row); returns the
    report's markdown."""
    write_json(run.root / "decision.json", decision.model_dump(mode="json"))
    report = render_report(decision, evaluation)
    atomic_write(run.eval_dir / "report.md", report)
    run.record("decision", {"outcome": decision.outcome, "rules_version": decision.rules_version,
                            "primary": decision.primary, "file": "decision.json", "report": "eval/report.md"})
    if store is not None:
        store.record_decision(candidate=evaluation.models["candidate"].model_id,
                              baseline=evaluation.models["base"].model_id, outcome=decision.outcome,
                              rules_version=decision.rules_version, reason=decision.reason,
                              run_dir=str(run.root))
    return report


def decide_and_record(evaluation: Evaluation, gate: GateConfig, run: RunDir, store: EvalStore | None = None,
                      notes: list[str] | None = None) -> tuple[Decision, str]:
    """`decide`, then the decision recorded (`record_decision`); returns it and the report's markdown. `notes`
    (training health, the comparison with a teacher) join the decision's own: shown, never deciding."""
    decision = decide(evaluation, gate)
    if notes:
        decision = decision.model_copy(update={"notes": [*decision.notes, *notes]})
    return decision, record_decision(decision, evaluation, run, store)


@task(name="decide", **LOCAL_WORK)
def decide_promotion(evaluation: Evaluation, gate: GateConfig, run: RunDir, registry: Registry | None = None,
                     notes: list[str] | None = None) -> Decision:
    """The gate as the flow's step, with the report and the comparison table as artifacts."""
    store = EvalStore(registry.engine) if registry is not None else None
    decision, report = decide_and_record(evaluation, gate, run, store, notes)
    create_markdown_artifact(markdown=report, key="eval-report",
                             description=f"{decision.outcome.upper()} ({decision.rules_version})")
    create_table_artifact(table=[c.model_dump() for c in decision.comparisons], key="eval-comparison",
                          description=f"{decision.outcome.upper()} ({decision.rules_version}): "
                                      f"{decision.reason}")
    milestone("decide", "decision: %s (%s)", decision.outcome.upper(), decision.rules_version)
    return decision
