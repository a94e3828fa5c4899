"""A loopback HTTP server that speaks the OpenAI, Together, Vertex AI (with GCS) and Bedrock (with S3)
fine-tuning APIs well enough for their SDKs.

Tests and offline rehearsals point a client at it instead of the vendor:

    with EmulatorServer(timeline=Timeline(step_s=0.01), latency_s=0.2, requests_per_minute=600) as server:
        client = openai.OpenAI(base_url=server.base_url_for("openai"), api_key="test", max_retries=0)
        tog = together.Together(base_url=server.base_url_for("together"), api_key="test")
        server.state.faults.add(FaultRule("POST /v1/fine_tuning/jobs", "rate_limit", retry_after=0.1))
        ...
        server.state.counters["requests"]["POST /v1/fine_tuning/jobs"]

OpenAI routes (openai/api.py, under /v1): files (upload, list, retrieve, content), fine_tuning/jobs
(create, list with metadata filter, retrieve, events, checkpoints, cancel, pause, resume), chat
completions. Together routes (together/api.py, under /together/v1): the three-request upload, model
limits, price estimate, fine-tunes (create, list, retrieve, events, metrics, checkpoints, cancel), the
adapter download, chat completions. Vertex AI with Cloud Storage (vertex/api.py, under /vertex) and
Bedrock with S3 (bedrock/api.py, under /bedrock). Each vendor package holds its store, wire shapes and
routes on top of the vendor-neutral core: the state (state.py: lock, clock, counters, persistence, the
vendor stores), the fault rules (faults.py), the serving knobs for chat completions (serving.py) and the
shared wire pieces (wire.py); app.py assembles them with the control routes under /_emulator. Jobs follow
a scripted `Timeline` (timeline.py) derived from the clock, so no thread drives them; a Together job can
be restarted under a new id (`restart_at_step`). With `state_dir` files and jobs survive a restart.

From a shell, `serve_forever(port, state_dir, api_key, speed)` runs it in the foreground (the CLI's
`loraflow emulator --port N`). Deliberate differences from the service: no minimum example count,
reinforcement fine-tuning is refused, cancelling an ended job is a 400. Chat completions stream as
OpenAI streams them.
"""

from emulator.app import build_app
from emulator.faults import FaultRule, Faults
from emulator.server import EmulatorServer, serve_forever
from emulator.state import EmulatorState
from emulator.timeline import Timeline

__all__ = ["EmulatorServer", "EmulatorState", "FaultRule", "Faults", "Timeline", "build_app", "serve_forever"]
