"""A scripted OpenAI-compatible upstream on loopback: answers per served model name, streams, can fail."""

from __future__ import annotations

import asyncio
import json
from collections import Counter

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, StreamingResponse
from starlette.routing import Route


def upstream_app(failing: frozenset[str] = frozenset(), delay_s: float = 0.0) -> Starlette:
    """`failing` served names answer 500; every answer says which model served it."""
    calls: Counter[str] = Counter()

    async def chat(request: Request):
        body = await request.json()
        model = body["model"]
        calls[model] += 1
        if model in failing:
            return JSONResponse({"error": {"message": "scripted failure", "type": "server_error"}}, 500)
        if delay_s:
            await asyncio.sleep(delay_s)
        text = json.dumps({"served_by": model}) if body.get("response_format") else f"hello from {model}"
        usage = {"prompt_tokens": 7, "completion_tokens": 5, "total_tokens": 12}
        if body.get("stream"):
            def events():
                for i, piece in enumerate((text[:5], text[5:])):
                    delta = {"role": "assistant", "content": piece} if i == 0 else {"content": piece}
                    chunk = {"id": "c1", "object": "chat.completion.chunk", "created": 1, "model": model,
                             "choices": [{"index": 0, "delta": delta, "finish_reason": None}]}
                    yield f"data: {json.dumps(chunk)}\n\n"
                last = {"id": "c1", "object": "chat.completion.chunk", "created": 1, "model": model,
                        "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}], "usage": usage}
                yield f"data: {json.dumps(last)}\n\ndata: [DONE]\n\n"
            return StreamingResponse(events(), media_type="text/event-stream")
        return JSONResponse({"id": "c1", "object": "chat.completion", "created": 1, "model": model,
                             "choices": [{"index": 0, "message": {"role": "assistant", "content": text},
                                          "finish_reason": "stop"}], "usage": usage})

    app = Starlette(routes=[Route("/v1/chat/completions", chat, methods=["POST"])])
    app.state.calls = calls
    return app
