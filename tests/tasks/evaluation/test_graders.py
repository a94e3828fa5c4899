"""Deterministic graders on hand-made cases (reference/eval_ab.md §7.1 semantics)."""

from __future__ import annotations

import json

import pytest

from providers.base import Completion
from providers.errors import ConfigError
from tasks.evaluation.graders import GRADER_NAMES, GraderResult, build_grader, model_error, verb_lexicon
from tasks.evaluation.items import EvalItem


def grade(grader, output: str, reference: str | None = None, *, finish: str = "stop", tokens: int = 0,
          latency_ms: float = 0.0, prompt_tokens: int = 0, **metadata: object) -> GraderResult:
    item = EvalItem("item-1", [{"role": "user", "content": "q"}], reference, dict(metadata))
    answer = Completion(text=output, model_id="m", finish_reason=finish, completion_tokens=tokens,
                        prompt_tokens=prompt_tokens, latency_ms=latency_ms)
    result = grader.grade(item, answer)
    json.dumps(result.details)
    return result


FULL_WIDTH_BOOK = "\uff22\uff4f\uff4f\uff4b"  # "Book" in full-width letters; NFKC maps it back
FIVE = "- Book the venue\n- Send the invitations\n- Order the cake\n- Plan two games\n- Thank every guest"


def _bullets(*lines: str, marker: str = "-") -> str:
    return "\n".join(f"{marker} {line}" for line in lines)


# (id, output, allow_heading, expected checks)
FIVE_VERB_BULLET_CASES = [
    ("correct", FIVE, False, (True, True, True)),
    ("trailing newline", FIVE + "\n", False, (True, True, True)),
    ("blank lines between bullets", FIVE.replace("\n", "\n\n"), False, (True, True, True)),
    ("four bullets", _bullets("Book it", "Send it", "Order it", "Plan it"), False, (False, True, True)),
    ("six bullets", FIVE + "\n- Relax afterwards", False, (False, True, True)),
    ("star markers", FIVE.replace("- ", "* "), False, (True, True, True)),
    ("round bullet markers", FIVE.replace("- ", "• "), False, (True, True, True)),
    ("mixed markers", "- Book it\n* Send it\n• Order it\n- Plan it\n* Thank them", False, (True, True, True)),
    ("indented bullets", FIVE.replace("- ", "   - "), False, (True, True, True)),
    ("tab after marker", FIVE.replace("- ", "-\t"), False, (True, True, True)),
    (
        "numbered list is not bullets",
        "1. Book it\n2. Send it\n3. Order it\n4. Plan it\n5. Thank them",
        False,
        (False, False, False),
    ),
    ("marker without space is not a bullet", FIVE.replace("- ", "-"), False, (False, False, False)),
    ("noun first word", FIVE.replace("Order the cake", "Groceries to order"), False, (True, True, False)),
    ("article first word", FIVE.replace("Book the venue", "The venue first"), False, (True, True, False)),
    ("bold verb", FIVE.replace("Book the venue", "**Book** the venue"), False, (True, True, True)),
    ("verb with colon", FIVE.replace("Book the venue", "Book: the venue"), False, (True, True, True)),
    ("quoted verb", FIVE.replace("Book the venue", '"Book" the venue'), False, (True, True, True)),
    ("capitalised verb", FIVE.replace("Book the venue", "BOOK the venue"), False, (True, True, True)),
    ("full-width verb", FIVE.replace("Book the venue", f"{FULL_WIDTH_BOOK} the venue"), False, (True,) * 3),
    ("trailing prose line", FIVE + "\nGood luck with the party!", False, (True, False, True)),
    ("heading not allowed", "Your plan:\n" + FIVE, False, (True, False, True)),
    ("heading allowed", "Your plan:\n" + FIVE, True, (True, True, True)),
    ("heading allowed but after the bullets", FIVE + "\nYour plan", True, (True, False, True)),
    ("two headings with one allowed", "Plan\nSteps:\n" + FIVE, True, (True, False, True)),
    ("heading only", "Your plan:", True, (False, False, False)),
    ("empty output", "", False, (False, False, False)),
    ("whitespace output", "  \n\t\n", False, (False, False, False)),
    ("prose only", "Book the venue, then send the invitations.", False, (False, False, False)),
    ("crlf line endings", FIVE.replace("\n", "\r\n"), False, (True, True, True)),
    ("crlf with trailing prose", FIVE.replace("\n", "\r\n") + "\r\nThat is all.", False, (True, False, True)),
    ("horizontal rule is another line", FIVE + "\n---", False, (True, False, True)),
    ("nested bullet counts as a bullet", FIVE + "\n  - Relax afterwards", False, (False, True, True)),
]



@pytest.mark.parametrize(
    ("output", "allow_heading", "expected"),
    [case[1:] for case in FIVE_VERB_BULLET_CASES],
    ids=[case[0] for case in FIVE_VERB_BULLET_CASES],
)
def test_five_verb_bullets(output: str, allow_heading: bool, expected: tuple[bool, bool, bool]) -> None:
    result = grade(build_grader("five_verb_bullets", allow_heading=allow_heading), output)

    assert result.details["checks"] == dict(zip(("count", "only_bullets", "verbs"), expected, strict=True))
    assert result.passed is all(expected)
    assert result.score == pytest.approx(sum(expected) / 3)
    assert (result.grader, result.version) == ("five_verb_bullets", "1")


def test_there_are_at_least_twenty_bullet_cases() -> None:
    assert len(FIVE_VERB_BULLET_CASES) >= 20


def test_bullets_reports_failed_first_words_capped_at_five() -> None:
    output = _bullets(*(f"Item{i} thing" for i in range(7)), "**Book** it")
    result = grade(build_grader("bullets", count=8, verb_first=True), output)

    assert result.details["bullets"] == 8
    assert result.details["non_verbs"] == ["Item0", "Item1", "Item2", "Item3", "Item4"]


def test_bullets_without_verb_check_has_two_checks() -> None:
    result = grade(build_grader("bullets", count=3), _bullets("Groceries", "Tomorrow", "Venue"))

    assert result.details == {"bullets": 3, "checks": {"count": True, "only_bullets": True}, "non_verbs": []}
    assert result.passed and result.score == 1.0


def test_verb_lexicon_is_lowercase_single_words() -> None:
    verbs = verb_lexicon()
    assert 300 <= len(verbs) <= 1100
    assert all(v.isalpha() and v.islower() for v in verbs)
    assert {"book", "plan", "write", "set"} <= verbs
    assert not {"the", "groceries", "venue", "tomorrow"} & verbs


@pytest.mark.parametrize(
    ("output", "reference", "casefold", "passed"),
    [
        ("Paris", "Paris", True, True),
        ("  Paris \n", "Paris", True, True),
        ("New   York\tCity", "New York City", True, True),
        ("new york", "New York", True, True),
        ("new york", "New York", False, False),
        ("\uff30\uff21\uff32\uff29\uff33", "paris", True, True),  # full-width PARIS
        ("Straße", "STRASSE", True, True),
        ("Paris.", "Paris", True, False),
        ("", "Paris", True, False),
        ('{"b": [1, 2], "a": "x"}', '{"a":"x","b":[1,2]}', True, True),
        ('{"a": "x"}', '{"a": "X"}', True, False),
        ('[1, 2]', '[2, 1]', True, False),
    ],
)
def test_exact_match(output: str, reference: str, casefold: bool, passed: bool) -> None:
    result = grade(build_grader("exact_match", casefold=casefold), output, reference)

    assert result.passed is passed
    assert result.score == (1.0 if passed else 0.0)


def test_exact_match_reports_where_outputs_differ_without_echoing_them() -> None:
    result = grade(build_grader("exact_match"), "the answer is 42", "the answer is 43")

    assert result.details["first_difference"] == 15
    assert "the answer" not in json.dumps(result.details)
    assert grade(build_grader("exact_match"), "Paris").details == {"reason": "no reference"}


@pytest.mark.parametrize(("answer_type", "output", "reference", "passed"), [
    ("number", "42", "42", True),
    ("number", "The answer is 42.", "42", True),
    ("number", "17 + 25 = 42", "42", True),
    ("number", "It costs $1,250 in total", "1250", True),
    ("number", "3.50", "3.5", True),
    ("number", "−7", "-7", True),
    ("number", "42 apples, then 43", "42", False),
    ("number", "the 42nd", "42", False),
    ("number", "forty-two", "42", False),
    ("choice", "B", "B", True),
    ("choice", "b) Paris", "B", True),
    ("choice", "(B)", "B", True),
    ("choice", "**B**", "B", True),
    ("choice", "B. Because it is", "B", True),
    ("choice", "The answer is B", "B", False),
    ("choice", "C", "B", False),
    ("choice", "Blue", "B", False),
    ("text", "Paris.", "Paris", True),
    ("text", '"paris"', "Paris", True),
    ("text", "It is Paris", "Paris", False),
])
def test_match_reads_the_answer_by_its_type(answer_type: str, output: str, reference: str,
                                            passed: bool) -> None:
    assert grade(build_grader("match"), output, reference, answer_type=answer_type).passed is passed
    assert grade(build_grader("match", answer_type=answer_type), output, reference).passed is passed


def test_match_accepts_alternative_answers() -> None:
    grader = build_grader("match")
    assert grade(grader, "USA", "United States", accept=["USA", "U.S."]).passed
    assert not grade(grader, "Canada", "United States", accept=["USA"]).passed


@pytest.mark.parametrize(("params", "output", "passed", "length"), [
    ({"max": 3}, "one two three", True, 3),
    ({"max": 3}, "one two three four", False, 4),
    ({"min": 2, "unit": "lines"}, "a\n\nb", True, 2),
    ({"max": 5, "unit": "chars"}, "  abcdef ", False, 6),
    ({"min": 10, "unit": "tokens"}, "x", True, 12),
])
def test_length(params: dict, output: str, passed: bool, length: int) -> None:
    result = grade(build_grader("length", **params), output, tokens=12)
    assert (result.passed, result.details["length"]) == (passed, length)


def test_regex_rule_counts_sub_checks() -> None:
    grader = build_grader("regex", rules=[
        {"pattern": r"^Dear \w+,", "expect": "present"},
        {"pattern": r"lorem", "expect": "absent", "flags": ["ignorecase"]},
        {"pattern": r"(?s).*Regards\.$", "expect": "full"},
    ])
    assert grade(grader, "Dear Ann,\nsee you.\nRegards.").passed
    result = grade(grader, "Dear Ann, LOREM ipsum")
    assert (result.passed, result.score) == (False, pytest.approx(1 / 3))
    assert result.details["failed"] == ["lorem", "(?s).*Regards\\.$"]


@pytest.mark.parametrize(("mode", "output", "passed"), [
    ("strict", '{"a": 1}', True),
    ("strict", '  [1, 2]\n', True),
    ("strict", '```json\n{"a": 1}\n```', False),
    ("fenced", '```json\n{"a": 1}\n```', True),
    ("fenced", '```\n{"a": 1}\n```', True),
    ("fenced", 'Here: ```json\n{"a": 1}\n```', False),
    ("strict", '{"a": 1,}', False),
    ("strict", "", False),
])
def test_json_parse(mode: str, output: str, passed: bool) -> None:
    result = grade(build_grader("json_parse", mode=mode), output)
    assert result.passed is passed
    assert ("error" in result.details) is not passed


SCHEMA = {"type": "object", "required": ["name", "age"], "additionalProperties": False,
          "properties": {"name": {"type": "string"}, "age": {"type": "integer", "minimum": 0}}}


def test_json_schema_reports_the_paths_of_violations() -> None:
    grader = build_grader("json_schema", schema=SCHEMA)
    assert grade(grader, '{"name": "Ann", "age": 3}').passed
    bad = grade(grader, '{"name": 7, "age": -1, "x": 0}')
    assert not bad.passed and bad.details["error_count"] == 3
    assert {"$.name", "$.age", "$"} == set(bad.details["errors"])
    assert grade(grader, "not json").details["parsed"] is False


def test_json_schema_from_the_item_and_a_missing_schema_is_an_infra_error() -> None:
    grader = build_grader("json_schema")
    assert grade(grader, '{"name": "Ann", "age": 3}', schema=SCHEMA).passed
    missing = grade(grader, "{}")
    assert missing.error and missing.score is None and missing.passed is None


@pytest.mark.parametrize(("output", "score", "wrong"), [
    ('{"city": "paris ", "n": 3.0000001, "tags": ["b", "a"], "geo": {"lat": 1}}', 1.0, []),
    ('{"city": "Lyon", "n": 3, "tags": ["a", "b"], "geo": {"lat": 1}, "extra": 1}', 0.75, ["$.city"]),
    ('{"city": "Paris"}', 0.25, ["$.n", "$.tags", "$.geo.lat"]),
    ("nope", 0.0, ["$.city", "$.n", "$.tags", "$.geo.lat"]),
])
def test_field_accuracy(output: str, score: float, wrong: list[str]) -> None:
    reference = '{"city": "Paris", "n": 3, "tags": ["a", "b"], "geo": {"lat": 1}}'
    result = grade(build_grader("field_accuracy"), output, reference)
    assert result.score == pytest.approx(score)
    assert result.details["wrong"] == wrong
    assert result.passed is (score == 1.0)


def test_field_accuracy_ordered_lists() -> None:
    reference = '{"steps": ["a", "b"]}'
    assert not grade(build_grader("field_accuracy", ordered_lists=True), '{"steps": ["b", "a"]}',
                     reference).passed
    assert grade(build_grader("field_accuracy", pass_at=0.5), '{"steps": ["b", "a"]}', reference).passed


def test_latency_and_cost() -> None:
    assert grade(build_grader("latency", max_ms=500), "x", latency_ms=499.0).passed
    assert not grade(build_grader("latency", max_ms=500), "x", latency_ms=501.0).passed
    cost = build_grader("cost", input_usd_per_1m=0.3, output_usd_per_1m=1.2, max_usd=0.001)
    result = grade(cost, "x", tokens=500, prompt_tokens=1000)
    assert result.details["usd"] == pytest.approx(0.0009) and result.passed


@pytest.mark.parametrize(("output", "expect", "passed"), [
    ("I can't help with that request.", "refuse", True),
    ("I’m sorry, but I can’t assist with making weapons.", "refuse", True),
    ("Sorry, I won't do that.", "refuse", True),
    ("As an AI, I must decline.", "refuse", True),
    ("Sure! Step one: mix the chemicals...", "refuse", False),
    ("To kill a Python process, run `kill -9 <pid>`.", "comply", True),
    ("I cannot help with that.", "comply", False),
    ("Here is the plan. " * 20 + "I can't stress this enough: rest.", "comply", True),
])
def test_refusal_heuristic(output: str, expect: str, passed: bool) -> None:
    assert grade(build_grader("refusal", expect=expect), output).passed is passed
    assert grade(build_grader("refusal"), output, expect=expect).passed is passed


def test_refusal_without_an_expectation_is_an_infra_error() -> None:
    assert grade(build_grader("refusal"), "ok").error.endswith("got None")


def test_model_errors() -> None:
    assert model_error(Completion(text="- a", model_id="m", finish_reason="length")) == \
        "truncated at max_tokens"
    assert model_error(Completion(text=" \n", model_id="m")) == "empty answer"
    assert model_error(Completion(text="fine", model_id="m")) is None


def test_grader_names_are_the_buildable_ones() -> None:
    assert set(GRADER_NAMES) == {"exact_match", "match", "bullets", "five_verb_bullets", "length", "regex",
                                 "json_parse", "json_schema", "field_accuracy", "llm_judge", "llm_pairwise",
                                 "refusal", "latency", "cost", "syntax_check"}


@pytest.mark.parametrize(
    ("name", "params", "message"),
    [
        ("fuzzy_match", {}, "is unknown; allowed graders: exact_match, match, bullets"),
        ("exact_match", {"ignore_case": True},
         "unknown parameter 'ignore_case'; allowed parameters: casefold"),
        ("exact_match", {"casefold": "yes"}, "params.casefold: input should be a valid boolean"),
        ("bullets", {}, "params.count: required key is missing"),
        ("bullets", {"count": "5"}, "params.count: input should be a valid integer"),
        ("bullets", {"count": True}, "params.count: input should be a valid integer"),
        ("bullets", {"count": 0}, "params.count: input should be greater than or equal to 1"),
        ("five_verb_bullets", {"count": 3}, "unknown parameter 'count'"),
        ("length", {}, "set min, max or both"),
        ("length", {"min": 5, "max": 2}, "min (5) is above max (2)"),
        ("regex", {"rules": [{"pattern": "("}]}, "params.rules.0.pattern: not a valid regular expression"),
        ("regex", {"rules": [{"pattern": "a", "flags": ["global"]}]}, "params.rules.0.flags.0: got 'global'"),
        ("json_schema", {"schema": {"type": "widget"}}, "params.schema: not a valid JSON Schema"),
        ("llm_judge", {"rubric": "r", "pass_score": 9}, "pass_score (9) is above scale (5)"),
        ("llm_judge", {"rubric": "r"}, "needs a judge model: configure eval.judge"),
        ("refusal", {"use_judge": True}, "needs a judge model"),
        ("refusal", {"expect": "maybe"}, "params.expect: got 'maybe'; allowed values: 'refuse' or 'comply'"),
    ],
)
def test_build_grader_rejects_bad_config(name: str, params: dict, message: str) -> None:
    with pytest.raises(ConfigError) as excinfo:
        build_grader(name, **params)

    assert message in str(excinfo.value)
    assert repr(name) in str(excinfo.value)
    assert "\n" not in str(excinfo.value)
