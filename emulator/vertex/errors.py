"""How the Vertex AI and Cloud Storage routes refuse a request: Google's error envelope."""

from __future__ import annotations

from typing import Any

from emulator.wire import ApiError

_STATUS_NAMES = {400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED", 404: "NOT_FOUND",
                 409: "ALREADY_EXISTS", 412: "FAILED_PRECONDITION", 429: "RESOURCE_EXHAUSTED",
                 500: "INTERNAL", 503: "UNAVAILABLE"}


class GoogleError(ApiError):
    """A refused request in Google's envelope `{"error": {"code", "message", "status"}}`, plus
    `errors[{reason}]` when a reason is given (the Cloud Storage client reads it)."""

    def __init__(self, status: int, message: str, *, status_name: str | None = None,
                 reason: str | None = None, headers: dict[str, str] | None = None) -> None:
        super().__init__(status, message, headers=headers)
        self.status_name = status_name or _STATUS_NAMES.get(status, "UNKNOWN")
        self.reason = reason

    def body(self) -> dict[str, Any]:
        error: dict[str, Any] = {"code": self.status, "message": self.message, "status": self.status_name}
        if self.reason:
            error["errors"] = [{"message": self.message, "domain": "global", "reason": self.reason}]
        return {"error": error}
