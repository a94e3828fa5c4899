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
    kinds = {text: number_kind(text) for text in ("192.168.1.20", "999.10.1.1", "123-45-6789", "666-45-6789",
                                                   "4111 1111 1111 1111", "(415) 555-0132", "2024-05-01")}
    assert {text: kind and (kind.type, kind.rule) for text, kind in kinds.items()} == {
        "192.168.1.20": ("IP_ADDRESS", "ipv4"), "999.10.1.1": None, "123-45-6789": ("US_SSN", "us_ssn"),
        "666-45-6789": None, "4111 1111 1111 1111": ("PAYMENT_CARD", "card_luhn"),
        "(415) 555-0132": ("PHONE", "phone_US"), "2024-05-01": None}


def rules(text: str, scanner: PiiScanner | None = None) -> list[tuple[str, str, str]]:
    return [(m.type, m.rule, text[m.start:m.end]) for m in (scanner or PiiScanner()).find(text)]


def test_phone_numbers_in_national_format_are_found_for_each_configured_region() -> None:
    assert rules("Reach our London office on 020 7946 0958.") == [("PHONE", "phone_GB", "020 7946 0958")]
    # the first configured region that accepts the number names the rule
    assert rules("Ruf mich an: 0171 2345678", PiiScanner(phone_regions=["US", "DE"])) == [
        ("PHONE", "phone_DE", "0171 2345678")]
    assert rules("Whatsapp +44 7700 900456") == [("PHONE", "phone_international", "+44 7700 900456")]
    assert rules("请拨打010-6552 9988联系我们")[0][::2] == ("PHONE", "010-6552 9988")  # CJK runs into it
    us_only = PiiScanner(phone_regions=["US"])
    assert rules("Reach our London office on 020 7946 0958.", us_only) == []
    assert rules("call (415) 555-0132", us_only) == [("PHONE", "phone_US", "(415) 555-0132")]


def test_numbers_that_only_look_like_phones_are_left_alone() -> None:
    for text in ("Your order #114-3941689-8772232 has shipped.", "ISBN 978-0-306-40615-7, second edition",
                 "The meeting moved to 2024-03-15.", "Chrome 120.0.6099.109 fixed it.",
                 "Tracking 7489 2341 9087 arrives Thursday.", "The total was 1234567.89 with VAT.",
                 "Employee ID 00471823", "It grew between 2019-2023."):
        assert rules(text) == [], text


def test_versions_and_networks_are_not_ip_addresses() -> None:
    assert rules("Version 4.1.1.2 of the app crashes.") == []
    for text in ("Update to v 2.10.3.7 first", "Build 10.0.19045.3803", "release 3.2.0.1 notes",
                 "version 1.2.3.4.5 tag", "mask 255.255.255.0", "the prefix 104.16.0.0/13"):
        assert rules(text) == [], text
    assert rules("The DNS server is 8.8.8.8.") == [("IP_ADDRESS", "ipv4", "8.8.8.8")]


def test_a_card_number_near_card_words_is_a_possible_card_even_when_luhn_fails() -> None:
    assert rules("my card is 4532 7153 3790 4410, exp 09/27") == [
        ("PAYMENT_CARD", "card_context", "4532 7153 3790 4410")]
    assert rules("Tarjeta: 4000 0566 5566 5556") == [("PAYMENT_CARD", "card_luhn", "4000 0566 5566 5556")]
    assert rules("reference 4532 7153 3790 4410") == []  # no card word, fails Luhn
    assert rules("tracking 4111 1111 1111 1111") == []  # an identifier word, no card word


def test_phone_regions_are_checked() -> None:
    assert PiiConfig(phone_regions=["GB", "GB", "DE"]).phone_regions == ["GB", "DE"]
    with pytest.raises(ValueError, match="unknown phone region 'XX'; use ISO 3166 region codes"):
        PiiConfig(phone_regions=["XX"])


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
            "message": "contains EMAIL x1, PAYMENT_CARD x1 (rules: card_luhn, email); data.pii.policy is "
                       "reject"} in rejected
    reported = check_file(DataConfig(path=source, pii=PiiConfig(policy="report")),
                          OPENAI)["diagnostics"]["kept"]
    assert {"line": 2, "code": "pii_found", "severity": "warning",
            "message": "contains EMAIL x1, PAYMENT_CARD x1 (rules: card_luhn, email); kept as is "
                       "(data.pii.policy is report)"} in reported
    assert all(SECRET not in json.dumps(d) for d in rejected + reported)


def test_unknown_pii_type_is_refused_with_the_allowed_values() -> None:
    with pytest.raises(ValueError, match="unknown PII type 'NAME'; allowed values: EMAIL, PHONE"):
        PiiConfig(types=["NAME"])
