"""Eval item files (file:line errors) and the shipped general-capability set, checked item by item."""

from __future__ import annotations

import ast
import json
import operator
import re
from collections import Counter
from pathlib import Path

import pytest

from providers.errors import ConfigError, DataError
from tasks.evaluation.items import builtin_path, builtin_sets, load_items


def write(tmp_path: Path, *lines: object) -> Path:
    path = tmp_path / "items.jsonl"
    path.write_text("".join((line if isinstance(line, str) else json.dumps(line)) + "\n" for line in lines))
    return path


def test_both_line_shapes(tmp_path: Path) -> None:
    chat = {"messages": [{"role": "system", "content": "s"}, {"role": "user", "content": "q"},
                         {"role": "assistant", "content": "a"}]}
    explicit = {"id": "x1", "messages": [{"role": "user", "content": "q2"}], "reference": {"k": 1},
                "metadata": {"expect": "refuse"}}
    first, second = load_items(write(tmp_path, chat, explicit))
    assert (first.reference, len(first.messages), len(first.key)) == ("a", 2, 16)
    assert (second.key, second.reference, second.metadata) == ("x1", '{"k": 1}', {"expect": "refuse"})
    assert second.prompt_text == "q2"
    assert load_items(write(tmp_path, chat, explicit), limit=1) == [first]


def test_every_bad_line_is_reported_with_its_number(tmp_path: Path) -> None:
    good = {"id": "a", "messages": [{"role": "user", "content": "q"}]}
    path = write(tmp_path, good, "{nope", "[1]", {"messages": [], "x": 1}, {"messages": []},
                 {"messages": [{"role": "robot", "content": "q"}]}, {**good, "metadata": 3},
                 {"messages": [{"role": "assistant", "content": "a"}]}, good, {**good, "id": ""})
    with pytest.raises(DataError) as raised:
        load_items(path)
    codes = [(p.line, p.code) for p in raised.value.problems]
    assert codes == [(2, "invalid_json"), (3, "not_an_object"), (4, "unknown_key"), (5, "bad_messages"),
                     (6, "bad_messages"), (7, "bad_metadata"), (8, "no_prompt"), (9, "duplicate_id"),
                     (10, "bad_id")]
    assert str(raised.value).startswith(f"{path}:2: invalid_json")


def test_missing_and_empty_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no such eval item file"):
        load_items(tmp_path / "none.jsonl")
    with pytest.raises(DataError, match="empty_file"):
        load_items(write(tmp_path, ""))
    with pytest.raises(ConfigError, match=r"no built-in eval set 'nope'; allowed values: builtin:general"):
        builtin_path("nope")


# --- the shipped general-capability set -------------------------------------------------------------

GENERAL = load_items(builtin_path("general"))
_OPS = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv,
        ast.FloorDiv: operator.floordiv, ast.Mod: operator.mod, ast.Pow: operator.pow, ast.USub: operator.neg}


def arithmetic(node: ast.AST) -> float:
    if isinstance(node, ast.Expression):
        return arithmetic(node.body)
    if isinstance(node, ast.Constant) and isinstance(node.value, int | float):
        return node.value
    if isinstance(node, ast.BinOp):
        return _OPS[type(node.op)](arithmetic(node.left), arithmetic(node.right))
    if isinstance(node, ast.UnaryOp):
        return _OPS[type(node.op)](arithmetic(node.operand))
    raise ValueError(f"not plain arithmetic: {ast.dump(node)}")


def transform(op: str, arg: str) -> str:
    words = arg.split()
    results = {
        "reverse": lambda: arg[::-1],
        "sort": lambda: ", ".join(sorted(w.strip() for w in arg.split(","))),
        "upper": lambda: arg.upper(),
        "count_letter": lambda: str(arg.split("|")[0].count(arg.split("|")[1])),
        "count_words": lambda: str(len(words)),
        "nth_word": lambda: arg.split("|")[0].split()[int(arg.split("|")[1]) - 1],
        "last_letters": lambda: "".join(w[-1] for w in words),
        "hyphenate": lambda: "-".join(words),
        "first_letters": lambda: "".join(w[0] for w in words).upper(),
        "count_vowels": lambda: str(sum(c in "aeiou" for c in arg)),
    }
    return results[op]()


def test_the_general_set_is_small_balanced_and_documented() -> None:
    assert builtin_sets() == ["general"]
    assert 100 <= len(GENERAL) <= 200
    skills = Counter(item.metadata["skill"] for item in GENERAL)
    assert set(skills) == {"arithmetic", "knowledge", "reasoning", "reading", "transform"}
    assert min(skills.values()) >= 20
    for item in GENERAL:
        assert item.key.startswith(f"general-{item.metadata['skill']}-")
        assert item.reference and item.metadata["source"] and \
            item.metadata["answer_type"] in ("number", "choice", "text")
        assert "Answer with" in item.prompt_text or "answer the question with words from the passage" in \
            item.prompt_text


@pytest.mark.parametrize("item", [i for i in GENERAL if i.metadata["skill"] == "arithmetic"],
                         ids=lambda i: i.key)
def test_arithmetic_references_are_right(item) -> None:
    assert float(item.reference) == pytest.approx(arithmetic(ast.parse(item.metadata["check"], mode="eval")))


@pytest.mark.parametrize("item", [i for i in GENERAL if i.metadata["skill"] == "transform"],
                         ids=lambda i: i.key)
def test_transform_references_are_right(item) -> None:
    assert item.reference == transform(item.metadata["check"]["op"], item.metadata["check"]["arg"])


@pytest.mark.parametrize("item", [i for i in GENERAL if i.metadata["answer_type"] == "choice"],
                         ids=lambda i: i.key)
def test_choice_items_list_four_options_and_the_answer_is_one_of_them(item) -> None:
    letters = re.findall(r"^([A-D])\) ", item.prompt_text, re.MULTILINE)
    assert letters == ["A", "B", "C", "D"] and item.reference in letters


def test_choice_answers_are_spread_over_the_letters() -> None:
    letters = Counter(i.reference for i in GENERAL if i.metadata["answer_type"] == "choice")
    assert max(letters.values()) - min(letters.values()) <= 3


@pytest.mark.parametrize("item", [i for i in GENERAL if i.metadata["skill"] == "reading"],
                         ids=lambda i: i.key)
def test_reading_answers_are_spans_of_their_passage(item) -> None:
    passage = item.prompt_text.split("Passage: ", 1)[1].split("\n\nQuestion:", 1)[0]
    assert item.reference in passage
