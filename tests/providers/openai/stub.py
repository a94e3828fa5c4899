"""A scripted OpenAI API as an httpx2.MockTransport handler: the transport-level stub of the contract tests.

State lives in plain dicts. A job moves one status further at each retrieve (validating_files, running,
succeeded); a cancelled job stays cancelled. `throttle_next` makes the next job retrieve a 429.
Inference imitates like the emulator: a tuned model answers from its training file.
"""

from __future__ import annotations

import email.parser
import email.policy
import itertools
import json
import re
from typing import Any

import httpx2
import openai

from providers.imitation import BaseImitation, TunedImitation

BASE_URL = "https://api.openai.test/v1"
_SCRIPT = ["validating_files", "running", "succeeded"]
_TERMINAL = ("succeeded", "failed", "cancelled")


class OpenAIStub:
    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        self.filenames: dict[str, str] = {}
        self.jobs: dict[str, dict[str, Any]] = {}
        self.requests: list[tuple[str, str]] = []
        self.throttle_next = False
        self._ids = itertools.count(1)

    def client(self) -> openai.OpenAI:
        return openai.OpenAI(api_key="sk-stub", base_url=BASE_URL, max_retries=0,
                             http_client=httpx2.Client(transport=httpx2.MockTransport(self.handle)))

    def handle(self, request: httpx2.Request) -> httpx2.Response:
        path = request.url.path.removeprefix("/v1")
        self.requests.append((request.method, path))
        for method, pattern, answer in self._routes():
            match = re.fullmatch(pattern, path)
            if match and method == request.method:
                return answer(request, *match.groups())
        return _error(404, f"no stub route for {request.method} {path}")

    def _routes(self) -> list[tuple[str, str, Any]]:
        return [
            ("POST", r"/files", self._upload),
            ("GET", r"/files", lambda req: _page([self._file(fid) for fid in reversed(self.files)])),
            ("GET", r"/files/([^/]+)", lambda req, fid: _json(self._file(fid))),
            ("GET", r"/files/([^/]+)/content",
             lambda req, fid: httpx2.Response(200, content=self.files[fid])),
            ("POST", r"/fine_tuning/jobs", self._create),
            ("GET", r"/fine_tuning/jobs", self._list),
            ("GET", r"/fine_tuning/jobs/([^/]+)", self._retrieve),
            ("GET", r"/fine_tuning/jobs/([^/]+)/events", self._events),
            ("GET", r"/fine_tuning/jobs/([^/]+)/checkpoints", lambda req, jid: _page([])),
            ("POST", r"/fine_tuning/jobs/([^/]+)/cancel", self._cancel),
            ("POST", r"/chat/completions", self._chat),
        ]

    def _upload(self, request: httpx2.Request) -> httpx2.Response:
        head = f"Content-Type: {request.headers['content-type']}\r\n\r\n".encode()
        message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(head + request.content)
        part = next(part for part in message.iter_parts() if part.get_filename())
        file_id = f"file-{next(self._ids)}"
        self.files[file_id], self.filenames[file_id] = part.get_payload(decode=True), part.get_filename()
        return _json(self._file(file_id))

    def _file(self, file_id: str) -> dict[str, Any]:
        return {"id": file_id, "object": "file", "bytes": len(self.files[file_id]), "created_at": 1,
                "filename": self.filenames[file_id], "purpose": "fine-tune", "status": "processed"}

    def _create(self, request: httpx2.Request) -> httpx2.Response:
        body = json.loads(request.content)
        if body["training_file"] not in self.files:
            return _error(400, f"Invalid file ID: {body['training_file']}")
        job_id = f"ftjob-{next(self._ids)}"
        self.jobs[job_id] = {"id": job_id, "object": "fine_tuning.job", "created_at": len(self.jobs),
                             "model": body["model"], "training_file": body["training_file"],
                             "status": _SCRIPT[0],
                             "metadata": body.get("metadata"), "fine_tuned_model": None, "error": None,
                             "suffix": body.get("suffix"), "result_files": []}
        return _json(self.jobs[job_id])

    def _list(self, request: httpx2.Request) -> httpx2.Response:
        wanted = {k[len("metadata["):-1]: v for k, v in request.url.params.multi_items()
                  if k.startswith("metadata[")}
        jobs = [j for j in reversed(self.jobs.values())
                if all((j["metadata"] or {}).get(k) == v for k, v in wanted.items())]
        return _page(jobs)

    def _retrieve(self, request: httpx2.Request, job_id: str) -> httpx2.Response:
        if self.throttle_next:
            self.throttle_next = False
            return _error(429, "Rate limit reached", headers={"retry-after-ms": "50"})
        job = self.jobs.get(job_id)
        if job is None:
            return _error(404, f"No such fine-tuning job: {job_id}")
        if job["status"] not in _TERMINAL:
            job["status"] = _SCRIPT[_SCRIPT.index(job["status"]) + 1]
        if job["status"] == "succeeded":
            job["fine_tuned_model"] = f"ft:{job['model']}:stub:{job['suffix'] or ''}:{job_id}"
        return _json(job)

    def _events(self, request: httpx2.Request, job_id: str) -> httpx2.Response:
        data = {"step": 2, "total_steps": 2, "train_loss": 0.5}
        event = {"id": f"ev-{job_id}", "object": "fine_tuning.job.event", "created_at": 1, "level": "info",
                 "message": "Step 2/2", "type": "metrics", "data": data}
        return _page([event] if self.jobs[job_id]["status"] in ("running", "succeeded") else [])

    def _cancel(self, request: httpx2.Request, job_id: str) -> httpx2.Response:
        job = self.jobs[job_id]
        if job["status"] in _TERMINAL:
            return _error(400, f"Job {job_id} has already {job['status']}.")
        job["status"] = "cancelled"
        return _json(job)

    def _chat(self, request: httpx2.Request) -> httpx2.Response:
        body = json.loads(request.content)
        tuned = next((j for j in self.jobs.values() if j["fine_tuned_model"] == body["model"]), None)
        if tuned is not None:
            imitation = TunedImitation.from_jsonl(self.files[tuned["training_file"]].decode().splitlines())
        else:
            imitation = BaseImitation()
        text = imitation.reply(body["messages"])
        return _json({"id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": body["model"],
                      "choices": [{"index": 0, "finish_reason": "stop",
                                   "message": {"role": "assistant", "content": text}}],
                      "usage": {"prompt_tokens": 1, "completion_tokens": len(text.split()),
                                "total_tokens": 2}})


def _json(body: dict[str, Any]) -> httpx2.Response:
    return httpx2.Response(200, json=body)


def _page(data: list[dict[str, Any]]) -> httpx2.Response:
    return httpx2.Response(200, json={"object": "list", "data": data, "has_more": False})


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> httpx2.Response:
    body = {"error": {"message": message, "type": "invalid_request_error", "param": None, "code": None}}
    return httpx2.Response(status, json=body, headers=headers)
