"""Graders: each turns one answer to one item into a GraderResult (reference/eval_ab.md §7.1).

    base.py         GraderResult, the Grader / PairGrader protocols, model errors
    text.py         exact_match, match, length, regex
    structure.py    bullets, five_verb_bullets (verb lexicon in ../verbs.txt)
    jsonish.py      json_parse, json_schema, field_accuracy
    judge.py        llm_judge (pointwise rubric), llm_pairwise (both orders), the Judge protocol
    refusal.py      refusal (keyword heuristic, or a label judge)
    syntax.py       syntax_check (a user-supplied parser: a command or a Python callable)
    operational.py  latency, cost
    catalogue.py    the names a pipeline file may use, their parameters, build_grader
"""

from tasks.evaluation.graders.base import Grader, GraderResult, Kind, PairGrader, model_error
from tasks.evaluation.graders.catalogue import (
    FORMAT_GRADERS,
    GRADER_NAMES,
    build_grader,
    grader_params,
    needs_judge,
)
from tasks.evaluation.graders.judge import Judge
from tasks.evaluation.graders.structure import BulletRule, verb_lexicon

__all__ = [
    "FORMAT_GRADERS",
    "GRADER_NAMES",
    "BulletRule",
    "Grader",
    "GraderResult",
    "Judge",
    "Kind",
    "PairGrader",
    "build_grader",
    "grader_params",
    "model_error",
    "needs_judge",
    "verb_lexicon",
]
