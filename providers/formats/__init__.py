"""Each provider's training-file format, as pure functions over one OpenAI-shape chat example.

`training_format(provider, model)` picks the format a provider reads for a base model. Vendor rules and
words stay in the vendor's module; this package imports no SDK, no Prefect and nothing from tasks/.
"""

from __future__ import annotations

import importlib

from providers.errors import ConfigError
from providers.formats.chat import Example, FormatProblem, Severity, TrainingFormat

__all__ = ["FORMAT_MODULES", "Example", "FormatProblem", "Severity", "TrainingFormat", "all_codes",
           "training_format"]

FORMAT_MODULES = {
    "openai": "providers.formats.openai",
    "fake": "providers.formats.openai",
    "local": "providers.formats.openai",
    "together": "providers.formats.together",
    "bedrock": "providers.formats.bedrock",
    "vertex": "providers.formats.vertex",
}


def training_format(provider: str, model: str) -> TrainingFormat:
    """The format `provider` reads for `model`; ConfigError for a provider without a known format."""
    module = FORMAT_MODULES.get(provider)
    if module is None:
        raise ConfigError(f"no training format for provider {provider!r}; allowed values: "
                          f"{', '.join(sorted(FORMAT_MODULES))}")
    return importlib.import_module(module).format_for(model)


def all_codes() -> frozenset[str]:
    """Every problem code any format can report."""
    codes: set[str] = set()
    for module in set(FORMAT_MODULES.values()):
        loaded = importlib.import_module(module)
        for value in vars(loaded).values():
            if isinstance(value, TrainingFormat):
                codes |= value.codes
    return frozenset(codes)
