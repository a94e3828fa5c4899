"""Chat completions from a base model or base+adapter with transformers, on the CPU or a GPU.

The evaluation stage calls this hundreds of times, so loaded models stay cached by (base, adapter).
Greedy at temperature 0; sampling with the request's seed otherwise.
"""

from __future__ import annotations

import threading
import time
import warnings
from pathlib import Path

from providers.base import Completion, Decoding, Message
from providers.local.loading import load_base, load_tokenizer, pick_device, with_adapter


class LocalGenerator:
    def __init__(self, device: str = "auto", max_cached: int = 2) -> None:
        self.device = device
        self.max_cached = max_cached
        self._cache: dict[tuple[str, str | None], tuple[object, object]] = {}
        # evaluation calls from a thread pool; one generate at a time uses every core
        self._lock = threading.Lock()

    def _load(self, base: str, adapter: Path | None) -> tuple[object, object]:
        key = (base, str(adapter) if adapter else None)
        if key not in self._cache:
            from transformers.utils import logging as hf_logging

            hf_logging.set_verbosity_error()  # no progress bars or deprecation chatter in the flow's output
            hf_logging.disable_progress_bar()
            if len(self._cache) >= self.max_cached:
                self._cache.pop(next(iter(self._cache)))
            device = pick_device(self.device)
            model = load_base(base, device=device)
            tokenizer = load_tokenizer(adapter if adapter else base)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", FutureWarning)
                self._cache[key] = (with_adapter(model, adapter) if adapter else model.eval(), tokenizer)
        return self._cache[key]

    def complete(self, model_id: str, base: str, adapter: Path | None, messages: list[Message],
                 params: Decoding) -> Completion:
        with self._lock:
            return self._complete(model_id, base, adapter, messages, params)

    def _complete(self, model_id: str, base: str, adapter: Path | None, messages: list[Message],
                  params: Decoding) -> Completion:
        import torch

        model, tokenizer = self._load(base, adapter)
        started = time.perf_counter()
        enc = tokenizer.apply_chat_template(messages, add_generation_prompt=True, return_tensors="pt",
                                            return_dict=True).to(model.device)
        sampling = params.temperature > 0
        if sampling and params.seed is not None:
            torch.manual_seed(params.seed)
        with torch.no_grad():
            out = model.generate(**enc, max_new_tokens=params.max_tokens, do_sample=sampling,
                                 temperature=params.temperature if sampling else None,
                                 top_p=params.top_p if sampling else None, top_k=None,
                                 eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id)
        new = out[0][enc["input_ids"].shape[1]:].tolist()
        stopped = bool(new) and new[-1] == tokenizer.eos_token_id
        text = tokenizer.decode(new, skip_special_tokens=True)
        for stop in params.stop or []:
            if stop in text:
                text, stopped = text[:text.index(stop)], True
        return Completion(text=text, model_id=model_id, finish_reason="stop" if stopped else "length",
                          prompt_tokens=int(enc["input_ids"].shape[1]), completion_tokens=len(new),
                          latency_ms=(time.perf_counter() - started) * 1000)
