"""The gateway's added latency at a fixed request rate, and exposures kept through a database restart.

Three processes on loopback: a stub OpenAI-compatible upstream (answers at once), the gateway (served as
`loraflow gateway` serves it) over a registry, and this load generator (raw asyncio streams in its own
process: 0.5-0.7 ms of CPU a slot, a tenth of one core). The load is open-loop: slot i is due at i/rps
whatever earlier ones are doing, and latency counts from then. Each slot sends two requests at that instant
from the same client, one straight to the upstream and one through the gateway (a new user each, so every
gateway request is an exposure of a running 50/50 experiment); the slot's added latency is the difference of
the two (the upstream so serves twice the rate), and the report gives its p50 and p99. Paired because the
machine is shared: other processes stall it for milliseconds to tens of milliseconds at a time; a stall of the
whole machine hits both requests of a slot and cancels out, one that hits only the gateway still counts, as it
should. The earlier method (the upstream alone for 20 s, then the gateway, difference of the two p99s)
compared two different stretches of that noise: the upstream's own p99 went from 5 to 30 ms between runs. That
difference of percentiles is still printed, from the same slots, with the CPU each process used per slot and
the machine's busy share (these processes included), so a reader can see whether the gateway had the cores to
itself.

Mid-run the registry's PostgreSQL is stopped and started again (`--restart-after`, `--down-s`); slots due from
the stop until `RECOVERY_S` after the start (when the outage's backlog is written) are reported apart, as
"db_down". Afterwards every answered request must have its exposure row and its measurements. Without
PostgreSQL binaries, `--sqlite` keeps the registry in SQLite and swaps its file out of the way during the
outage instead. The report names the event loop and HTTP parser the servers ran with: the image installs
uvloop and httptools (the `gateway` extra), a plain dev environment has neither.

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
import importlib.util
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
    from gateway.server import build_gateway, serve
    from tasks.registry import Registry

    serve(build_gateway(Registry.open(registry_url), [KEY], spill_path=Path(spill)), "127.0.0.1", port,
          log_level="warning")


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


class Cpu:
    """CPU seconds used by the given processes, by this one, and by the whole machine, between two reads."""

    def __init__(self, pids: dict[str, int]) -> None:
        self.pids = pids
        self.start = self._read()

    def _read(self) -> dict[str, float]:
        tick = os.sysconf("SC_CLK_TCK")
        seen = {}
        for name, pid in self.pids.items():
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            seen[name] = (int(fields[11]) + int(fields[12])) / tick
        seen["load generator"] = time.process_time()
        machine = [int(n) for n in Path("/proc/stat").read_text().split("\n")[0].split()[1:]]
        seen["machine busy"] = (sum(machine) - machine[3] - machine[4]) / tick
        seen["machine all"] = sum(machine) / tick
        return seen

    def per_slot_ms(self, slots: int) -> dict[str, float]:
        """Milliseconds of CPU per slot for each process, and the machine's busy share (all cores, %) over the
        interval, this bench's processes included."""
        now = self._read()
        used = {name: now[name] - self.start[name] for name in now}
        figures = {f"{name}_cpu_ms_per_slot": round(used[name] * 1000 / max(slots, 1), 3)
                   for name in [*self.pids, "load generator"]}
        figures["machine_busy_pct"] = round(100 * used["machine busy"] / used["machine all"], 1)
        return {key.replace(" ", "_"): value for key, value in figures.items()}


Slot = tuple[float, float | None, float | None]  # due (perf_counter), direct ms, gateway ms (None: failed)


async def _paired(upstream: str, gateway: str, rps: int, seconds: float, label: str) -> list[Slot]:
    """Open loop: slot i is due at i/rps; it sends one request straight to the upstream and one through the
    gateway at that instant (alternating which is written first), each timed from the due time."""
    direct_pool, gateway_pool = _Connections(upstream, 128), _Connections(gateway, 128)
    await direct_pool.open()
    await gateway_pool.open()
    slots: list[Slot] = []

    async def timed(pool: _Connections, model: str, user: str, due: float) -> float | None:
        body = json.dumps({"model": model, "user": user, "messages": [{"role": "user", "content": "hi"}]})
        status = await pool.post(body.encode())
        return (time.perf_counter() - due) * 1000 if status == 200 else None

    async def one(i: int, due: float) -> None:
        direct = timed(direct_pool, "base", f"{label}-direct-{i}", due)
        via = timed(gateway_pool, "bench", f"{label}-{i}", due)
        if i % 2:
            slots.append((due, *await asyncio.gather(direct, via)))
        else:
            via_ms, direct_ms = await asyncio.gather(via, direct)
            slots.append((due, direct_ms, via_ms))

    begin, tasks = time.perf_counter(), []
    for i in range(int(rps * seconds)):
        due = begin + i / rps
        await asyncio.sleep(max(0.0, due - time.perf_counter()))
        tasks.append(asyncio.create_task(one(i, due)))
    await asyncio.gather(*tasks)
    direct_pool.close()
    gateway_pool.close()
    return slots


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


async def _measured(args: argparse.Namespace, upstream: str, gateway: str, db: Postgres | SqliteOutage
                    ) -> tuple[list[Slot], tuple[float, float] | None]:
    """The measured run, with the database stopped and started in the middle; returns the slots and the outage
    (stop began, start done) in perf_counter time."""
    window: list[float] = []

    async def outage() -> None:
        await asyncio.sleep(args.restart_after)
        window.append(time.perf_counter())
        await asyncio.to_thread(db.stop)
        print(f"  database stopped at {args.restart_after}s; pending exposures {_pending(gateway)}")
        await asyncio.sleep(args.down_s)
        await asyncio.to_thread(db.start)
        window.append(time.perf_counter())
        print(f"  database started again after {args.down_s}s down; pending exposures {_pending(gateway)}")

    restart = asyncio.create_task(outage()) if args.restart_after < args.seconds else None
    slots = await _paired(upstream, f"{gateway}/v1/chat/completions", args.rps, args.seconds, "gw")
    if restart is not None:
        await restart
    return slots, (window[0], window[1]) if window else None


def added(slots: list[Slot]) -> dict[str, float | int | None]:
    """Per-slot differences (gateway minus upstream alone) and, for comparison, the difference of the two
    distributions' percentiles over the same slots."""
    both = [(direct, via) for _, direct, via in slots if direct is not None and via is not None]
    if not both:
        return {"slots": 0}
    direct, via = np.array([d for d, _ in both]), np.array([v for _, v in both])
    return {"slots": len(both), "added_p50_ms": round(float(np.percentile(via - direct, 50)), 2),
            "added_p99_ms": round(float(np.percentile(via - direct, 99)), 2),
            "direct_p99_ms": round(float(np.percentile(direct, 99)), 2),
            "gateway_p99_ms": round(float(np.percentile(via, 99)), 2),
            "p99_minus_p99_ms": round(float(np.percentile(via, 99) - np.percentile(direct, 99)), 2)}


def stack() -> str:
    """The event loop and HTTP parser uvicorn picks in the servers (the `gateway` extra, as in the image)."""
    found = [name for name in ("uvloop", "httptools") if importlib.util.find_spec(name)]
    return " + ".join(found) or "asyncio + h11 (the image has uvloop + httptools: pip install '.[gateway]')"


RECOVERY_S = 2.0  # after the database is back, the backlog of the outage is written: counted as "db down"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rps", type=int, default=200)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--restart-after", type=float, default=6.0,
                        help="seconds into the run (>= --seconds: no restart)")
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
    processes = {"upstream": spawn.Process(target=_serve_upstream, args=(up_port,), daemon=True),
                 "gateway": spawn.Process(target=_serve_gateway, daemon=True,
                                          args=(gw_port, db.url, str(scratch / "spill.jsonl")))}
    upstream, via = f"{upstream_url}/v1/chat/completions", f"{gateway}/v1/chat/completions"
    try:
        for process in processes.values():
            process.start()
        _wait_up(upstream)
        _wait_up(f"{gateway}/healthz")
        asyncio.run(_paired(upstream, via, args.rps, 2, "warm"))  # connections, caches: not measured
        print(f"{args.rps} slots/s for {args.seconds:g}s, each to the upstream and through the gateway "
              f"({type(db).__name__})")
        cpu = Cpu({name: process.pid for name, process in processes.items()})
        slots, outage = asyncio.run(_measured(args, upstream, gateway, db))
        used = cpu.per_slot_ms(len(slots))
        deadline = time.monotonic() + 60
        while _pending(gateway) and time.monotonic() < deadline:
            time.sleep(0.2)
        report(db.url, experiment, slots, outage, used, args)
    finally:
        for process in processes.values():
            process.terminate()
            process.join(5)
        if isinstance(db, Postgres):
            db.stop()
        shutil.rmtree(scratch, ignore_errors=True)


def report(url: str, experiment: int, slots: list[Slot], outage: tuple[float, float] | None,
           used: dict[str, float], args: argparse.Namespace) -> None:
    from tasks.registry import Registry
    from tasks.release.traffic import TrafficStore

    store = TrafficStore(Registry.open(url).engine)
    exposures = [e for e in store.exposures(experiment) if e.unit_id.startswith("gw-")]
    answered = sum(via is not None for _, _, via in slots)

    def down(due: float) -> bool:
        return outage is not None and outage[0] <= due <= outage[1] + RECOVERY_S

    figures = {"rps": args.rps, "seconds": args.seconds, "stack": stack(), "all": added(slots),
               "db_up": added([slot for slot in slots if not down(slot[0])]),
               "db_down": added([slot for slot in slots if down(slot[0])]),
               "direct_failed": sum(direct is None for _, direct, _ in slots), "gateway_answered": answered,
               "gateway_failed": len(slots) - answered, "exposures": len(exposures),
               "exposures_with_result": sum(e.http_status is not None for e in exposures),
               "lost_exposures": answered - len(exposures), **used}
    print(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
