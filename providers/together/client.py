"""The Together client's options and the one translation of what the SDK (and httpx under it) raises."""

from __future__ import annotations

from contextlib import AbstractContextManager
from typing import Literal

import httpx
import together
from pydantic import BaseModel, ConfigDict, Field
from together.lib.types.error import FileTypeError

from providers import hosted

NAME = "together"


class TogetherOptions(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    api_key_env: str = Field(default="TOGETHER_API_KEY",
                             description="environment variable holding the API key")
    max_retries: int = Field(default=2, ge=0, le=10,
                             description="SDK-level retries per request (never create)")
    timeout_s: float = Field(default=60, gt=0)
    file_poll_interval_s: float = Field(default=2.0, gt=0)
    file_wait_s: float = Field(default=1800, gt=0)
    live_limits: bool = Field(default=True, description="check_spec asks Together's limits endpoint; "
                                                        "the catalog when off or unreachable")
    n_checkpoints: int = Field(default=1, ge=1)
    n_evals: int = Field(default=0, ge=0, description="evaluations on the validation file during training")
    warmup_ratio: float = Field(default=0.0, ge=0, le=1)
    lr_scheduler: Literal["cosine", "linear"] = "cosine"
    train_on_inputs: bool | Literal["auto"] = Field(default="auto",
                                                    description="SFT only: train on user turns")
    dpo_beta: float | None = Field(default=None, gt=0, description="DPO only: the preference strength")
    endpoint_hardware: str = Field(default="1x_nvidia_h100_80gb_sxm",
                                   description="the dedicated endpoint's hardware, where the model needs one "
                                               "(the catalog's hosting price assumes H100s)")
    endpoint_max_replicas: int = Field(default=1, ge=1)
    serve_wait_s: float = Field(default=1800, gt=0)
    serve_poll_s: float = Field(default=15, gt=0)


def translated() -> AbstractContextManager[None]:
    """Raise the error-tree class for whatever the SDK raises inside."""
    # the presigned PUT and streamed downloads go through httpx directly, so its errors arrive unwrapped
    return hosted.translated(NAME, together, refusals=(FileTypeError,), transport=(httpx.TransportError,))
