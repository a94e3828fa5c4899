"""PII and secret detection, with scrubbing to typed placeholders such as <EMAIL>.

One combined pattern finds every candidate in a single pass (RE2 when `google-re2` is installed: a
linear-time automaton, several times faster than `re` on long texts; the same pattern runs on `re`
otherwise). Checksums, libraries and the words around a number then confirm the candidates: IBANs pass
ISO 13616 mod-97, IPv6 addresses parse with `ipaddress`, and runs of digits are judged by
tasks.data.pii_numbers (IPv4 unless a version, cards by Luhn or by card words, phone numbers for a list
of regions, SSNs). Findings carry the type, the span and the rule that fired, never the text, so nothing
downstream can print the PII.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable
from dataclasses import dataclass

from tasks.data.pii_numbers import DEFAULT_PHONE_REGIONS, PhoneRegions, luhn, number_kind

try:
    import re2 as _engine
except ImportError:  # pragma: no cover - the same pattern, slower
    _engine = re

PII_TYPES = ("EMAIL", "PHONE", "PAYMENT_CARD", "IBAN", "US_SSN", "IP_ADDRESS", "OPENAI_KEY", "ANTHROPIC_KEY",
             "AWS_ACCESS_KEY", "GITHUB_TOKEN", "SLACK_TOKEN", "JWT", "PRIVATE_KEY")

# leftmost-first: secrets and emails before bare numbers, so "4155550132@x.io" is one email
_CANDIDATES = _engine.compile("|".join([  # noqa: FLY002
    r"(?P<key>-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----)",
    r"(?P<anthropic>sk-ant-[A-Za-z0-9_-]{20,})",
    r"(?P<openai>sk-(?:proj-|svcacct-|admin-)?[A-Za-z0-9_-]{20,})",
    r"(?P<aws>\b(?:AKIA|ASIA|ABIA|ACCA)[A-Z0-9]{16}\b)",
    r"(?P<github>\bgh[pousr]_[A-Za-z0-9]{36,255}\b|\bgithub_pat_[A-Za-z0-9_]{22,255}\b)",
    r"(?P<slack>\bxox[abposr]-[A-Za-z0-9-]{10,})",
    r"(?P<jwt>\beyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]*)",
    (r"(?P<email>[A-Za-z0-9][A-Za-z0-9._%+'-]*"
     r"@(?:[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?\.)+[A-Za-z]{2,24}\b)"),
    r"(?P<iban>\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,3})?\b)",
    r"(?P<ipv6>(?:[0-9A-Fa-f]{0,4}:){2,7}[0-9A-Fa-f]{0,4})",
    r"(?P<number>[+(]?\d[\d ().-]{5,24}\d)",
]))
# the same alternatives without groups: a plain scan (DFA) answers "anything here?" fastest
_ANY = _engine.compile(re.sub(r"\(\?P<\w+>", "(?:", _CANDIDATES.pattern))
_ANY_BYTES = _engine.compile(_ANY.pattern.encode())
_GROUP_TYPE = {"key": "PRIVATE_KEY", "anthropic": "ANTHROPIC_KEY", "openai": "OPENAI_KEY",
               "aws": "AWS_ACCESS_KEY", "github": "GITHUB_TOKEN", "slack": "SLACK_TOKEN", "jwt": "JWT",
               "email": "EMAIL", "iban": "IBAN", "ipv6": "IP_ADDRESS"}
_KEY_END = re.compile(r"-----END [A-Z0-9 ]*PRIVATE KEY-----")
__all__ = ["PII_TYPES", "PiiMatch", "PiiScanner", "iban_valid", "luhn", "number_kind"]


@dataclass(frozen=True)
class PiiMatch:
    """A finding: its type, its span in the text, and the rule that fired (see tasks.data.pii_numbers)."""

    type: str
    start: int
    end: int
    rule: str


class PiiScanner:
    """Finds the configured PII types in text; `scrub` replaces each finding with `<TYPE>`. Phone numbers
    in national format are looked for in `phone_regions` (international ones, with +, in every region)."""

    def __init__(self, types: Iterable[str] = PII_TYPES,
                 phone_regions: Iterable[str] = DEFAULT_PHONE_REGIONS) -> None:
        self.types = frozenset(types)
        self.phones = PhoneRegions(phone_regions)

    def find(self, text: str) -> list[PiiMatch]:
        """Non-overlapping findings in text order."""
        if not self.types:
            return []
        found = []
        for candidate in _CANDIDATES.finditer(text):
            match = _confirm(candidate.lastgroup, text, candidate.start(), candidate.end(), self.phones)
            if match is not None and match.type in self.types:
                found.append(match)
        return found

    def may_contain(self, text: str | bytes) -> bool:
        """A quick pass over text, or a raw JSON line: False means `find` would return nothing on it."""
        if not self.types:
            return False
        return (_ANY_BYTES if isinstance(text, bytes) else _ANY).search(text) is not None

    def scrub(self, text: str) -> tuple[str, list[PiiMatch]]:
        matches = self.find(text)
        if not matches:
            return text, matches
        pieces, cursor = [], 0
        for match in matches:
            pieces += [text[cursor:match.start], f"<{match.type}>"]
            cursor = match.end
        pieces.append(text[cursor:])
        return "".join(pieces), matches


def _confirm(group: str, text: str, start: int, end: int, phones: PhoneRegions) -> PiiMatch | None:
    before = text[start - 1] if start else " "
    if group == "number":
        following, next_after = text[end:end + 1], text[end + 1:end + 2]
        # part of a longer token (an id, a version, a negative number) is not a number on its own
        if _glued(before) or before in ("_", ".", "+", "-") or _glued(following) or following in ("_", "-"):
            return None
        if following == "." and next_after.isdigit():
            return None
        kind = number_kind(text[start:end], text[max(0, start - 60):start], text[end:end + 30], phones)
        return PiiMatch(kind.type, start, end, kind.rule) if kind else None
    if group in ("openai", "anthropic", "aws") and (before.isalnum() or before in ("_", "-")):
        return None
    if group == "key":
        closing = _KEY_END.search(text, end)
        return PiiMatch("PRIVATE_KEY", start, closing.end() if closing else len(text), "private_key")
    if group == "iban":
        return _iban(text, start, end)
    if group == "ipv6":
        return _ipv6(text, start, end, before)
    return PiiMatch(_GROUP_TYPE[group], start, end, group)


def _glued(char: str) -> bool:
    """A letter or digit that makes a number part of a word; CJK and Hangul text runs into numbers
    without spaces, so those characters do not."""
    return char.isalnum() and ord(char) < 0x2E80


def iban_valid(candidate: str) -> bool:
    compact = candidate.replace(" ", "")
    if not 15 <= len(compact) <= 34:
        return False
    rearranged = compact[4:] + compact[:4]
    return int("".join(str(int(c, 36)) for c in rearranged)) % 97 == 1


def _iban(text: str, start: int, end: int) -> PiiMatch | None:
    value = text[start:end]
    # a trailing word in capitals can be swallowed by the optional groups: retry without it
    while not iban_valid(value) and " " in value:
        value = value.rsplit(" ", 1)[0]
    return PiiMatch("IBAN", start, start + len(value), "iban_mod97") if iban_valid(value) else None


def _ipv6(text: str, start: int, end: int, before: str) -> PiiMatch | None:
    if before.isalnum() or before in (":", ".", "_") or text[end:end + 1].isalnum():
        return None
    try:
        ipaddress.IPv6Address(text[start:end])
    except ValueError:
        return None
    return PiiMatch("IP_ADDRESS", start, end, "ipv6")
