"""A scripted Vertex AI and Cloud Storage at the transport level: the second half of the Vertex contract
tests.

google-genai gets an injected `httpx.Client` whose transport is a respx router; google-cloud-storage gets an
injected `requests.Session` whose adapter answers in memory. Nothing else in the process is intercepted and no
socket is opened. Shapes follow the REST references (TuningJob, GenerateContentResponse, Cloud Storage objects
and multipart uploads), not the loopback emulator. A job moves one state further at each get (PENDING,
RUNNING, SUCCEEDED); `throttle_next` makes the next get a 429 RESOURCE_EXHAUSTED; `bodies` keeps every create
body.
"""

from __future__ import annotations

import itertools
import json
from email.parser import BytesParser
from email.policy import HTTP
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import requests
import respx
from google import genai
from google.auth.credentials import AnonymousCredentials
from google.cloud import storage
from google.genai import types
from google.oauth2.credentials import Credentials

from emulator.vertex.shapes import chat_messages
from providers.imitation import BaseImitation, TunedImitation
from providers.vertex.adapter import VertexProvider
from providers.vertex.client import VertexOptions, retry_options

PROJECT, LOCATION = "stub-project", "us-central1"
VERTEX_URL = "https://vertex.stub.test/"
GCS_URL = "https://storage.stub.test"
_PARENT = f"v1beta1/projects/{PROJECT}/locations/{LOCATION}"
_SCRIPT = ["JOB_STATE_PENDING", "JOB_STATE_RUNNING", "JOB_STATE_SUCCEEDED"]
_ENDED = ("JOB_STATE_SUCCEEDED", "JOB_STATE_FAILED", "JOB_STATE_CANCELLED")


def _error(status: int, name: str, message: str) -> httpx.Response:
    return httpx.Response(status, json={"error": {"code": status, "message": message, "status": name}})


class _StorageAdapter(requests.adapters.BaseAdapter):
    """Cloud Storage's JSON API in memory: multipart/media uploads with ifGenerationMatch, object reads."""

    def __init__(self, objects: dict[str, bytes]) -> None:
        super().__init__()
        self.objects = objects

    def send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:
        url = urlsplit(request.url)
        query = {k: v[0] for k, v in parse_qs(url.query).items()}
        bucket = url.path.split("/b/", 1)[1].split("/", 1)[0]
        if request.method == "GET" and url.path == f"/storage/v1/b/{bucket}":
            return self._answer(request, 200, {"kind": "storage#bucket", "name": bucket, "id": bucket})
        if request.method != "POST" or "/upload/storage/v1/b/" not in url.path:
            return self._answer(request, 404, {"error": {"code": 404, "message": f"no route {url.path}"}})
        body = request.body if isinstance(request.body, bytes) else (request.body or "").encode()
        if query.get("uploadType") == "multipart":
            kind = request.headers["Content-Type"]  # google-resumable-media sends it as bytes
            parsed = BytesParser(policy=HTTP).parsebytes(
                b"Content-Type: " + (kind if isinstance(kind, bytes) else kind.encode()) + b"\r\n\r\n" + body)
            metadata_part, media_part = parsed.iter_parts()
            name, content = (json.loads(metadata_part.get_content())["name"],
                             media_part.get_payload(decode=True))
        else:
            name, content = query["name"], body
        uri = f"gs://{bucket}/{name}"
        if query.get("ifGenerationMatch") == "0" and uri in self.objects:
            return self._answer(request, 412, {"error": {"code": 412, "message": "conditionNotMet"}})
        self.objects[uri] = content
        return self._answer(request, 200, {"kind": "storage#object", "bucket": bucket, "name": name,
                                           "generation": "1", "size": str(len(content))})

    @staticmethod
    def _answer(request: requests.PreparedRequest, status: int, body: dict[str, Any]) -> requests.Response:
        response = requests.Response()
        response.status_code, response.request, response.url = status, request, request.url
        response._content = json.dumps(body).encode()
        response.headers["Content-Type"] = "application/json"
        return response

    def close(self) -> None:
        pass


class VertexStub:
    def __init__(self) -> None:
        self.objects: dict[str, bytes] = {}
        self.jobs: dict[str, dict[str, Any]] = {}
        self.bodies: list[dict[str, Any]] = []
        self.throttle_next = False
        self._ids = itertools.count(1)
        self.router = respx.Router(assert_all_called=False)
        self._mount()

    def provider(self, **options: Any) -> VertexProvider:
        opts = VertexOptions(project=PROJECT, location=LOCATION, gcs_bucket="stub-bucket", retry_attempts=1,
                             **options)
        http = httpx.Client(transport=httpx.MockTransport(self.router.handler))
        client = genai.Client(vertexai=True, project=PROJECT, location=LOCATION,
                              credentials=Credentials(token="t"),
                              http_options=types.HttpOptions(base_url=VERTEX_URL, api_version="v1beta1",
                                                             httpx_client=http,
                                                             retry_options=retry_options(opts)))
        session = requests.Session()
        session.mount(GCS_URL, _StorageAdapter(self.objects))
        gcs = storage.Client(project=PROJECT, credentials=AnonymousCredentials(), _http=session,
                             client_options={"api_endpoint": GCS_URL})
        return VertexProvider(client, gcs, opts)

    def _mount(self) -> None:
        r, base = self.router, f"{VERTEX_URL}{_PARENT}"
        r.post(f"{base}/tuningJobs").mock(side_effect=self._create)
        r.get(f"{base}/tuningJobs").mock(side_effect=self._list)
        r.post(url__regex=rf"{base}/tuningJobs/(?P<jid>[^/:]+):cancel$").mock(side_effect=self._cancel)
        r.get(url__regex=rf"{base}/tuningJobs/(?P<jid>[^/:]+)$").mock(side_effect=self._get)
        r.post(url__regex=rf"{VERTEX_URL}v1beta1/(?P<model>.+):generateContent$").mock(side_effect=self._generate)
        r.route().mock(side_effect=lambda request: _error(404, "NOT_FOUND",
                                                          f"{request.url.path} was not found."))

    def _create(self, request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        self.bodies.append(body)
        jid = str(next(self._ids))
        self.jobs[jid] = {"name": f"projects/{PROJECT}/locations/{LOCATION}/tuningJobs/{jid}",
                          "baseModel": body["baseModel"], "labels": body.get("labels", {}),
                          "supervisedTuningSpec": body["supervisedTuningSpec"], "state": _SCRIPT[0],
                          "createTime": f"2026-11-28T00:00:{int(jid):02d}Z"}
        return httpx.Response(200, json=self.jobs[jid])

    def _list(self, request: httpx.Request) -> httpx.Response:
        wanted = request.url.params.get("filter", "")
        jobs = [j for j in self.jobs.values()
                if all(f'labels.{k}="{v}"' in wanted for k, v in j["labels"].items()) and j["labels"]]
        return httpx.Response(200, json={"tuningJobs": jobs})

    def _get(self, request: httpx.Request, jid: str) -> httpx.Response:
        if self.throttle_next:
            self.throttle_next = False
            return _error(429, "RESOURCE_EXHAUSTED", "Quota exceeded for tuning job reads.")
        job = self.jobs.get(jid)
        if job is None:
            return _error(404, "NOT_FOUND", f"TuningJob {jid} does not exist.")
        if job["state"] not in _ENDED:
            job["state"] = _SCRIPT[_SCRIPT.index(job["state"]) + 1]
        if job["state"] == "JOB_STATE_SUCCEEDED":
            examples = self.objects[job["supervisedTuningSpec"]["trainingDatasetUri"]].count(b"\n")
            job["tunedModel"] = {"model": f"projects/{PROJECT}/locations/{LOCATION}/models/{jid}",
                                 "endpoint": f"projects/{PROJECT}/locations/{LOCATION}/endpoints/{jid}"}
            job["tuningDataStats"] = {"supervisedTuningDataStats": {
                "tuningDatasetExampleCount": str(examples), "totalBillableTokenCount": str(examples * 40),
                "tuningStepCount": "2"}}
        return httpx.Response(200, json=job)

    def _cancel(self, request: httpx.Request, jid: str) -> httpx.Response:
        job = self.jobs[jid]
        if job["state"] in _ENDED:
            return _error(400, "FAILED_PRECONDITION", f"TuningJob {jid} is in state {job['state']}.")
        job["state"] = "JOB_STATE_CANCELLED"
        return httpx.Response(200, json={})

    def _generate(self, request: httpx.Request, model: str) -> httpx.Response:
        body = json.loads(request.content)
        messages = chat_messages(body)
        tuned = next((j for j in self.jobs.values() if j.get("tunedModel", {}).get("endpoint") == model),
                     None)
        if tuned is None:
            imitation: BaseImitation | TunedImitation = BaseImitation()
        else:
            lines = self.objects[tuned["supervisedTuningSpec"]["trainingDatasetUri"]].decode().splitlines()
            imitation = TunedImitation.from_jsonl(json.dumps({"messages": chat_messages(json.loads(line))})
                                                  for line in lines if line.strip())
        text = imitation.reply(messages)
        return httpx.Response(200, json={
            "candidates": [{"content": {"role": "model", "parts": [{"text": text}]}, "finishReason": "STOP"}],
            "usageMetadata": {"promptTokenCount": 5, "candidatesTokenCount": len(text.split()),
                              "totalTokenCount": 5 + len(text.split())},
            "modelVersion": model})
