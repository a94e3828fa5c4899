"""The Vertex clients of one provider: its options, the google-genai and Cloud Storage clients, and the one
translation of what they raise into the error tree."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Literal

import httpx
import requests
from google import genai
from google.api_core import exceptions as gcs_errors
from google.auth import exceptions as auth_errors
from google.cloud import storage
from google.genai import errors as genai_errors
from google.genai import types
from google.oauth2.credentials import Credentials
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from providers.errors import (
    ConfigError,
    PermanentProviderError,
    TransientProviderError,
    UnexpectedProviderResponse,
)

NAME = "vertex"
EMULATOR_PROJECT = "loraflow-emulator"
_RETRIED_STATUSES = (408, 429, 500, 502, 503, 504)


def _http_transport_errors() -> tuple[type[Exception], ...]:
    # google-genai 3 runs on httpx2 when it is installed and on httpx otherwise: both stacks' network errors
    try:
        import httpx2
    except ImportError:
        return (httpx.TransportError,)
    return (httpx.TransportError, httpx2.TransportError)


_TRANSPORT_ERRORS = (*_http_transport_errors(), requests.ConnectionError, requests.Timeout,
                     requests.exceptions.ChunkedEncodingError, auth_errors.TransportError)


class VertexOptions(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    project: str | None = Field(default=None,
                                description="Google Cloud project; GOOGLE_CLOUD_PROJECT when unset")
    location: str = Field(default="us-central1", min_length=1)
    gcs_bucket: str | None = Field(default=None, description="bucket the training files go to")
    gcs_prefix: str = Field(default="loraflow", description="object name prefix inside the bucket")
    adapter_size: Literal[1, 2, 4, 8, 16, 32] | None = Field(
        default=None, description="LoRA rank Vertex trains; training.lora_r sets it too")
    learning_rate_multiplier: float | None = Field(default=None, gt=0)
    api_version: Literal["v1", "v1beta1"] = "v1beta1"
    retry_attempts: int = Field(default=5, ge=1, le=10,
                                description="attempts per request, the first included")
    retry_initial_delay_s: float = Field(default=1.0, ge=0)
    retry_max_delay_s: float = Field(default=60.0, ge=0)
    gcs_retry_timeout_s: float = Field(default=120.0, gt=0, description="how long Cloud Storage calls retry")
    timeout_s: float = Field(default=60, gt=0)


@contextmanager
def translated() -> Iterator[None]:
    """The one boundary where google-genai, Cloud Storage and transport errors become loraflow errors."""
    try:
        yield
    except genai_errors.APIError as exc:
        message = f"HTTP {exc.code} {exc.status or ''}: {exc.message or exc}".replace("  ", " ")
        if exc.code in _RETRIED_STATUSES:
            raise TransientProviderError(NAME, message, status_code=exc.code) from exc
        raise PermanentProviderError(NAME, message, status_code=exc.code) from exc
    except gcs_errors.RetryError as exc:
        raise TransientProviderError(NAME, f"Cloud Storage kept failing: {exc}") from exc
    except gcs_errors.GoogleAPICallError as exc:
        status = exc.code if isinstance(exc.code, int) else None
        if status in _RETRIED_STATUSES or (status or 0) >= 500:
            raise TransientProviderError(NAME, f"Cloud Storage HTTP {status}: {exc.message}",
                                         status_code=status) from exc
        raise PermanentProviderError(NAME, f"Cloud Storage HTTP {status}: {exc.message}",
                                     status_code=status) from exc
    except (auth_errors.RefreshError, auth_errors.DefaultCredentialsError) as exc:
        raise ConfigError(f"vertex provider: no usable Google credentials ({exc}); run `gcloud auth "
                          "application-default login` or set GOOGLE_APPLICATION_CREDENTIALS") from exc
    except _TRANSPORT_ERRORS as exc:
        raise TransientProviderError(NAME, f"connection failed: {exc}") from exc
    except json.JSONDecodeError as exc:
        # a torn or garbled body: asking again is safe, unlike a well-formed answer we do not understand
        raise TransientProviderError(NAME, f"response body was not JSON: {exc}") from exc
    except (ValidationError, ValueError, KeyError, IndexError, TypeError, AttributeError) as exc:
        raise UnexpectedProviderResponse(NAME, f"response not understood: {exc}") from exc


def retry_options(options: VertexOptions) -> types.HttpRetryOptions:
    """What google-genai retries (nothing by default): 408, 429 and 5xx, with exponential backoff."""
    return types.HttpRetryOptions(attempts=options.retry_attempts,
                                  initial_delay=options.retry_initial_delay_s,
                                  max_delay=options.retry_max_delay_s, exp_base=2, jitter=1,
                                  http_status_codes=list(_RETRIED_STATUSES))


def resolved(opts: VertexOptions, base_url: str | None) -> VertexOptions:
    """Options with the project and bucket filled in (the emulator's when talking to it); ConfigError if
    missing."""
    project = (opts.project or os.environ.get("GOOGLE_CLOUD_PROJECT")
               or (EMULATOR_PROJECT if base_url else None))
    bucket = opts.gcs_bucket or (EMULATOR_PROJECT if base_url else None)
    if not project:
        raise ConfigError("vertex provider: provider.options.project is required "
                          "(or set GOOGLE_CLOUD_PROJECT)")
    if not bucket:
        raise ConfigError("vertex provider: provider.options.gcs_bucket is required: training files go to "
                          "Cloud Storage before Vertex can tune on them")
    return opts.model_copy(update={"project": project, "gcs_bucket": bucket})


def clients(opts: VertexOptions, base_url: str | None,
            api_key: str | None) -> tuple[genai.Client, storage.Client]:
    """The google-genai and Cloud Storage clients; with `base_url` both talk to it with a fixed bearer
    token."""
    filled = resolved(opts, base_url)
    http = {"api_version": opts.api_version, "retry_options": retry_options(opts),
            "timeout": int(opts.timeout_s * 1000)}
    if base_url is None:
        if api_key is not None:
            raise ConfigError("vertex provider: Vertex authenticates with Application Default Credentials, "
                              "not an API key; remove provider.api_key_secret")
        client = genai.Client(vertexai=True, project=filled.project, location=opts.location,
                              http_options=types.HttpOptions(**http))
        return client, storage.Client(project=filled.project)
    # a token that never expires: neither client asks Google for one
    credentials = Credentials(token=api_key or "loraflow-emulator")
    client = genai.Client(vertexai=True, project=filled.project, location=opts.location,
                          credentials=credentials,
                          http_options=types.HttpOptions(base_url=base_url.rstrip("/") + "/", **http))
    gcs = storage.Client(project=filled.project, credentials=credentials,
                         client_options={"api_endpoint": base_url.rstrip("/")})
    return client, gcs
