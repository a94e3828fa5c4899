"""The one error tree of loraflow, split by what the caller does next.

    LoraflowError                    base of everything loraflow raises on purpose
    ├── ConfigError                  the pipeline file, a dataset, credentials: fix the input,
    │   │                            never retry
    │   └── DataError                the dataset breaks the chat contract; carries every problem
    │                                with file:line
    ├── ProviderError                came back from a provider call (carries the provider name)
    │   ├── TransientProviderError   throttled, timed out, 5xx, connection dropped: retry with backoff
    │   ├── PermanentProviderError   auth, quota, rejected request or data: stop and tell a person
    │   └── UnexpectedProviderResponse  a status or shape we do not know: stop, it is a bug to file
    ├── JobFailed                    the remote job ended FAILED or CANCELLED; carries the vendor
    │                                message and whether the data was at fault
    └── ApprovalDeclined             a person refused (or did not answer) an approval the run asked for

Each provider translates its SDK's exceptions into this tree at one boundary (a context manager in
its module). Flows and tasks never import a vendor exception; Prefect retries only
TransientProviderError.
"""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import ValidationError


class LoraflowError(Exception):
    """Base of every error loraflow raises on purpose; the CLI prints these as one line."""


class ConfigError(LoraflowError):
    """Bad configuration or input: the user must change something. Never retried."""

    @classmethod
    def from_validation(cls, exc: ValidationError, *, where: str, prefix: str = "") -> ConfigError:
        """One line naming the first bad key path, what is wrong, and the allowed values when known."""
        errors = exc.errors(include_url=False)
        first = errors[0]
        path = ".".join(str(p) for p in (prefix, *first["loc"]) if p != "")
        message = _describe(first)
        more = (f" (and {len(errors) - 1} more problem{'s' if len(errors) > 2 else ''})"
                if len(errors) > 1 else "")
        return cls(f"{where}: {path or '<root>'}: {message}{more}")


def _describe(error: dict) -> str:
    kind, ctx = error["type"], error.get("ctx") or {}
    if kind == "value_error" and "error" in ctx:
        return str(ctx["error"])
    if kind == "extra_forbidden":
        return "unknown key"
    if kind == "missing":
        return "required key is missing"
    if kind == "literal_error" and "expected" in ctx:
        return f"got {error['input']!r}; allowed values: {ctx['expected']}"
    if kind == "enum" and "expected" in ctx:
        return f"got {error['input']!r}; allowed values: {ctx['expected']}"
    return error["msg"][0].lower() + error["msg"][1:]


@dataclass(frozen=True)
class DataProblem:
    """One problem in a dataset: a stable code, where it is, and why."""

    path: str
    line: int
    code: str
    reason: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.code}: {self.reason}"


class DataError(ConfigError):
    """The dataset breaks the chat contract. `problems` lists every one found, in file order."""

    def __init__(self, problems: list[DataProblem]) -> None:
        self.problems = problems
        first = problems[0]
        rest = f" (+{len(problems) - 1} more; see the data report)" if len(problems) > 1 else ""
        super().__init__(f"{first}{rest}")


class ProviderError(LoraflowError):
    """An error that came back from a provider call."""

    def __init__(self, provider: str, message: str, *, status_code: int | None = None) -> None:
        self.provider = provider
        self.status_code = status_code
        super().__init__(f"{provider}: {message}")


class TransientProviderError(ProviderError):
    """Throttling, timeouts, 5xx, dropped connections: the same call may succeed later.

    `retry_after` is the provider's own hint in seconds, when it gave one.
    """

    def __init__(self, provider: str, message: str, *, status_code: int | None = None,
                 retry_after: float | None = None) -> None:
        super().__init__(provider, message, status_code=status_code)
        self.retry_after = retry_after


class PermanentProviderError(ProviderError):
    """Authentication, permissions, quota, a rejected request: retrying will not help."""


class UnexpectedProviderResponse(ProviderError):
    """The provider answered with a status or shape loraflow does not know. A bug to report."""


class JobFailed(LoraflowError):
    """A training job ended FAILED or CANCELLED.

    `data_at_fault` is True when the provider blamed the training data (fix the data before re-running).
    """

    def __init__(self, job_id: str, state: str, message: str, *, data_at_fault: bool = False) -> None:
        self.job_id = job_id
        self.state = state
        self.vendor_message = message
        self.data_at_fault = data_at_fault
        blame = " (the provider blamed the training data)" if data_at_fault else ""
        super().__init__(f"job {job_id} ended {state}: {message or 'no message from the provider'}{blame}")


class ApprovalDeclined(LoraflowError):
    """A person refused, or did not answer in time, an approval the pipeline asked for."""
