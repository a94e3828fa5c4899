"""A loopback HTTP server that speaks the OpenAI fine-tuning API well enough for the real `openai` SDK.

Tests and offline rehearsals point a client at it instead of api.openai.com:

    with EmulatorServer(timeline=Timeline(step_s=0.01)) as server:
        client = openai.OpenAI(base_url=server.base_url, api_key="test", max_retries=0)
        server.state.faults.add(FaultRule("POST /v1/fine_tuning/jobs", "rate_limit", retry_after=0.1))
        ...
        server.state.counters["requests"]["POST /v1/fine_tuning/jobs"]

Routes: /v1/files (upload, list, retrieve, content), /v1/fine_tuning/jobs (create, list with
metadata filter, retrieve, events, checkpoints, cancel, pause, resume), /v1/chat/completions, plus the
control routes in `app.py` under /_emulator. Jobs follow a scripted `Timeline` (timeline.py) derived
from the clock, so no thread drives them; with `state_dir` files and jobs survive a restart.

From a shell, `serve_forever(port, state_dir, api_key, speed)` runs it in the foreground (the CLI's
`loraflow emulator --port N`). Deliberate differences from the service: no minimum example count,
reinforcement fine-tuning and streaming are refused, cancelling an ended job is a 400.
"""

from providers.emulator.app import build_app
from providers.emulator.faults import FaultRule, Faults
from providers.emulator.server import EmulatorServer, serve_forever
from providers.emulator.state import EmulatorState
from providers.emulator.timeline import Timeline

__all__ = ["EmulatorServer", "EmulatorState", "FaultRule", "Faults", "Timeline", "build_app", "serve_forever"]
