"""Loading base models and adapters with transformers + PEFT (Unsloth or bitsandbytes when asked), merging an
adapter into its base, and checking that the merged model and base+adapter agree."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

from providers.errors import ConfigError

INSTALL_HINT = "pip install 'loraflow[local]'"


def require(module: str, why: str, hint: str = INSTALL_HINT) -> None:
    if importlib.util.find_spec(module) is None:
        raise ConfigError(f"{why} needs {module!r}, which is not installed: {hint}")


def pick_device(wanted: str) -> str:
    import torch

    if wanted == "cuda" and not torch.cuda.is_available():
        raise ConfigError("provider.options.device is cuda but torch sees no CUDA device "
                          f"(torch {torch.__version__}); use device: auto or cpu")
    if wanted == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return wanted


def use_unsloth(backend: str, device: str) -> bool:
    """Unsloth when asked for, or on auto when it is installed and there is a GPU."""
    installed = importlib.util.find_spec("unsloth") is not None
    if backend == "unsloth":
        if not installed:
            raise ConfigError("provider.options.backend is unsloth but unsloth is not installed; it pins "
                              "older transformers/trl, so install it in its own venv and set "
                              "provider.options.python")
        if device != "cuda":
            raise ConfigError("provider.options.backend: unsloth needs a CUDA GPU; use backend: transformers")
        return True
    return backend == "auto" and installed and device == "cuda"


def load_tokenizer(path: str | Path):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(path))
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    if not tokenizer.chat_template:
        raise ConfigError(f"the tokenizer of {path} has no chat template; pick a chat (instruct) base model")
    return tokenizer


def load_base(path: str | Path, *, device: str, dtype_name: str = "float32", load_in_4bit: bool = False):
    import torch
    from transformers import AutoModelForCausalLM

    dtype = getattr(torch, dtype_name)
    if load_in_4bit:
        require("bitsandbytes", "load_in_4bit", "pip install 'loraflow[local,qlora]'")
        from transformers import BitsAndBytesConfig

        quant = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4",
                                   bnb_4bit_use_double_quant=True, bnb_4bit_compute_dtype=torch.bfloat16)
        return AutoModelForCausalLM.from_pretrained(str(path), quantization_config=quant, device_map=device)
    return AutoModelForCausalLM.from_pretrained(str(path), dtype=dtype).to(device)


def load_unsloth(path: str | Path, *, max_length: int, load_in_4bit: bool):
    # a broken CUDA install must fail loudly instead of training on the CPU fallback (reference G6)
    os.environ.setdefault("UNSLOTH_DISABLE_CPU_FALLBACK", "1")
    from unsloth import FastLanguageModel

    return FastLanguageModel.from_pretrained(model_name=str(path), max_seq_length=max_length, dtype=None,
                                             load_in_4bit=load_in_4bit)


def with_adapter(base, adapter_dir: Path):
    from peft import PeftModel

    return PeftModel.from_pretrained(base, str(adapter_dir)).eval()


def merge_and_check(base_path: str, adapter_dir: Path, out_dir: Path, sample_ids: list[int]) -> float:
    """Save base+adapter merged into `out_dir` and return the largest logit difference between the merged
    model and base+adapter on `sample_ids` (fp32 on the CPU, so the check is about the merge, not kernels)."""
    import torch

    tokenizer = load_tokenizer(adapter_dir)
    tuned = with_adapter(load_base(base_path, device="cpu"), adapter_dir)
    ids = torch.tensor([sample_ids])
    with torch.no_grad():
        expected = tuned(input_ids=ids).logits
        merged = tuned.merge_and_unload()
        actual = merged(input_ids=ids).logits
    merged.save_pretrained(str(out_dir))
    tokenizer.save_pretrained(str(out_dir))
    return float((expected - actual).abs().max())
