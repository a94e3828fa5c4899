"""Template parity: the prompt the serving side builds must be the tokens the model was trained on.

A LoRA learns to answer after the exact token sequence its chat template rendered in training, and to end
its turn with the template's end-of-turn token. If inference renders the prompt with another template (vLLM
uses the base model's unless told otherwise), or the trained answers never contained the token generation
stops at, the tuned model answers off-distribution or does not stop ("never stops" in the decision).
Checked on the training rows after training, for the local path: the prompt as the inference side renders it
(the adapter's tokenizer, which in-process evaluation and `loraflow serve-model` use) must be a prefix of the
training tokens, every trained answer must end with the stop token, and the base model's own template (what
a server uses without `--chat-template`) is compared.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from providers.base import Message
from providers.local.masking import IGNORE, encode_chat


def template_parity(trained_with: Any, serves_with: Any, base_template: str | None, path: Path, *,
                    limit: int = 32) -> dict[str, Any]:
    """Parity of `limit` training rows: the training tokenizer against the serving one; the problems by
    row number (1-based lines of `path`) and whether all is well."""
    mismatched, unstopped, checked = [], [], 0
    stop = serves_with.eos_token_id
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if checked >= limit or not line.strip():
            continue
        messages: list[Message] = json.loads(line)["messages"]
        answers = [i for i, m in enumerate(messages) if m.get("role") == "assistant"]
        if not answers:
            continue
        checked += 1
        encoded = encode_chat(trained_with, messages, 10**9)
        prompt = list(serves_with.apply_chat_template(messages[:answers[-1]], tokenize=True, return_dict=True,
                                                      add_generation_prompt=True)["input_ids"])
        if encoded.input_ids[:len(prompt)] != prompt:
            mismatched.append(number)
        learned = [t for t in encoded.labels[len(prompt):] if t != IGNORE]
        if not learned or learned[-1] != stop:
            unstopped.append(number)
    same_as_base = base_template is None or base_template == serves_with.chat_template
    return {"rows_checked": checked, "prompt_differs": mismatched, "answer_without_stop_token": unstopped,
            "stop_token": serves_with.eos_token, "base_template_matches": same_as_base,
            "ok": checked > 0 and not mismatched and not unstopped}


def describe(parity: dict[str, Any]) -> list[str]:
    """The problems, in words (none when all is well)."""
    problems = []
    if parity["prompt_differs"]:
        problems.append(f"the inference prompt differs from the trained tokens on rows "
                        f"{parity['prompt_differs'][:5]} (chat template mismatch)")
    if parity["answer_without_stop_token"]:
        problems.append(f"trained answers do not end with the stop token {parity['stop_token']!r} on rows "
                        f"{parity['answer_without_stop_token'][:5]}: the tuned model may not stop")
    if not parity["base_template_matches"]:
        problems.append("the base model's chat template differs from the one trained with: serve the adapter "
                        "with the adapter's template (loraflow serve-model passes its chat_template.jinja; a "
                        "server started by hand needs --chat-template)")
    return problems
