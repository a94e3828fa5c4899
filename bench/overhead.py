"""The flow's own overhead: the whole quickstart pipeline with a zero-length job and instant answers.

The emulator (started beforehand, as the CLI does) validates, queues and trains the job in no time and
answers chat completions at once, so the wall time left is loraflow's own work plus Prefect's orchestration
and loopback HTTP: data preparation, upload, submission, polling, answering and grading every eval item, the
decision and the artifacts. Each run starts from a fresh LORAFLOW_HOME (a re-used one would re-attach to the
earlier job). Figures come from the flow's task runs as Prefect recorded them (start to end).

    .venv/bin/python bench/overhead.py [--runs 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from collections import defaultdict
from pathlib import Path

QUICKSTART = Path(__file__).resolve().parent.parent / "examples" / "quickstart" / "pipeline.yaml"
ZERO = {"validating_s": 0.0, "queued_s": 0.0, "step_s": 0.0, "finishing_s": 0.0}


def one_run(scratch: Path) -> tuple[float, dict[str, float], int]:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    from emulator import EmulatorServer, Timeline
    from flows.config import load_pipeline
    from flows.finetune import finetune

    os.environ["LORAFLOW_HOME"] = str(scratch / "home")
    pipeline = load_pipeline(QUICKSTART).model_copy(update={"run_root": scratch / "runs"})
    # the emulator the CLI would start for `endpoint: emulator`, with a zero-length job timeline
    with EmulatorServer(state_dir=scratch / "home" / "emulator", timeline=Timeline(**ZERO)) as emulator:
        os.environ["LORAFLOW_EMULATOR_URL"] = emulator.url
        try:
            started = time.perf_counter()
            state = finetune(pipeline, return_state=True)
            wall = time.perf_counter() - started
        finally:  # the next run's emulator is another one
            del os.environ["LORAFLOW_EMULATOR_URL"]
    summary = state.result()
    with get_client(sync_client=True) as client:
        runs = client.read_task_runs(flow_run_filter=FlowRunFilter(
            id=FlowRunFilterId(any_=[state.state_details.flow_run_id])))
    stages: dict[str, float] = defaultdict(float)
    for run in runs:
        stages[run.name.rsplit("-", 1)[0]] += (run.end_time - run.start_time).total_seconds()
    answers = sum(1 for _ in (summary.run_dir / "eval" / "outputs.jsonl").open())
    return wall, dict(stages), answers


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
    from prefect.testing.utilities import prefect_test_harness

    results = []
    with prefect_test_harness():
        for index in range(args.runs):
            with tempfile.TemporaryDirectory() as scratch:
                results.append(one_run(Path(scratch)))
            print(f"run {index + 1}: {results[-1][0]:.1f} s", flush=True)
    walls = [wall for wall, _, _ in results]
    print(f"\nquickstart with a zero-length job, {args.runs} runs, {results[0][2]} eval answers each")
    print(f"{'flow wall time':<28} {statistics.median(walls):7.2f} s median "
          f"({min(walls):.2f}-{max(walls):.2f})")
    names = sorted({name for _, stages, _ in results for name in stages},
                   key=lambda n: -statistics.median(s.get(n, 0.0) for _, s, _ in results))
    for name in names:
        median = statistics.median(stages.get(name, 0.0) for _, stages, _ in results)
        print(f"  task {name:<23} {median:7.2f} s")
    stage_sum = statistics.median(sum(stages.values()) for _, stages, _ in results)
    print(f"{'outside tasks (Prefect, setup)':<28} {statistics.median(walls) - stage_sum:7.2f} s")


if __name__ == "__main__":
    main()
