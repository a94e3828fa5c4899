"""PII detection measured on a labeled corpus, and the scrub / reject / report policies end to end."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from tasks.data.config import DataConfig, PiiConfig
from tasks.data.pii import PII_TYPES, PiiScanner, iban_valid, luhn, number_kind
from tasks.data.stage import check_file, prepare
from tasks.rundir import RunDir
from tests.conftest import write_jsonl
from tests.tasks.data.helpers import OPENAI, distinct, line

CORPUS = Path(__file__).with_name("pii_corpus.jsonl")


def score(subset: str | None = None) -> tuple[float, float, Counter]:
    scanner, outcome = PiiScanner(), Counter()
    for raw in CORPUS.read_text(encoding="utf-8").splitlines():
        record = json.loads(raw)
        if subset and record.get("set") != subset:
            continue
        text = record["text"]
        found = {(m.type, text[m.start:m.end]) for m in scanner.find(text)}
        wanted = {(p["type"], p["value"]) for p in record["pii"]}
        outcome.update(tp=len(found & wanted), fp=len(found - wanted), fn=len(wanted - found))
    return (outcome["tp"] / (outcome["tp"] + outcome["fp"]), outcome["tp"] / (outcome["tp"] + outcome["fn"]),
            outcome)


def test_precision_and_recall_on_the_labeled_corpus(record_property: pytest.RecordProperty) -> None:
    precision, recall, counts = score()
    held_precision, held_recall, held = score("heldout")
    print(f"\nPII corpus: precision {precision:.3f} recall {recall:.3f} ({dict(counts)}); "
          f"held-out part: precision {held_precision:.3f} recall {held_recall:.3f} ({dict(held)})")
    record_property("pii_precision", round(precision, 3))
    record_property("pii_recall", round(recall, 3))
    assert precision >= 0.95
    assert recall >= 0.95
    assert {json.loads(r)["pii"][0]["type"] for r in CORPUS.read_text().splitlines()
            if json.loads(r)["pii"]} == set(PII_TYPES)


def test_checksums_and_number_kinds() -> None:
    assert luhn("4111111111111111") and not luhn("4111111111111112")
    assert iban_valid("DE89 3704 0044 0532 0130 00") and not iban_valid("DE89 3704 0044 0532 0130 01")
    assert number_kind("192.168.1.20") == "IP_ADDRESS"
    assert number_kind("999.10.1.1") is None
    assert number_kind("123-45-6789") == "US_SSN"
    assert number_kind("666-45-6789") is None
    assert number_kind("4111 1111 1111 1111") == "PAYMENT_CARD"
    assert number_kind("(415) 555-0132") == "PHONE"
    assert number_kind("2024-05-01") is None


def test_scrub_replaces_each_finding_with_a_typed_placeholder() -> None:
    text, found = PiiScanner().scrub("Mail jane@example.com or call (415) 555-0132, key " + "AKIA"
                                     + "IOSFODNN7EXAMPLE.")
    assert text == "Mail <EMAIL> or call <PHONE>, key <AWS_ACCESS_KEY>."
    assert [m.type for m in found] == ["EMAIL", "PHONE", "AWS_ACCESS_KEY"]
    assert PiiScanner(["PHONE"]).scrub("jane@example.com (415) 555-0132")[0] == "jane@example.com <PHONE>"


SECRET = "jane.doe@example.com"


def test_scrub_policy_writes_placeholders_and_reports_counts_never_the_text(tmp_path: Path) -> None:
    source = write_jsonl(tmp_path / "in.jsonl", [*distinct(30), line(f"write to {SECRET} please", "- Reply")])
    run = RunDir.create(tmp_path / "runs", "p", "c" * 64)
    dataset = prepare(DataConfig(path=source, eval_fraction=0.1), run, OPENAI)
    prepared = dataset.train_path.read_text() + dataset.eval_path.read_text()
    assert SECRET not in prepared and "write to <EMAIL> please" in prepared
    report = json.loads((run.root / "report.json").read_text())
    assert report["pii"] == {"policy": "scrub", "examples": 1, "counts": {"EMAIL": 1}, "rules": {"email": 1},
                             "lines": {"EMAIL": [31]}}
    for name in ("report.json", "report.md", "manifest.json"):
        assert SECRET not in (run.root / name).read_text()
    assert "**PII** (scrub, 1 example): EMAIL 1 (lines 31)" in (run.root / "report.md").read_text()


def test_reject_policy_makes_each_line_an_error_and_report_policy_a_warning(tmp_path: Path) -> None:
    source = write_jsonl(tmp_path / "in.jsonl", [line(), line(f"I am {SECRET}, card 4111 1111 1111 1111")])
    rejected = check_file(DataConfig(path=source, pii=PiiConfig(policy="reject")),
                          OPENAI)["diagnostics"]["kept"]
    assert {"line": 2, "code": "pii_rejected", "severity": "error",
            "message": "contains EMAIL x1, PAYMENT_CARD x1 (rules: email, payment_card); data.pii.policy is "
                       "reject"} in rejected
    reported = check_file(DataConfig(path=source, pii=PiiConfig(policy="report")),
                          OPENAI)["diagnostics"]["kept"]
    assert {"line": 2, "code": "pii_found", "severity": "warning",
            "message": "contains EMAIL x1, PAYMENT_CARD x1 (rules: email, payment_card); kept as is "
                       "(data.pii.policy is report)"} in reported
    assert all(SECRET not in json.dumps(d) for d in rejected + reported)


def test_unknown_pii_type_is_refused_with_the_allowed_values() -> None:
    with pytest.raises(ValueError, match="unknown PII type 'NAME'; allowed values: EMAIL, PHONE"):
        PiiConfig(types=["NAME"])
