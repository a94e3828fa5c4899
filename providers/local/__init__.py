"""The local backend: LoRA fine-tunes with transformers + PEFT on this machine (see adapter.py).

Importing it pulls in no torch: the trainer runs in a subprocess, inference imports torch on first use.
"""

from providers.local.adapter import LocalProvider
from providers.local.config import LocalOptions

__all__ = ["LocalOptions", "LocalProvider"]
