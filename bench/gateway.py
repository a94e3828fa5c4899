"""The gateway's added latency at a fixed request rate, and exposures kept through a database restart.

Three processes on loopback: a stub OpenAI-compatible upstream (answers at once), the gateway over a registry,
and this load generator, which sends an open-loop stream of chat completions (each from a new user, so every
request is an exposure of a running 50/50 experiment). Phase 1 sends the same stream straight to the upstream,
phase 2 through the gateway; the added latency is the difference of the two distributions' p50 and p99. In
phase 2 the registry's PostgreSQL is stopped and started again mid-run (`--restart-after`); afterwards every
answered request must have its exposure row and its measurements. Without PostgreSQL binaries, `--sqlite`
keeps the registry in SQLite and swaps its file out of the way during the outage instead.

    .venv/bin/python bench/gateway.py [--rps 200] [--seconds 20] [--restart-after 6] [--down-s 3] [--sqlite]
"""

from __future__ import annotations

import sys
from pathlib import Path

# this file is bench/gateway.py: its folder must not shadow the `gateway` package
_ROOT = Path(__file__).resolve().parent.parent
sys.path[:] = [str(_ROOT)] + [p for p in sys.path if Path(p or ".").resolve() != _ROOT / "bench"]

import argparse
import asyncio
import json
import multiprocessing
import os
import shutil
import socket
import subprocess
import tempfile
import time

import httpx
import numpy as np

KEY = "bench-key"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _serve_upstream(port: int) -> None:
    import uvicorn
    from starlette.applications import Starlette
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    async def chat(request):
        body = await request.json()
        return JSONResponse({"id": "x", "object": "chat.completion", "created": 0, "model": body.get("model"),
                             "choices": [{"index": 0, "message": {"role": "assistant", "content": "ok"},
                                          "finish_reason": "stop"}],
                             "usage": {"prompt_tokens": 5, "completion_tokens": 1, "total_tokens": 6}})

    app = Starlette(routes=[Route("/v1/chat/completions", chat, methods=["POST"])])
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="error", access_log=False, ws="none")


def _serve_gateway(port: int, registry_url: str, spill: str) -> None:
    import uvicorn

    from gateway.app import create_app
    from gateway.server import build_gateway
    from tasks.registry import Registry

    built = build_gateway(Registry.open(registry_url), [KEY], spill_path=Path(spill))
    uvicorn.run(create_app(built), host="127.0.0.1", port=port, log_level="error", access_log=False,
                ws="none")


class Postgres:
    """A throwaway PostgreSQL (as in .ci/postgres.sh) that can be stopped and started on the same data."""

    def __init__(self, scratch: Path) -> None:
        versions = sorted(Path("/usr/lib/postgresql").glob("*/bin"))
        if not versions:
            raise SystemExit("no PostgreSQL binaries (apt-get install postgresql), or pass --sqlite")
        self.bin, self.data, self.port = versions[-1], scratch / "pg", _free_port()
        self.data.mkdir()
        self.prefix = ["runuser", "-u", "postgres", "--"] if os.getuid() == 0 else []
        if self.prefix:
            shutil.chown(self.data, "postgres")
        self._run("initdb", "-D", str(self.data), "-A", "trust", "-U", "postgres")
        self.url = f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, tool: str, *args: str) -> None:
        subprocess.run([*self.prefix, str(self.bin / tool), *args], check=True, capture_output=True)

    def start(self) -> None:
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.data / "log"), "-w", "-o",
                  f"-p {self.port} -k {self.data} -c listen_addresses=127.0.0.1", "start")

    def stop(self) -> None:
        self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "stop")


class SqliteOutage:
    """SQLite 'restart': the file is moved away (new connections fail) and put back."""

    def __init__(self, scratch: Path) -> None:
        self.path = scratch / "registry.db"
        self.url = f"sqlite:///{self.path}"

    def start(self) -> None:
        if self.path.with_suffix(".away").exists():
            os.replace(self.path.with_suffix(".away"), self.path)

    def stop(self) -> None:
        os.replace(self.path, self.path.with_suffix(".away"))


def _prepare(url: str, upstream: str) -> int:
    from tasks.registry import Registry
    from tasks.release.models import ModelRegistry

    models = ModelRegistry(Registry.open(url))
    for served in ("base", "ft"):
        models.register("bench", served, base_url=upstream)
    models.set_alias("bench", "champion", 1, weight=1.0, reason="bench")
    models.set_alias("bench", "challenger", 2, weight=0.5, reason="bench")
    return models.start_experiment("bench", {}).id


class _Connections:
    """Keep-alive HTTP/1.1 over raw asyncio streams: a load generator much lighter than an HTTP client
    library, so on a small machine the figures measure the servers rather than the client."""

    def __init__(self, url: str, size: int) -> None:
        parsed = httpx.URL(url)
        self.host, self.port, self.path, self.size = parsed.host, parsed.port, parsed.raw_path.decode(), size
        self.free: asyncio.Queue = asyncio.Queue()

    async def open(self) -> None:
        for _ in range(self.size):
            self.free.put_nowait(await asyncio.open_connection(self.host, self.port))

    async def post(self, body: bytes) -> int:
        reader, writer = await self.free.get()
        try:
            writer.write(f"POST {self.path} HTTP/1.1\r\nhost: {self.host}\r\n"
                         f"content-type: application/json\r\n"
                         f"authorization: Bearer {KEY}\r\ncontent-length: {len(body)}\r\n\r\n".encode()
                         + body)
            head = await reader.readuntil(b"\r\n\r\n")
            status, length = int(head.split(b" ", 2)[1]), 0
            for line in head.split(b"\r\n"):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":", 1)[1])
            await reader.readexactly(length)
            self.free.put_nowait((reader, writer))
            return status
        except (OSError, asyncio.IncompleteReadError):
            writer.close()
            self.free.put_nowait(await asyncio.open_connection(self.host, self.port))
            return 0

    def close(self) -> None:
        while not self.free.empty():
            self.free.get_nowait()[1].close()


async def _load(url: str, model: str, rps: int, seconds: float, label: str) -> tuple[list[float], int, int]:
    """Open loop: request i is due at i/rps whatever earlier ones are doing; its latency counts from then.
    Returns latencies (ms) of the answered requests, how many were answered, how many failed."""
    latencies, failed = [], 0
    pool = _Connections(url, 128)
    await pool.open()

    async def one(i: int, due: float) -> None:
        nonlocal failed
        body = json.dumps({"model": model, "user": f"{label}-{i}",
                           "messages": [{"role": "user", "content": "hi"}]}).encode()
        if await pool.post(body) == 200:
            latencies.append((time.perf_counter() - due) * 1000)
        else:
            failed += 1

    begin, tasks = time.perf_counter(), []
    for i in range(int(rps * seconds)):
        due = begin + i / rps
        await asyncio.sleep(max(0.0, due - time.perf_counter()))
        tasks.append(asyncio.create_task(one(i, due)))
    await asyncio.gather(*tasks)
    pool.close()
    return latencies, len(latencies), failed


def _wait_up(url: str, timeout_s: float = 30) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            httpx.get(url, timeout=1)
            return
        except httpx.HTTPError:
            time.sleep(0.1)
    raise SystemExit(f"{url} did not come up")


def _pending(gateway: str) -> int:
    return httpx.get(f"{gateway}/healthz", timeout=5).json()["pending_exposures"]


async def _through_gateway(args: argparse.Namespace, gateway: str, db: Postgres | SqliteOutage
                           ) -> tuple[list[float], int, int]:
    async def outage() -> None:
        await asyncio.sleep(args.restart_after)
        await asyncio.to_thread(db.stop)
        print(f"  database stopped at {args.restart_after}s; pending exposures {_pending(gateway)}")
        await asyncio.sleep(args.down_s)
        await asyncio.to_thread(db.start)
        print(f"  database started again after {args.down_s}s down; pending exposures {_pending(gateway)}")

    restart = asyncio.create_task(outage()) if args.restart_after < args.seconds else None
    result = await _load(f"{gateway}/v1/chat/completions", "bench", args.rps, args.seconds, "gw")
    if restart is not None:
        await restart
    return result


def _percentiles(latencies: list[float]) -> tuple[float, float]:
    return float(np.percentile(latencies, 50)), float(np.percentile(latencies, 99))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rps", type=int, default=200)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--restart-after", type=float, default=6.0,
                        help="seconds into phase 2 (>= --seconds: no)")
    parser.add_argument("--down-s", type=float, default=3.0)
    parser.add_argument("--sqlite", action="store_true",
                        help="SQLite registry made unavailable instead of PG")
    args = parser.parse_args()
    scratch = Path(tempfile.mkdtemp(prefix="loraflow-bench-gateway-"))
    os.chmod(scratch, 0o755)
    db = SqliteOutage(scratch) if args.sqlite else Postgres(scratch)
    db.start()
    spawn = multiprocessing.get_context("spawn")
    up_port, gw_port = _free_port(), _free_port()
    upstream_url, gateway = f"http://127.0.0.1:{up_port}", f"http://127.0.0.1:{gw_port}"
    experiment = _prepare(db.url, f"{upstream_url}/v1")
    processes = [spawn.Process(target=_serve_upstream, args=(up_port,), daemon=True),
                 spawn.Process(target=_serve_gateway, args=(gw_port, db.url, str(scratch / "spill.jsonl")),
                               daemon=True)]
    try:
        for process in processes:
            process.start()
        _wait_up(f"{upstream_url}/v1/chat/completions")
        _wait_up(f"{gateway}/healthz")
        asyncio.run(_load(f"{upstream_url}/v1/chat/completions", "base", args.rps, 2, "warm"))
        asyncio.run(_load(f"{gateway}/v1/chat/completions", "bench", args.rps, 2, "warmgw"))
        direct, _, direct_failed = asyncio.run(_load(f"{upstream_url}/v1/chat/completions", "base", args.rps,
                                                     args.seconds, "direct"))
        print(f"phase 2: {args.rps} rps for {args.seconds:g}s through the gateway ({type(db).__name__})")
        via, answered, failed = asyncio.run(_through_gateway(args, gateway, db))
        deadline = time.monotonic() + 60
        while _pending(gateway) and time.monotonic() < deadline:
            time.sleep(0.2)
        report(db.url, experiment, direct, direct_failed, via, answered, failed, args)
    finally:
        for process in processes:
            process.terminate()
            process.join(5)
        if isinstance(db, Postgres):
            db.stop()
        shutil.rmtree(scratch, ignore_errors=True)


def report(url: str, experiment: int, direct: list[float], direct_failed: int, via: list[float],
           answered: int, failed: int, args: argparse.Namespace) -> None:
    from tasks.registry import Registry
    from tasks.release.traffic import TrafficStore

    store = TrafficStore(Registry.open(url).engine)
    exposures = [e for e in store.exposures(experiment) if e.unit_id.startswith("gw-")]
    measured = sum(e.http_status is not None for e in exposures)
    d50, d99 = _percentiles(direct)
    g50, g99 = _percentiles(via)
    figures = {"rps": args.rps, "seconds": args.seconds, "direct_p50_ms": round(d50, 2),
               "direct_p99_ms": round(d99, 2), "gateway_p50_ms": round(g50, 2),
               "gateway_p99_ms": round(g99, 2),
               "added_p50_ms": round(g50 - d50, 2), "added_p99_ms": round(g99 - d99, 2),
               "direct_failed": direct_failed, "gateway_answered": answered, "gateway_failed": failed,
               "exposures": len(exposures), "exposures_with_result": measured,
               "lost_exposures": answered - len(exposures)}
    print(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
