"""A planted API key never appears in a log, artifact, flow parameter or result file of a run.

The key lives in a Prefect Secret block; the emulator demands it. One run succeeds with it, one fails
with a wrong key (the error line must not echo that one either). Everything the runs left behind is read
back and searched: CLI output, the run and home directories (registry database included, as bytes), and
the Prefect API's logs, artifacts and flow-run parameters.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from prefect.blocks.system import Secret
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import LogFilter, LogFilterTimestamp

from emulator import EmulatorServer, Timeline
from tests.flows.pipelines import TARGET_ONLY, cli_env, loraflow, write_pipeline

PLANTED = "sk-loraflow-planted-5e2b9d0c7a41"
WRONG = "sk-loraflow-wrong-key-93f1c8a2"


def run_with_secret(tmp_path: Path, prefect_api: str, emulator: EmulatorServer, block: str):
    tmp_path.mkdir(exist_ok=True)
    path = write_pipeline(tmp_path, provider={"name": "openai", "endpoint": emulator.base_url,
                                              "api_key_secret": block},
                          eval__max_items=10, eval__suites=TARGET_ONLY,
                          poll={"min_interval_s": 0.1, "max_interval_s": 0.5})
    env = cli_env(prefect_api, tmp_path / "home")
    env.pop("OPENAI_API_KEY", None)
    return loraflow("run", str(path), "--verbose", env=env, cwd=tmp_path)


def everything_written(root: Path) -> list[tuple[str, bytes]]:
    return [(str(p), p.read_bytes()) for p in root.rglob("*") if p.is_file() and p.name != "pipeline.yaml"]


def everything_in_prefect(since: datetime) -> list[tuple[str, str]]:
    """Every log line since `since` (paged: the session's server holds other tests' logs), every artifact
    and every flow run's parameters."""
    logs: list[tuple[str, str]] = []
    with get_client(sync_client=True) as client:
        recent = LogFilter(timestamp=LogFilterTimestamp(after_=since))
        while page := client.read_logs(recent, limit=200, offset=len(logs)):
            logs += [("log", log.message) for log in page]
        artifacts = [(f"artifact {a.key}", f"{a.data} {a.description}") for a in client.read_artifacts()]
        runs = [(f"flow run {r.name}", str(r.parameters)) for r in client.read_flow_runs()]
    return logs + artifacts + runs


def test_a_planted_key_is_in_no_log_artifact_parameter_or_file(tmp_path: Path, prefect_api: str) -> None:
    since = datetime.now(UTC)
    Secret(value=PLANTED).save("loraflow-test-key", overwrite=True)
    Secret(value=WRONG).save("loraflow-test-wrong-key", overwrite=True)
    timeline = Timeline(validating_s=0.1, queued_s=0.1, steps=5, step_s=0.05)
    with EmulatorServer(api_key=PLANTED, timeline=timeline) as emulator:
        good = run_with_secret(tmp_path / "good", prefect_api, emulator, "loraflow-test-key")
        bad = run_with_secret(tmp_path / "bad", prefect_api, emulator, "loraflow-test-wrong-key")
    assert good.returncode == 0, good.stdout + good.stderr
    assert "ACCEPT" in good.stdout
    assert bad.returncode == 1 and "Incorrect API key" in bad.stderr, bad.stdout + bad.stderr

    written = everything_written(tmp_path)
    assert any("manifest.json" in name for name, _ in written)  # the search covers the run directory
    leaks = [name for name, content in written if PLANTED.encode() in content or WRONG.encode() in content]
    prefect = everything_in_prefect(since)
    assert any("decision: ACCEPT" in text for _, text in prefect)  # ... and the runs' logs in Prefect
    leaks += [name for name, text in prefect if PLANTED in text or WRONG in text]
    leaks += [name for name, text in (("good output", good.stdout + good.stderr),
                                      ("bad output", bad.stdout + bad.stderr))
              if PLANTED in text or WRONG in text]
    assert not leaks


def test_a_missing_secret_block_is_a_config_error_naming_the_key(tmp_path: Path, prefect_api: str) -> None:
    with EmulatorServer(api_key=PLANTED) as emulator:
        result = run_with_secret(tmp_path, prefect_api, emulator, "no-such-block")
    assert result.returncode == 2
    assert "provider.api_key_secret: no Prefect Secret block named 'no-such-block'" in result.stderr
