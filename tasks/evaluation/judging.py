"""The judge model named in `eval.judge`, built like a provider and wrapped in the judge protocol.

Any chat model can judge: every training provider (openai, fake, ...) and chat-only adapters such as
anthropic. Judge answers go through their own ModelCaller: cached in the same store (a re-run asks the judge
nothing it already answered), under the judge's own rate limit.
"""

from __future__ import annotations

from providers.base import ChatModel, ModelRef
from tasks.connection import open_chat_model
from tasks.evaluation.calls import ModelCaller
from tasks.evaluation.config import JudgeConfig
from tasks.evaluation.graders import Judge
from tasks.evaluation.ratelimit import TokenBucket
from tasks.evaluation.store import EvalStore


def judge_target(config: JudgeConfig) -> str:
    return f"{config.provider}@{config.endpoint}" if config.endpoint else config.provider


def make_judge(config: JudgeConfig, model: ChatModel | None = None, *, store: EvalStore | None = None
               ) -> tuple[Judge, ModelCaller]:
    """The judge of `config` (on `model` when given, else built from the config) and its caller."""
    if model is None:
        model = open_chat_model(config.provider, config.options, config.endpoint, config.api_key_secret,
                                where="eval.judge.api_key_secret", endpoint_where="eval.judge.endpoint")
    limiter = TokenBucket.per_minute(config.requests_per_minute) if config.requests_per_minute else None
    caller = ModelCaller(model, judge_target(config), store=store, limiter=limiter)
    ref = ModelRef(provider=config.provider, model_id=config.model, base_model=config.model)
    return Judge(caller, ref, config.decoding, config.votes), caller
