"""Scripted failures, injected per route by ASGI middleware so the routes themselves stay clean.

A `FaultRule` matches "METHOD /path/glob" (either part may be "*"; the glob is fnmatch on the request
path) and affects the next `times` matching requests (None: every one), then expires. Kinds:

    rate_limit    429 with `Retry-After` (whole seconds, rounded up) and `retry-after-ms`
    server_error  `status` (500, 502, 503...) with an OpenAI-style error body
    drop          headers promising a body, half of it, then the connection is closed; with `served`
                  the request is carried out first (the work is done, the answer is lost)
    slow          wait `delay_s`, then serve the request normally
    timeout       serve the request at once, then hold the answer for `delay_s`: a client with a shorter
                  timeout gives up although the work is done
    malformed     serve the request, then send its status and headers with half of its body: the
                  client gets a torn, unparsable body for work that was done

The refusals (rate_limit, server_error, and drop without `served`) never reach the routes, so the store
is unchanged; the others leave the same trace as a clean request.
"""

from __future__ import annotations

import asyncio
import json
import math
import threading
from dataclasses import asdict, dataclass
from fnmatch import fnmatchcase
from typing import Any, Literal

Kind = Literal["rate_limit", "server_error", "drop", "slow", "timeout", "malformed"]
_KINDS = ("rate_limit", "server_error", "drop", "slow", "timeout", "malformed")


@dataclass
class FaultRule:
    """One scripted failure. `times` counts down as matching requests arrive."""

    route: str
    kind: Kind
    times: int | None = 1
    retry_after: float = 1.0
    status: int = 500
    delay_s: float = 1.0
    served: bool = False

    def __post_init__(self) -> None:
        if self.kind not in _KINDS:
            raise ValueError(f"unknown fault kind {self.kind!r}; allowed values: {', '.join(_KINDS)}")
        if self.kind == "server_error" and not 500 <= self.status <= 599:
            raise ValueError(f"a server_error needs a 5xx status, got {self.status}")
        if self.times is not None and self.times < 1:
            raise ValueError(f"times must be at least 1 (or None for always), got {self.times}")

    def matches(self, method: str, path: str) -> bool:
        rule_method, _, glob = self.route.strip().rpartition(" ")
        return rule_method.strip().upper() in ("", "*", method.upper()) and fnmatchcase(path, glob)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class Faults:
    """The live rule list, shared by the middleware and whoever scripts the failures."""

    def __init__(self) -> None:
        self._rules: list[FaultRule] = []
        self._lock = threading.Lock()

    def add(self, *rules: FaultRule | dict[str, Any]) -> None:
        """Add rules (objects or their dict form); earlier rules win when several match."""
        parsed = [rule if isinstance(rule, FaultRule) else FaultRule(**rule) for rule in rules]
        with self._lock:
            self._rules.extend(parsed)

    def clear(self) -> None:
        with self._lock:
            self._rules.clear()

    @property
    def rules(self) -> list[FaultRule]:
        with self._lock:
            return list(self._rules)

    def take(self, method: str, path: str) -> FaultRule | None:
        """The first rule matching this request, with one of its uses spent."""
        with self._lock:
            for rule in self._rules:
                if rule.matches(method, path):
                    if rule.times is not None:
                        rule.times -= 1
                        if rule.times == 0:
                            self._rules.remove(rule)
                    return rule
        return None


class FaultMiddleware:
    """ASGI middleware that applies the first matching rule of `faults` to each HTTP request."""

    def __init__(self, app: Any, faults: Faults, exempt_prefix: str = "/_emulator") -> None:
        self.app, self.faults, self.exempt_prefix = app, faults, exempt_prefix

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["path"].startswith(self.exempt_prefix):
            await self.app(scope, receive, send)
            return
        rule = self.faults.take(scope["method"], scope["path"])
        if rule is None:
            await self.app(scope, receive, send)
        elif rule.kind == "slow":
            await asyncio.sleep(rule.delay_s)
            await self.app(scope, receive, send)
        elif rule.kind == "drop":
            await (_served(self.app, scope, receive) if rule.served else _drain(receive))
            await _drop(send)
        elif rule.kind == "timeout":
            start, body = await _served(self.app, scope, receive)
            await asyncio.sleep(rule.delay_s)
            await send(start)  # the client has usually hung up by now; uvicorn drops the write
            await send({"type": "http.response.body", "body": body})
        elif rule.kind == "malformed":
            start, body = await _served(self.app, scope, receive)
            torn = body[:len(body) // 2] or b'{"'
            headers = [(k, v) for k, v in start["headers"] if k.lower() != b"content-length"]
            headers.append((b"content-length", str(len(torn)).encode()))
            await send({**start, "headers": headers})
            await send({"type": "http.response.body", "body": torn})
        elif rule.kind == "rate_limit":
            await _drain(receive)
            headers = {"retry-after": str(math.ceil(rule.retry_after)),
                       "retry-after-ms": str(int(rule.retry_after * 1000))}
            await _error(send, 429, "Rate limit reached for requests (injected by the emulator).",
                         "requests", "rate_limit_exceeded", headers)
        else:
            await _drain(receive)
            await _error(send, rule.status, "The server had an error while processing your request "
                         "(injected by the emulator).", "server_error", None, {})


async def _drain(receive: Any) -> None:
    """Read the request body before refusing it: a client that sent `Expect: 100-continue` (botocore's S3
    uploads) and keeps the connection would otherwise have its body read as the next request."""
    while True:
        message = await receive()
        if message["type"] != "http.request" or not message.get("more_body"):
            return


async def _served(app: Any, scope: dict, receive: Any) -> tuple[dict, bytes]:
    """Run the request through the app and keep its answer: (the response start message, the body)."""
    start: dict = {}
    chunks: list[bytes] = []

    async def keep(message: dict) -> None:
        if message["type"] == "http.response.start":
            start.update(message)
        elif message["type"] == "http.response.body":
            chunks.append(message.get("body", b""))

    await app(scope, receive, keep)
    return start, b"".join(chunks)


async def _error(send: Any, status: int, message: str, kind: str, code: str | None,
                 headers: dict[str, str]) -> None:
    body = json.dumps({"error": {"message": message, "type": kind, "param": None, "code": code}}).encode()
    raw = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    raw += [(k.encode(), v.encode()) for k, v in headers.items()]
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body})


async def _drop(send: Any) -> None:
    # Returning with the body incomplete makes uvicorn close the socket (server.py silences its log
    # line); the client has been promised 1024 bytes and sees the peer hang up mid-body.
    partial = b'{"object": "fine_tuning.job", "id": "ftjob-'
    headers = [(b"content-type", b"application/json"), (b"content-length", b"1024")]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": partial, "more_body": True})
