"""The `data:` section of the pipeline file."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from tasks.data.pii import PII_TYPES
from tasks.data.pii_numbers import DEFAULT_PHONE_REGIONS


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class PiiConfig(_Section):
    policy: Literal["scrub", "reject", "report"] = Field(
        default="scrub", description="scrub: replace with typed placeholders such as <EMAIL>; reject: "
                                     "every line with PII is an error; report: warn and keep the text")
    types: list[str] = Field(default_factory=lambda: list(PII_TYPES), description="which kinds to look for")
    phone_regions: list[str] = Field(
        default_factory=lambda: list(DEFAULT_PHONE_REGIONS),
        description="regions (ISO 3166 codes) whose national phone formats are recognised; numbers written "
                    "with + and a country code are found in every region")

    @field_validator("types")
    @classmethod
    def _known(cls, types: list[str]) -> list[str]:
        unknown = sorted(set(types) - set(PII_TYPES))
        if unknown:
            raise ValueError(f"unknown PII type {unknown[0]!r}; allowed values: {', '.join(PII_TYPES)}")
        return types

    @field_validator("phone_regions")
    @classmethod
    def _regions(cls, regions: list[str]) -> list[str]:
        import phonenumbers

        unknown = [region for region in regions if region not in phonenumbers.SUPPORTED_REGIONS]
        if unknown:
            raise ValueError(f"unknown phone region {unknown[0]!r}; use ISO 3166 region codes such as US, "
                             "GB, DE, IN")
        return list(dict.fromkeys(regions))


class DedupeConfig(_Section):
    exact: Literal["remove", "report"] = Field(default="remove",
                                               description="after normalising case and spaces")
    near: Literal["remove", "report", "off"] = "remove"
    threshold: float = Field(default=0.8, ge=0.5, le=1.0,
                             description="estimated Jaccard similarity of 5-byte shingles above which two "
                                         "examples are near-duplicates")
    leakage: Literal["remove", "report"] = Field(default="remove", description="training examples that near-"
                                                                                 "duplicate an eval example")


class DataConfig(_Section):
    path: Path = Field(description="chat JSONL in the OpenAI shape, relative to the pipeline file")
    eval_path: Path | None = Field(default=None,
                                   description="your own eval set (chat JSONL); when set, every input "
                                               "example trains and the split is skipped")
    eval_fraction: float = Field(default=0.1, gt=0, lt=1)
    split_salt: str = Field(default="loraflow", description="changing it reshuffles the split")
    stratify_by: str | None = Field(default=None,
                                    description="a key of each example's `metadata` object; every value "
                                                "gets its share of the eval split")
    min_train_examples: int = Field(default=10, ge=1)
    recipe: Literal["narrow", "moderate", "general", "safety"] | None = Field(
        default=None, description="what the fine-tune is for; sets the volume expectation (safety also "
                                  "checks refusal and normal examples)")
    pii: PiiConfig = Field(default_factory=PiiConfig)
    dedupe: DedupeConfig = Field(default_factory=DedupeConfig)
    workers: int | None = Field(default=None, ge=1,
                                description="processes that scan the file; default: every core (files under "
                                            "8 MiB, and compressed files, are scanned in one)")
    severity: dict[str, Literal["error", "warning", "off"]] = Field(
        default_factory=dict, description="override the severity of a diagnostic code, whatever the target; "
                                          "an example with a contract problem is skipped when its code is "
                                          "not an error")

    @field_validator("severity")
    @classmethod
    def _known_codes(cls, severity: dict[str, str]) -> dict[str, str]:
        from tasks.data.rules import known_codes

        codes = known_codes()
        for code in severity:
            if code not in codes:
                raise ValueError(f"unknown diagnostic code {code!r}; allowed values: "
                                 f"{', '.join(sorted(codes))}")
        return severity

    def resolved(self, base: Path) -> DataConfig:
        """The same section with `path` and `eval_path` made absolute against `base` (the pipeline's
        folder)."""
        update = {"path": _absolute(base / self.path)}
        if self.eval_path is not None:
            update["eval_path"] = _absolute(base / self.eval_path)
        return self.model_copy(update=update)


def _absolute(path: Path) -> Path:
    """`path` resolved; a symlink loop stays unresolved for the file check to name (resolve raises on it)."""
    try:
        return path.resolve()
    except (RuntimeError, OSError):
        return path.absolute()
