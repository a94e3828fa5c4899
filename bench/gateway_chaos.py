"""The gateway under chaos: hostile and valid requests mixed at a fixed rate, the database restarted, and the
gateway itself stopped with SIGTERM and started again, all in one run. Nothing accepted may be lost.

The gateway runs as `loraflow gateway` (the real process, signal handling and drain included) over a throwaway
PostgreSQL (or `--sqlite`). One request in `--hostile-every` is hostile: NaN, a JSON array, a wrong type, an
unknown role, an oversized body, or a feedback post with NaN. Every answered chat completion of the running
experiment is an exposure and every 202 feedback an outcome: both must end in the database or the dead-letter
file. It prints accepted, stored, dead-lettered and lost events, plain-text (non-JSON) 5xx answers, and the
added latency p99 while the database is up and while it is down: each valid chat completion is paired with
the same request sent straight to the upstream at the same instant, and the pair's difference is its added
latency (bench/gateway.py says why paired).

    .venv/bin/python bench/gateway_chaos.py [--rps 200] [--seconds 24] [--sqlite]
"""

from __future__ import annotations

import sys
from pathlib import Path

_ROOT = Path(__file__).resolve().parent.parent
sys.path[:] = [str(_ROOT)] + [p for p in sys.path if Path(p or ".").resolve() != _ROOT / "bench"]

import argparse
import asyncio
import importlib.util
import json
import multiprocessing
import os
import shutil
import signal
import subprocess
import tempfile
import time

import numpy as np

_spec = importlib.util.spec_from_file_location("bench_gateway", Path(__file__).with_name("gateway.py"))
bench = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(bench)
KEY = "bench-chaos-key-0123456789"
bench.KEY = KEY  # the load generator's connections send this one

HOSTILE = [b'{"model": "bench", "messages": [{"role": "user", "content": "hi"}], "temperature": NaN}',
           b"[1, 2]", b'{"model": "bench", "messages": "hi"}',
           b'{"model": "bench", "messages": [{"role": "wizard", "content": "x"}]}',
           b'{"model": "bench", "user": {"a": 1}, "messages": [{"role": "user", "content": "hi"}]}',
           b'{"model": "bench", "messages": [{"role": "user", "content": "' + b"x" * (9 << 20) + b'"}]}']


class _Raw(bench._Connections):
    async def post(self, body: bytes, path: str | None = None) -> tuple[int, bytes]:
        reader, writer = await self.free.get()
        try:
            writer.write(f"POST {path or self.path} HTTP/1.1\r\nhost: {self.host}\r\n"
                         f"content-type: application/json\r\nauthorization: Bearer {KEY}\r\n"
                         f"content-length: {len(body)}\r\n\r\n".encode() + body)
            head = await reader.readuntil(b"\r\n\r\n")
            status, length = int(head.split(b" ", 2)[1]), 0
            for line in head.split(b"\r\n"):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":", 1)[1])
            content = await reader.readexactly(length)
            if b"connection: close" in head.lower():
                writer.close()
                self.free.put_nowait(await asyncio.open_connection(self.host, self.port))
            else:
                self.free.put_nowait((reader, writer))
            return status, content
        except (OSError, asyncio.IncompleteReadError):
            writer.close()
            try:
                self.free.put_nowait(await asyncio.open_connection(self.host, self.port))
            except OSError:  # the gateway is restarting: a connection is made again on the next use
                self.free.put_nowait(await _reconnect(self.host, self.port))
            return 0, b""


async def _reconnect(host: str, port: int) -> tuple:
    while True:
        try:
            return await asyncio.open_connection(host, port)
        except OSError:
            await asyncio.sleep(0.05)


def _gateway(port: int, db_url: str, home: Path) -> subprocess.Popen:
    env = {**os.environ, "LORAFLOW_HOME": str(home)}
    return subprocess.Popen([sys.executable, "-m", "cli.app", "gateway", "--port", str(port), "--registry",
                             db_url, "--api-key", KEY], cwd=_ROOT, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)


async def _chaos(args: argparse.Namespace, url: str, upstream: str, restart, db) -> dict:
    pool, direct = _Raw(f"{url}/v1/chat/completions", 128), bench._Connections(upstream, 64)
    await pool.open()
    await direct.open()
    seen: dict = {"exposure_users": [], "outcomes": [], "plain_5xx": 0, "latency": [], "hostile_4xx": 0,
                  "failed": 0, "down": (None, None), "restart": (None, None)}

    async def one(i: int, due: float) -> None:
        if i % args.hostile_every == 0:
            # the 9 MB body is one hostile request in fifty: at every sixth it alone would fill the loopback
            kind = len(HOSTILE) - 1 if (i // args.hostile_every) % 50 == 0 else i % (len(HOSTILE) - 1)
            status, content = await pool.post(HOSTILE[kind])
            seen["hostile_4xx"] += 400 <= status < 500
        elif i % 7 == 0:
            body = json.dumps({"request_id": f"r{i}", "type": "thumbs_up", "value": 1.0}).encode()
            status, content = await pool.post(body, "/v1/feedback")
            if status == 202:
                seen["outcomes"].append(json.loads(content)["id"])
        else:
            user = f"chaos-{i}"
            body = json.dumps({"model": "bench", "user": user,
                               "messages": [{"role": "user", "content": "hi"}]})
            alone = asyncio.create_task(_timed(direct, body.replace('"bench"', '"base"').encode(), due))
            status, content = await pool.post(body.encode())
            via_ms, direct_ms = (time.perf_counter() - due) * 1000, await alone
            if status == 200:
                seen["exposure_users"].append(user)
                if direct_ms is not None:
                    seen["latency"].append((due, via_ms - direct_ms))
        if status >= 500:
            try:
                json.loads(content)["error"]
            except (ValueError, KeyError, TypeError):
                seen["plain_5xx"] += 1
        if status == 0:
            seen["failed"] += 1

    async def outage() -> None:
        await asyncio.sleep(args.seconds * 0.25)
        started = time.perf_counter()
        await asyncio.to_thread(db.stop)
        await asyncio.sleep(3)
        await asyncio.to_thread(db.start)
        seen["down"] = (started, time.perf_counter() + bench.RECOVERY_S)  # and the backlog written after
        await asyncio.sleep(args.seconds * 0.25)
        stopping = time.perf_counter()
        await asyncio.to_thread(restart)
        seen["restart"] = (stopping, time.perf_counter() + 1.0)  # and the backlog it left, drained

    begin, tasks = time.perf_counter(), [asyncio.create_task(outage())]
    for i in range(1, int(args.rps * args.seconds)):
        due = begin + i / args.rps
        await asyncio.sleep(max(0.0, due - time.perf_counter()))
        tasks.append(asyncio.create_task(one(i, due)))
    await asyncio.gather(*tasks)
    pool.close()
    direct.close()
    return seen


async def _timed(pool: bench._Connections, body: bytes, due: float) -> float | None:
    """Milliseconds from `due` to the upstream's answer, or None if it failed."""
    return (time.perf_counter() - due) * 1000 if await pool.post(body) == 200 else None


def _stored(db_url: str, experiment: int, users: list[str], outcomes: list[str]) -> tuple[int, int]:
    from sqlalchemy import select

    from tasks.registry import Registry
    from tasks.release.traffic import Outcome, TrafficStore

    registry = Registry.open(db_url)
    exposed = {e.unit_id for e in TrafficStore(registry.engine).exposures(experiment)}
    with registry.engine.connect() as connection:
        found = set(connection.execute(select(Outcome.id)).scalars())
    return sum(u in exposed for u in users), sum(o in found for o in outcomes)


def _dead(home: Path) -> tuple[set[str], set[str]]:
    path = home / "gateway-exposures.dead.jsonl"
    events = [json.loads(line)["event"] for line in path.read_text().splitlines()] if path.exists() else []
    events = [e for e in events if isinstance(e, dict)]
    return ({e.get("unit_id") for e in events if e.get("kind") == "exposure"},
            {e.get("id") for e in events if e.get("kind") == "outcome"})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rps", type=int, default=200)
    parser.add_argument("--seconds", type=float, default=24.0)
    parser.add_argument("--hostile-every", type=int, default=5)
    parser.add_argument("--sqlite", action="store_true")
    args = parser.parse_args()
    scratch = Path(tempfile.mkdtemp(prefix="loraflow-chaos-"))
    os.chmod(scratch, 0o755)
    db = bench.SqliteOutage(scratch) if args.sqlite else bench.Postgres(scratch)
    db.start()
    up_port, gw_port = bench._free_port(), bench._free_port()
    # fork: the bench module is loaded from its path, so a spawned child could not import its function
    upstream = multiprocessing.get_context("fork").Process(target=bench._serve_upstream, args=(up_port,),
                                                            daemon=True)
    upstream.start()
    experiment = bench._prepare(db.url, f"http://127.0.0.1:{up_port}/v1")
    url, home = f"http://127.0.0.1:{gw_port}", scratch / "home"
    gateways = [_gateway(gw_port, db.url, home)]
    exits = []

    def restart() -> None:
        gateways[-1].send_signal(signal.SIGTERM)
        exits.append(gateways[-1].wait(60))
        gateways.append(_gateway(gw_port, db.url, home))
        bench._wait_up(f"{url}/healthz", 60)

    try:
        bench._wait_up(f"http://127.0.0.1:{up_port}/v1/chat/completions")
        bench._wait_up(f"{url}/healthz", 60)
        seen = asyncio.run(_chaos(args, url, f"http://127.0.0.1:{up_port}/v1/chat/completions", restart, db))
        deadline = time.monotonic() + 60
        while bench._pending(url) and time.monotonic() < deadline:
            time.sleep(0.2)
        gateways[-1].send_signal(signal.SIGTERM)
        exits.append(gateways[-1].wait(60))
        exposures, outcomes = _stored(db.url, experiment, seen["exposure_users"], seen["outcomes"])
        dead_users, dead_outcomes = _dead(home)
        _report(args, seen, exposures, outcomes, dead_users, dead_outcomes, exits)
    finally:
        for process in gateways:
            if process.poll() is None:
                process.kill()
        upstream.terminate()
        if isinstance(db, bench.Postgres):
            db.stop()
        shutil.rmtree(scratch, ignore_errors=True)  # a database, spill files and logs per run


def _report(args, seen, exposures, outcomes, dead_users, dead_outcomes, exits) -> None:
    accepted = len(seen["exposure_users"]) + len(seen["outcomes"])
    dead = (sum(u in dead_users for u in seen["exposure_users"])
            + sum(o in dead_outcomes for o in seen["outcomes"]))
    def within(due: float, window: tuple) -> bool:
        return window[0] is not None and window[0] <= due <= window[1]

    up = [ms for due, ms in seen["latency"]
          if not within(due, seen["down"]) and not within(due, seen["restart"])]
    down = [ms for due, ms in seen["latency"] if within(due, seen["down"])]
    figures = {"rps": args.rps, "seconds": args.seconds, "stack": bench.stack(), "accepted_events": accepted,
               "stored": exposures + outcomes, "dead_lettered": dead,
               "lost": accepted - exposures - outcomes - dead,
               "plain_text_5xx": seen["plain_5xx"], "hostile_answered_4xx": seen["hostile_4xx"],
               "requests_failed_during_restart": seen["failed"], "gateway_exit_codes": exits,
               "answered_while_db_up": len(up), "answered_while_db_down": len(down),
               "added_p50_ms_db_up": round(float(np.percentile(up, 50)), 2) if up else None,
               "added_p99_ms_db_up": round(float(np.percentile(up, 99)), 2) if up else None,
               "added_p99_ms_db_down": round(float(np.percentile(down, 99)), 2) if down else None}
    print(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
