from __future__ import annotations

import subprocess
import sys

import pytest

from providers import PROVIDERS, get_provider, provider_class
from providers.errors import ConfigError
from providers.fake import FakeProvider


def test_importing_providers_pulls_in_no_vendor_sdk() -> None:
    code = "import providers, sys; print(sorted(m for m in ('openai', 'boto3', 'torch') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_unknown_provider_lists_the_allowed_names() -> None:
    with pytest.raises(ConfigError, match=r"unknown provider 'sagemaker'; allowed values: azure_openai, "
                                          r"bedrock, fake, local, openai, together, vertex"):
        provider_class("sagemaker")


def test_a_missing_sdk_gives_the_install_hint(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delitem(sys.modules, "providers.openai.adapter", raising=False)
    monkeypatch.setitem(sys.modules, "openai", None)
    with pytest.raises(ConfigError, match=r"pip install 'loraflow\[openai\]'"):
        provider_class("openai")


def test_get_provider_validates_options() -> None:
    assert isinstance(get_provider("fake", {"total_steps": 3}), FakeProvider)
    with pytest.raises(ConfigError, match="provider.options.states.0: got 'exploding'"):
        get_provider("fake", {"states": ["exploding"]})
    assert set(PROVIDERS) >= {"fake", "openai"}
