"""What a run of digits is, judged by its shape and the words around it: an IP address, a US SSN, a
payment card, a phone number, or nothing.

The context is the text just before the number (up to 40 characters, not across a sentence end) and
just after it (up to 25). Rules, each named in the finding:

- `ipv4`: four dotted parts of at most 255, unless a version word comes before it (version, v, release,
  build, firmware, ... in several languages), a fifth part follows, it is a netmask, or a prefix length
  (`/24`) follows: then it names a network or a version, not a host.
- `us_ssn`: 3-2-4 digits outside the never-issued ranges.
- `card_luhn`: 13-19 digits in groups, a known card prefix (2-6) and a valid Luhn checksum, unless an
  identifier word (tracking, order, IMEI, ...) comes before it and no card word is near.
- `card_context`: 13-19 digits with a card word near ("card", "visa", "expiry", "cvv", "Karte", "tarjeta",
  "カード", ...): a possible card even when the checksum fails (a typo is still a card number).
- `phone_international`: a number written with + (or 00), a known country code and a possible length.
- `phone_<REGION>`: a number valid in the national format of one of `phone_regions` (the first that
  accepts it), unless an identifier word comes before it, it has the shape of a date, a year range or a
  decimal, or it is a bare run of eight or more digits with no phone word near (bare runs are mostly ids).

Regions are tried cheaply first: a region's possible lengths and general pattern (from libphonenumber's
metadata, compiled once) rule out most of them before `phonenumbers.parse` is called.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache

import phonenumbers

# a broad international default: North America, Europe, Latin America, Asia-Pacific, Africa, Middle East
DEFAULT_PHONE_REGIONS = (
    "US", "CA", "GB", "IE", "AU", "NZ", "IN", "SG", "ZA", "DE", "AT", "CH", "FR", "BE", "NL", "LU", "ES",
    "PT", "IT", "PL", "CZ", "SE", "NO", "DK", "FI", "GR", "HU", "RO", "UA", "TR", "IL", "AE", "SA", "EG",
    "NG", "KE", "BR", "MX", "AR", "CO", "CL", "PE", "JP", "KR", "CN", "HK", "TW", "PH", "ID", "MY", "TH",
    "VN", "PK",
)
_BEFORE, _AFTER = 40, 25

_VERSION = re.compile(
    r"(?:\b(?:version|versions?|versión|versão|versione|versie|wersja|verze|ver|rel|release|build|firmware|"
    r"patch|update|upgrade|rc|v)\b\.?|バージョン|版本|버전)\s*[:#]?\s*(?:to\s+|from\s+|auf\s+|à\s+)?$",
    re.IGNORECASE)
_CARD_WORDS = re.compile(
    r"\b(?:card|cards|cc#?|visa|mastercard|master card|amex|american express|discover|maestro|jcb|diners|"
    r"unionpay|credit|debit|expiry|expires|expiration|exp|cvv|cvc|valid thru|karte|kreditkarte|kartennummer|"
    r"ablauf|ablaufdatum|gültig|carte|bancaire|tarjeta|cartão|carta|scadenza|validade|kaart|karty|karta|"
    r"kort|kortnummer|kart|kartı)\b|カード|信用卡|银行卡|卡号|카드", re.IGNORECASE)
_ID_WORDS = re.compile(
    r"\b(?:order|orders|tracking|track|shipment|parcel|package|waybill|awb|invoice|receipt|ref|reference|"
    r"confirmation|booking|reservation|ticket|case|claim|account|acct|routing|sort code|isbn|issn|imei|"
    r"serial|s/n|sku|part|model|item|article|product|barcode|ean|upc|gtin|lot|batch|mrn|member|customer|"
    r"employee|badge|id|pin|password|passcode|code|coupon|voucher|transaction|txn|policy|passport|license|"
    r"licence|tax|vat|social security|national insurance|hash|sha|md5|uuid|digest|commit|"
    r"bestellung|bestellnummer|sendungsnummer|rechnung|kundennummer|artikelnummer|steuer|steuer-id|"
    r"commande|facture|colis|suivi|référence|pedido|factura|envío|seguimiento|referencia|ordine|fattura|"
    r"spedizione|codice|encomenda|fatura|rastreio|cpf|bestel|bestelnummer|factuur|zamówienie|faktura|"
    r"ordernummer|beställning|sipariş)\b|注文|订单|单号|快递|주문|ऑर्डर", re.IGNORECASE)
_PHONE_WORDS = re.compile(
    r"\b(?:phone|telephone|tel|mobile|cell|cellphone|call|calling|ring|dial|fax|sms|text|whatsapp|signal|"
    r"reach|contact|hotline|helpline|number|telefon|telefono|teléfono|téléphone|handy|mobil|móvil|celular|"
    r"cellulare|llama|llámame|appelez|appeler|joindre|bel|zadzwoń|ring|ligue|chiama|chiamami|numara)\b|"
    r"電話|电话|手机|携帯|전화|फ़ोन|कॉल", re.IGNORECASE)
_DATE = re.compile(r"(?:19|20)\d\d([-./])\d{1,2}\1\d{1,2}|\d{1,2}([-./])\d{1,2}\2(?:19|20)\d\d|"
                   r"(?:19|20)\d\d-(?:19|20)\d\d")
_DECIMAL = re.compile(r"\d+\.\d+")
_VERSION_SHAPE = re.compile(r"(?=(?:.*\.)?\d(?:\.|$))\d+(?:\.\d+)+")
_SSN = re.compile(r"(\d{3})([- ])(\d{2})\2(\d{4})")
_IPV4 = re.compile(r"\d{1,3}(?:\.\d{1,3}){3}")
_CARD = re.compile(r"\d[\d -]{11,22}\d")
_NETMASK_OCTETS = frozenset({"0", "128", "192", "224", "240", "248", "252", "254", "255"})


@dataclass(frozen=True)
class NumberKind:
    type: str
    rule: str


def number_kind(candidate: str, before: str = "", after: str = "",
                regions: PhoneRegions | None = None) -> NumberKind | None:
    """What `candidate` (a run of digits and separators) is, given the text `before` and `after` it."""
    before = _clause(before[-_BEFORE:])
    if _IPV4.fullmatch(candidate):
        return _ipv4(candidate, before, after)
    ssn = _SSN.fullmatch(candidate)
    if ssn:
        area, group, serial = ssn.group(1), ssn.group(3), ssn.group(4)
        valid = area not in ("000", "666") and area[0] != "9" and group != "00" and serial != "0000"
        return NumberKind("US_SSN", "us_ssn") if valid else None
    digits = "".join(c for c in candidate if c.isdigit())
    if 13 <= len(digits) <= 19 and _CARD.fullmatch(candidate):
        card = _card(digits, before, after[:_AFTER])
        if card is not None:
            return card
    if 7 <= len(digits) <= 15:
        return _phone(candidate, digits, before, after[:_AFTER], regions or PhoneRegions(("US",)))
    return None


def _clause(before: str) -> str:
    """The end of `before` that belongs to the number's sentence."""
    cut = max(before.rfind(". "), before.rfind("! "), before.rfind("? "), before.rfind("\n"),
              before.rfind("。"))
    return before[cut + 1:] if cut >= 0 else before


def _ipv4(candidate: str, before: str, after: str) -> NumberKind | None:
    try:
        ipaddress.IPv4Address(candidate)
    except ValueError:
        return None
    if _VERSION.search(before) or after[:1] == "/" and after[1:2].isdigit():
        return None
    octets = candidate.split(".")
    if octets[0] == "255" and all(o in _NETMASK_OCTETS for o in octets):
        return None
    return NumberKind("IP_ADDRESS", "ipv4")


def _card(digits: str, before: str, after: str) -> NumberKind | None:
    near_card = _CARD_WORDS.search(before) or _CARD_WORDS.search(after)
    if near_card:
        return NumberKind("PAYMENT_CARD", "card_luhn" if luhn(digits) else "card_context")
    if digits[0] in "23456" and luhn(digits) and not _ID_WORDS.search(before):
        return NumberKind("PAYMENT_CARD", "card_luhn")
    return None


def _phone(candidate: str, digits: str, before: str, after: str, regions: PhoneRegions) -> NumberKind | None:
    if candidate.startswith(("+", "00")):
        return NumberKind("PHONE", "phone_international") if regions.international(candidate) else None
    if _ID_WORDS.search(before) or _DATE.fullmatch(candidate) or _DECIMAL.fullmatch(candidate):
        return None
    if _VERSION_SHAPE.fullmatch(candidate):
        return None  # dotted with a one-digit part: a version (120.0.6099.109), not a phone
    if candidate.isdigit() and len(digits) >= 8 and not (_PHONE_WORDS.search(before)
                                                         or _PHONE_WORDS.search(after)):
        return None
    region = regions.national(candidate, digits)
    return NumberKind("PHONE", f"phone_{region}") if region else None


class PhoneRegions:
    """Phone validity for a list of regions: international numbers, and national ones region by region
    (the first region that accepts a number names it), with libphonenumber's metadata as a quick filter."""

    def __init__(self, regions: Iterable[str]) -> None:
        self.regions = tuple(regions)
        self._filters = [_region_filter(region) for region in self.regions]
        self.national = lru_cache(maxsize=4096)(self._national)
        self.international = lru_cache(maxsize=4096)(self._international)

    def _national(self, candidate: str, digits: str) -> str | None:
        for region, (prefix, lengths, pattern) in zip(self.regions, self._filters, strict=True):
            stripped = digits[len(prefix):] if prefix and digits.startswith(prefix) else digits
            if not any(len(n) in lengths and pattern.fullmatch(n) for n in {digits, stripped}):
                continue
            try:
                number = phonenumbers.parse(candidate, region)
            except phonenumbers.NumberParseException:
                continue
            if phonenumbers.is_valid_number(number):
                return region
        return None

    @staticmethod
    def _international(candidate: str) -> bool:
        """A known country code and a length its numbers can have: written with + (or 00), that is a
        phone number even when its digits fall outside the assigned ranges (a fictional 555 number is
        still a number)."""
        written = "+" + candidate[2:] if candidate.startswith("00") else candidate
        try:
            return phonenumbers.is_possible_number(phonenumbers.parse(written, None))
        except phonenumbers.NumberParseException:
            return False


@lru_cache(maxsize=512)
def _region_filter(region: str) -> tuple[str, frozenset[int], re.Pattern[str]]:
    metadata = phonenumbers.PhoneMetadata.metadata_for_region(region)
    general = metadata.general_desc
    return (metadata.national_prefix or "", frozenset(general.possible_length or ()),
            re.compile(general.national_number_pattern or r"\d+"))


def luhn(digits: str) -> bool:
    total = 0
    for index, char in enumerate(reversed(digits)):
        value = int(char) * (2 if index % 2 else 1)
        total += value - 9 if value > 9 else value
    return total % 10 == 0
