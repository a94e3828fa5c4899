"""The local backend: LoRA fine-tunes with transformers + PEFT on this machine (see provider.py).

Importing it pulls in no torch: the trainer runs in a subprocess, inference imports torch on first use.
"""

from providers.local.config import LocalOptions
from providers.local.adapter import LocalProvider

__all__ = ["LocalOptions", "LocalProvider"]
