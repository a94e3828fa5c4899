from __future__ import annotations

import json

import pytest

from providers.errors import ConfigError
from tasks.evaluation.graders import GRADER_NAMES, GraderResult, build_grader, verb_lexicon

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
    grader = build_grader("five_verb_bullets", allow_heading=allow_heading)
    result = grader.grade(output, None)

    assert result.details["checks"] == dict(zip(("count", "only_bullets", "verbs"), expected, strict=True))
    assert result.passed is all(expected)
    assert result.score == pytest.approx(sum(expected) / 3)
    assert result.grader == "five_verb_bullets"
    assert result.version == "1"
    json.dumps(result.details)


def test_bullets_reports_failed_first_words_capped_at_five() -> None:
    output = _bullets(*(f"Item{i} thing" for i in range(7)), "**Book** it")
    result = build_grader("bullets", count=8, verb_first=True).grade(output, None)

    assert result.details["bullets"] == 8
    assert result.details["non_verbs"] == ["Item0", "Item1", "Item2", "Item3", "Item4"]


def test_bullets_without_verb_check_has_two_checks() -> None:
    result = build_grader("bullets", count=3).grade(_bullets("Groceries", "Tomorrow", "Venue"), None)

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
        ("", "", True, True),
    ],
)
def test_exact_match(output: str, reference: str, casefold: bool, passed: bool) -> None:
    result = build_grader("exact_match", casefold=casefold).grade(output, reference)

    assert result.passed is passed
    assert result.score == (1.0 if passed else 0.0)
    assert result.grader == "exact_match"
    json.dumps(result.details)


def test_exact_match_reports_where_outputs_differ_without_echoing_them() -> None:
    result = build_grader("exact_match").grade("the answer is 42", "the answer is 43")

    assert result.details["first_difference"] == 15
    assert "the answer" not in json.dumps(result.details)


def test_exact_match_without_reference_fails_with_a_reason() -> None:
    result = build_grader("exact_match").grade("Paris", None)

    assert result == GraderResult("exact_match", "1", 0.0, False, {"reason": "no reference"})


def test_grader_names_are_the_buildable_ones() -> None:
    assert set(GRADER_NAMES) == {"exact_match", "bullets", "five_verb_bullets"}


@pytest.mark.parametrize(
    ("name", "params", "message"),
    [
        ("fuzzy_match", {}, "is unknown; allowed graders: exact_match, bullets, five_verb_bullets"),
        ("exact_match", {"ignore_case": True}, "parameter 'ignore_case'; allowed parameters: casefold"),
        ("exact_match", {"casefold": "yes"}, "parameter 'casefold' must be bool, got str 'yes'"),
        ("bullets", {}, "required parameter 'count' is missing"),
        ("bullets", {"count": "5"}, "parameter 'count' must be int"),
        ("bullets", {"count": True}, "parameter 'count' must be int, got bool"),
        ("bullets", {"count": 0}, "parameter 'count' must be at least 1"),
        ("five_verb_bullets", {"count": 3}, "grader 'five_verb_bullets': unknown parameter 'count'"),
    ],
)
def test_build_grader_rejects_bad_config(name: str, params: dict, message: str) -> None:
    with pytest.raises(ConfigError) as excinfo:
        build_grader(name, **params)

    assert message in str(excinfo.value)
    assert repr(name) in str(excinfo.value)
