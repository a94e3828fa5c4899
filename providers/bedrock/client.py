"""The Bedrock clients of one provider: its options, the three boto3 clients, and the one translation of what
boto3 raises into the error tree (shared by the adapter and serving.py)."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Literal

import boto3
from botocore.config import Config
from botocore.exceptions import (
    ClientError,
    ConnectionError,
    HTTPClientError,
    NoCredentialsError,
    NoRegionError,
    ParamValidationError,
)
from botocore.parsers import ResponseParserError
from pydantic import BaseModel, ConfigDict, Field

from providers.errors import (
    ConfigError,
    PermanentProviderError,
    TransientProviderError,
    UnexpectedProviderResponse,
)

NAME = "bedrock"
_TRANSIENT_CODES = frozenset({"ThrottlingException", "InternalServerException", "ServiceUnavailableException",
                              "ModelNotReadyException", "ModelTimeoutException", "RequestTimeout",
                              "RequestTimeoutException", "SlowDown", "InternalError"})
_NOT_FOUND = frozenset({"ResourceNotFoundException", "NoSuchKey", "NoSuchBucket", "404"})
_TOKEN = re.compile(r"^[a-zA-Z0-9](-*[a-zA-Z0-9])*$")


class BedrockOptions(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    region: str = Field(default="us-east-1", description="Nova trains in us-east-1, Llama in us-west-2")
    bucket: str = Field(pattern=r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$",
                        description="S3 bucket for data and output")
    prefix: str = Field(default="loraflow", pattern=r"^[A-Za-z0-9_./-]*$",
                        description="key prefix in the bucket")
    role_arn: str = Field(pattern=r"^arn:aws[a-z-]*:iam::\d{12}:role/.+$",
                          description="service role Bedrock assumes to read the data and write the output")
    profile: str | None = Field(default=None, description="AWS profile; else the default credential chain")
    warmup_steps: int | None = Field(default=None, ge=0, description="Nova: learningRateWarmupSteps")
    serving: dict[str, str] = Field(default_factory=dict, description="custom model ARN -> the provisioned "
                                    "throughput or custom-model deployment ARN that serves it (made by you)")
    serve_with: Literal["deployment", "provisioned_throughput"] | None = Field(
        default=None, description="how loraflow serves a tuned model it has not been given in `serving`: "
        "'deployment' (on-demand, billed per token; Nova) or 'provisioned_throughput' (billed per model unit "
        "per hour until deleted); unset means deployment where the family has it")
    model_units: int | None = Field(default=None, ge=1, description="provisioned throughput model units")
    serve_wait_s: float = Field(default=3600, gt=0, description="how long serving may take to become ready")
    serve_poll_s: float = Field(default=15, gt=0)
    max_attempts: int = Field(default=3, ge=1, le=10, description="botocore attempts per call, all told")
    timeout_s: float = Field(default=60, gt=0)


def clients(opts: BedrockOptions, *, base_url: str | None, api_key: str | None) -> list[Any]:
    """The s3, bedrock and bedrock-runtime clients; `api_key` "ACCESS:SECRET" (or one word, for an emulator)
    replaces the AWS credential chain, and `base_url` becomes the endpoint of all three (S3 path-style)."""
    credentials: dict[str, str] = {}
    if api_key:
        access, _, secret = api_key.partition(":")
        credentials = {"aws_access_key_id": access, "aws_secret_access_key": secret or access}
    session = boto3.Session(profile_name=opts.profile, region_name=opts.region, **credentials)
    config = Config(retries={"mode": "standard", "total_max_attempts": opts.max_attempts},
                    connect_timeout=opts.timeout_s, read_timeout=opts.timeout_s,
                    s3={"addressing_style": "path"} if base_url else None)
    return [session.client(service, endpoint_url=base_url, config=config)
            for service in ("s3", "bedrock", "bedrock-runtime")]


@contextmanager
def translated() -> Iterator[None]:
    """Raise the error-tree class for whatever boto3 raises inside (the one translation of this adapter)."""
    try:
        yield
    except ClientError as exc:
        error, meta = exc.response.get("Error", {}), exc.response.get("ResponseMetadata", {})
        code, status = str(error.get("Code", "")), meta.get("HTTPStatusCode")
        message = f"{code or 'HTTP ' + str(status)}: {error.get('Message') or exc}"
        if code in _TRANSIENT_CODES or status in (408, 429) or (status or 0) >= 500:
            raise TransientProviderError(NAME, message, status_code=status) from exc
        # not-found is told by its code: moto (and S3 behind some proxies) answer it with a 400
        status = 404 if code in _NOT_FOUND else status
        raise PermanentProviderError(NAME, message, status_code=status) from exc
    except (NoCredentialsError, NoRegionError) as exc:
        raise ConfigError(f"bedrock provider: {exc} (set AWS credentials, provider.options.profile, or use "
                          "provider.endpoint: emulator)") from exc
    except ParamValidationError as exc:
        raise PermanentProviderError(NAME, f"refused before sending: {exc}") from exc
    except (ConnectionError, HTTPClientError, ResponseParserError) as exc:
        raise TransientProviderError(NAME, f"connection failed or the answer was torn: {exc}") from exc
    except (ValueError, KeyError, IndexError, TypeError, AttributeError) as exc:
        raise UnexpectedProviderResponse(NAME, f"response not understood: {exc!r}") from exc


def job_name(idempotency_key: str) -> str:
    """The job name that stands for the key: what find_job looks up (and all moto resolves)."""
    return "lf-" + hashlib.sha256(idempotency_key.encode()).hexdigest()[:32]


def request_token(idempotency_key: str) -> str:
    """clientRequestToken: the key itself where Bedrock's pattern allows it, else its sha256."""
    if len(idempotency_key) <= 256 and _TOKEN.match(idempotency_key):
        return idempotency_key
    return hashlib.sha256(idempotency_key.encode()).hexdigest()
