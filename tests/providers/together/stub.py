"""A scripted Together API on a respx router: the transport-level stub of the contract tests.

The routers are scoped to one httpx client (an httpx.MockTransport), so nothing else in the process is
intercepted. A test mocks on `router`, which is asked first; the scripted API answers everything else. A
job moves one status further at each retrieve (pending, running, completed); `throttle_next` makes the
next job retrieve a 429; `bodies` keeps every create body for inspection.
"""

from __future__ import annotations

import itertools
import json
from typing import Any

import httpx
import respx
import together
from respx.models import AllMockedAssertionError

from providers.imitation import BaseImitation, TunedImitation

BASE_URL = "https://api.together.test"
UPLOAD_URL = "https://uploads.together.test/put"
_SCRIPT = ["pending", "running", "completed"]
_TERMINAL = ("completed", "error", "user_error", "cancelled")
LIMITS = {"model_name": "", "default_gradient_accumulation_steps": 1,
          "lora_training": {"default_rank": 8, "max_rank": 64, "min_batch_size": 8, "max_batch_size": 32,
                            "max_batch_size_dpo": 16,
                            "target_modules": ["q_proj", "k_proj", "v_proj", "o_proj"]},
          "full_training": None, "max_learning_rate": 0.01, "min_learning_rate": 1e-6, "max_num_epochs": 20,
          "max_num_evals": 10, "max_num_checkpoints": 10, "max_seq_length_sft": 8192,
          "max_seq_length_dpo": 4096,
          "min_max_seq_length": 512, "merge_output_lora": True, "supports_full_training": False,
          "supports_tools": True, "supports_vision": False, "supports_reasoning": False}


class TogetherStub:
    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        self.jobs: dict[str, dict[str, Any]] = {}
        self.endpoints: dict[str, dict[str, Any]] = {}
        self.bodies: list[dict[str, Any]] = []
        self.throttle_next = False
        self._ids = itertools.count(1)
        self.router = respx.Router(assert_all_called=False)
        self._scripted = respx.Router(assert_all_called=False)
        self._mount()

    def client(self) -> together.Together:
        http = httpx.Client(transport=httpx.MockTransport(self.handle))
        return together.Together(api_key="stub-key", base_url=BASE_URL, max_retries=0, http_client=http)

    def handle(self, request: httpx.Request) -> httpx.Response:
        try:
            return self.router.handler(request)
        except AllMockedAssertionError:
            return self._scripted.handler(request)

    def _mount(self) -> None:
        r, api = self._scripted, f"{BASE_URL}/v1"
        r.post(f"{api}/files").mock(side_effect=self._start_upload)
        r.put(url__startswith=UPLOAD_URL).mock(side_effect=self._receive)
        r.post(url__regex=rf"{api}/files/(?P<fid>[^/]+)/preprocess").mock(side_effect=self._file)
        r.get(url__regex=rf"{api}/files/(?P<fid>[^/]+)/content").mock(
            side_effect=lambda request, fid: httpx.Response(200, content=self.files[fid]))
        r.get(url__regex=rf"{api}/files/(?P<fid>[^/]+)$").mock(side_effect=self._file)
        r.get(f"{api}/fine-tunes/models/limits").mock(side_effect=lambda request: httpx.Response(
            200, json={**LIMITS, "model_name": request.url.params["model_name"]}))
        r.post(f"{api}/fine-tunes/estimate-price").mock(return_value=httpx.Response(200, json={
            "estimation_available": True, "estimated_total_price": 1.5, "estimated_train_token_count": 1000.0,
            "allowed_to_proceed": True}))
        r.post(f"{api}/fine-tunes").mock(side_effect=self._create)
        r.get(f"{api}/fine-tunes").mock(side_effect=lambda request: httpx.Response(
            200, json={"data": list(reversed(self.jobs.values()))}))
        r.get(url__regex=rf"{api}/fine-tunes/(?P<jid>[^/]+)$").mock(side_effect=self._retrieve)
        r.get(url__regex=rf"{api}/fine-tunes/(?P<jid>[^/]+)/events").mock(
            side_effect=lambda request, jid: httpx.Response(200, json={"data": []}))
        r.get(url__regex=rf"{api}/fine-tunes/(?P<jid>[^/]+)/metrics").mock(
            side_effect=lambda request, jid: httpx.Response(200, json={"metrics": [
                {"global_step": 1.0, "train_loss": 0.9}, {"global_step": 2.0, "train_loss": 0.5}]}))
        r.post(url__regex=rf"{api}/fine-tunes/(?P<jid>[^/]+)/cancel").mock(side_effect=self._cancel)
        r.post(f"{api}/chat/completions").mock(side_effect=self._chat)
        r.post(f"{api}/endpoints").mock(side_effect=self._create_endpoint)
        r.get(f"{api}/endpoints").mock(side_effect=lambda request: httpx.Response(
            200, json={"object": "list", "data": list(self.endpoints.values())}))
        r.get(url__regex=rf"{api}/endpoints/(?P<eid>[^/]+)$").mock(
            side_effect=lambda request, eid: httpx.Response(200, json=self.endpoints[eid]))
        r.delete(url__regex=rf"{api}/endpoints/(?P<eid>[^/]+)$").mock(
            side_effect=lambda request, eid: httpx.Response(204) if self.endpoints.pop(eid, None)
            else httpx.Response(404, json={"error": {"message": "no such endpoint"}}))

    def _start_upload(self, request: httpx.Request) -> httpx.Response:
        file_id = f"file-{next(self._ids)}"
        return httpx.Response(302, headers={"Location": f"{UPLOAD_URL}/{file_id}",
                                            "X-Together-File-Id": file_id})

    def _receive(self, request: httpx.Request) -> httpx.Response:
        self.files[request.url.path.rsplit("/", 1)[-1]] = request.read()
        return httpx.Response(200)

    def _file(self, request: httpx.Request, fid: str) -> httpx.Response:
        return httpx.Response(200, json={"id": fid, "object": "file", "bytes": len(self.files[fid]),
                                         "created_at": 1, "filename": "train.jsonl", "FileType": "jsonl",
                                         "purpose": "fine-tune", "processing_status": "COMPLETED"})

    def _create(self, request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        self.bodies.append(body)
        job_id = f"ft-{next(self._ids)}"
        self.jobs[job_id] = {"id": job_id, "status": _SCRIPT[0],
                             "created_at": f"2026-11-28T00:00:{len(self.jobs):02d}Z",
                             "updated_at": "2026-11-28T00:00:00Z", "model": body["model"],
                             "training_file": body["training_file"], "suffix": body.get("suffix"),
                             "model_output_name": f"stub/{body['model'].rsplit('/', 1)[-1]}-"
                                                  f"{body.get('suffix')}",
                             "total_steps": 2}
        return httpx.Response(200, json=self.jobs[job_id])

    def _retrieve(self, request: httpx.Request, jid: str) -> httpx.Response:
        if self.throttle_next:
            self.throttle_next = False
            return httpx.Response(429, json={"error": {"message": "slow down"}},
                                  headers={"retry-after": "0.05"})
        job = self.jobs.get(jid)
        if job is None:
            return httpx.Response(404, json={"error": {"message": f"job {jid} not found"}})
        if job["status"] not in _TERMINAL:
            job["status"] = _SCRIPT[_SCRIPT.index(job["status"]) + 1]
        return httpx.Response(200, json=job)

    def _cancel(self, request: httpx.Request, jid: str) -> httpx.Response:
        job = self.jobs[jid]
        if job["status"] in _TERMINAL:
            return httpx.Response(400, json={"error": {"message": f"job {jid} already ended"}})
        job["status"] = "cancelled"
        return httpx.Response(200, json={**job, "status": "cancel_requested"})

    def _create_endpoint(self, request: httpx.Request) -> httpx.Response:
        body, eid = json.loads(request.content), f"endpoint-{next(self._ids)}"
        self.endpoints[eid] = {"id": eid, "name": f"stub/{eid}", "display_name": body["display_name"],
                               "model": body["model"], "hardware": body["hardware"], "type": "dedicated",
                               "state": "STARTED"}
        return httpx.Response(200, json=self.endpoints[eid])

    def _chat(self, request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        served = {e["name"]: e["model"] for e in self.endpoints.values()}
        model = served.get(body["model"], body["model"])
        tuned = next((j for j in self.jobs.values() if j["model_output_name"] == model), None)
        if tuned is not None:
            imitation = TunedImitation.from_jsonl(self.files[tuned["training_file"]].decode().splitlines())
        else:
            imitation = BaseImitation()
        text = imitation.reply(body["messages"])
        return httpx.Response(200, json={
            "id": "chat-1", "object": "chat.completion", "created": 1, "model": body["model"],
            "choices": [{"index": 0, "finish_reason": "stop",
                         "message": {"role": "assistant", "content": text}}],
            "usage": {"prompt_tokens": 1, "completion_tokens": len(text.split()), "total_tokens": 2}})
