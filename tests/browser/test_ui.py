"""The Prefect UI end to end, as the README walks it: `loraflow ui` (a real server with its dashboard, the
deployments, a process worker) and headless Chromium.

The finetune deployment is started from the UI's custom run form, a worker runs it, its log tab shows
loraflow's own lines, and its eval report is opened from the Artifacts tab. SIGTERM then stops everything.
Screenshots go to a directory the test prints (and, with LORAFLOW_SCREENSHOTS
set, to runs/browser-screenshots/ or the directory it names). Chromium is Debian's (`.ci/run` installs it);
Playwright drives it, since Playwright's own browser download is not reachable here.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from cli.deployments import REPO, read_specs
from cli.ui import check_port_free
from tests.cli.test_deployments import free_port
from tests.conftest import QUICKSTART
from tests.flows.pipelines import TARGET_ONLY

CHROMIUM = Path("/usr/bin/chromium")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]

needs_chromium = pytest.mark.skipif(not CHROMIUM.exists(),
                                    reason=f"{CHROMIUM} is missing (apt-get install chromium)")


def _children(pid: int) -> list[int]:
    """The live child processes of `pid` (Linux /proc)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid and fields[0] != "Z":
            found.append(int(stat.parent.name))
    return found


@dataclass
class Dashboard:
    url: str
    process: subprocess.Popen
    home: Path
    output: list[str]


@pytest.fixture(scope="module")
def dashboard(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Dashboard]:
    """`loraflow ui` as the README runs it (server, deployments, worker), with a fast finetune deployment."""
    tmp_path = tmp_path_factory.mktemp("ui")
    port = free_port()
    env = {**os.environ, "LORAFLOW_HOME": str(tmp_path / "loraflow"), "PREFECT_WORKER_QUERY_SECONDS": "1"}
    for name in ("PREFECT_API_URL", "PREFECT_HOME", "DO_NOT_TRACK"):
        env.pop(name, None)  # the command sets what it needs; nothing may leak in from the test session
    env["PREFECT_HOME"] = str(tmp_path / "prefect-profiles")
    spec = read_specs()[0]
    pipeline = {**spec.parameters["pipeline"], "provider": {"name": "fake"},
                "run_root": str(tmp_path / "runs"),
                "data": {**spec.parameters["pipeline"]["data"],
                         "path": str(QUICKSTART / "data" / "bullets.jsonl")},
                "poll": {"min_interval_s": 0.01, "max_interval_s": 0.05}}
    pipeline["eval"] = {**pipeline["eval"], "suites": TARGET_ONLY}
    prefect_file = tmp_path / "prefect.yaml"
    prefect_file.write_text(yaml.safe_dump({"deployments": [{
        "name": spec.name, "entrypoint": spec.entrypoint, "parameters": {"pipeline": pipeline},
        "description": spec.description, "tags": spec.tags, "work_pool": {"name": spec.work_pool}}]}))
    process = subprocess.Popen([sys.executable, "-m", "cli.app", "ui", "--port", str(port), "--prefect-file",
                                str(prefect_file)], env=env, cwd=REPO, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True)
    output: list[str] = []
    reader = threading.Thread(target=lambda: output.extend(process.stdout), daemon=True)
    reader.start()
    deadline = time.monotonic() + 240
    while not any(line.startswith("dashboard:") for line in output):
        assert process.poll() is None, "".join(output)
        assert time.monotonic() < deadline, "".join(output)
        time.sleep(0.5)
    try:
        yield Dashboard(f"http://127.0.0.1:{port}", process, tmp_path / "loraflow", output)
    finally:
        if process.poll() is None:
            process.kill()


def _state(ui: str, flow_run_id: str) -> str:
    with urllib.request.urlopen(f"{ui}/api/flow_runs/{flow_run_id}", timeout=10) as response:
        return json.loads(response.read())["state_type"]


_FINAL = ("COMPLETED", "FAILED", "CRASHED", "CANCELLED")


def _wait_for(ui: str, flow_run_id: str, states: tuple[str, ...], timeout_s: float = 120) -> str:
    deadline, state = time.monotonic() + timeout_s, _state(ui, flow_run_id)
    while state not in states and time.monotonic() < deadline:
        time.sleep(0.5)
        state = _state(ui, flow_run_id)
    return state


def _flow_runs(ui: str) -> list[dict]:
    request = urllib.request.Request(f"{ui}/api/flow_runs/filter", data=b"{}", method="POST",
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


def _submit(page, ui: str, tries: int = 3) -> str:
    """Clicks the run form's Submit until it creates a flow run, as a user would; returns the run's id.

    On busy cores Prefect's SQLite can be locked: the server answers create_flow_run with 503, its sign for
    "retry" (prefect.server.api.server.is_client_retryable_exception), and the form stays. CI failed on that
    once. A click that gets a 503, or sends nothing within 20 s while no run appeared, is repeated."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    for _ in range(tries):
        try:
            with page.expect_response(lambda r: r.url.endswith("/create_flow_run"), timeout=20_000) as made:
                page.get_by_role("button", name="Submit").click()
        except PlaywrightTimeout:
            if runs := _flow_runs(ui):
                return runs[0]["id"]
            continue
        response = made.value
        if response.status != 503:
            assert response.ok, f"create_flow_run answered {response.status}: {response.text()[:2000]}"
            return response.json()["id"]
        time.sleep(2)
    raise AssertionError(f"{tries} clicks on the run form's Submit created no flow run")


def _keep(shots: Path) -> None:
    wanted = os.environ.get("LORAFLOW_SCREENSHOTS")
    if not wanted:
        return
    target = REPO / "runs" / "browser-screenshots" if wanted.lower() in ("1", "true", "yes") else Path(wanted)
    target.mkdir(parents=True, exist_ok=True)
    for shot in shots.glob("*.png"):
        shutil.copy2(shot, target / shot.name)
    print(f"screenshots copied to {target}")


def _run_logs(ui: str, flow_run_id: str, timeout_s: float = 30) -> list[dict]:
    """The run's log lines as the dashboard reads them, once loraflow's decision line has arrived."""
    body = json.dumps({"logs": {"flow_run_id": {"any_": [flow_run_id]}}, "limit": 200,
                       "sort": "TIMESTAMP_DESC"}).encode()
    deadline, logs = time.monotonic() + timeout_s, []
    while time.monotonic() < deadline:
        request = urllib.request.Request(f"{ui}/api/logs/filter", data=body, method="POST",
                                         headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=10) as response:
            logs = json.loads(response.read())
        if any(log["message"].startswith("decision: ") for log in logs):
            break
        time.sleep(1)
    return logs


@needs_chromium
def test_a_run_from_the_ui_form_completes_with_its_logs_and_eval_report(dashboard: Dashboard,
                                                                         tmp_path: Path) -> None:
    from playwright.sync_api import sync_playwright

    ui = dashboard.url
    shots = tmp_path / "screenshots"
    shots.mkdir()
    print(f"screenshots: {shots}")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=ARGS, headless=True)
        page = browser.new_page(viewport={"width": 1400, "height": 900})
        page.set_default_timeout(30_000)
        try:
            page.goto(f"{ui}/v2/deployments", wait_until="networkidle")
            page.get_by_role("link", name="finetune").first.click()
            page.get_by_role("button", name="Run").first.click()
            page.get_by_role("menuitem", name="Custom run").click()
            page.get_by_role("button", name="Submit").wait_for()
            page.get_by_text("ProviderConfig").first.wait_for()  # the pipeline model rendered as a typed form
            page.screenshot(path=shots / "01-deployment-run-form.png")
            page.wait_for_load_state("networkidle")
            flow_run_id = _submit(page, ui)
            page.goto(f"{ui}/v2/runs/flow-run/{flow_run_id}", wait_until="networkidle")
            state = _wait_for(ui, flow_run_id, ("RUNNING", *_FINAL))
            page.reload(wait_until="networkidle")
            page.get_by_text(state.title(), exact=True).first.wait_for()
            page.screenshot(path=shots / "02-flow-run-running.png")

            state = _wait_for(ui, flow_run_id, _FINAL, timeout_s=240)
            worker_log = dashboard.home / "prefect" / "worker-loraflow-process.log"
            assert state == "COMPLETED", worker_log.read_text()[-3000:]
            ours = [log for log in _run_logs(ui, flow_run_id) if log["name"] == "loraflow"]
            messages = [log["message"] for log in ours]
            assert any(m.startswith("decision: ACCEPT") for m in messages), messages
            assert any(m.startswith("registered quickstart v") for m in messages), messages
            page.reload(wait_until="networkidle")
            page.get_by_text("Completed", exact=True).first.wait_for()
            # the Logs tab (oldest first) shows loraflow's lines among Prefect's
            page.get_by_text("train and 122 eval examples from bullets.jsonl").first.wait_for()
            page.screenshot(path=shots / "03-flow-run-completed-with-logs.png", full_page=True)

            page.get_by_role("tab", name="Artifacts").click()
            report = page.get_by_role("link", name="eval-report")
            report.wait_for()
            assert page.get_by_role("link", name="eval-comparison").is_visible()
            page.screenshot(path=shots / "04-artifacts.png", full_page=True)
            report.click()
            page.get_by_text("five_verb_bullets").first.wait_for()
            page.screenshot(path=shots / "05-eval-report.png", full_page=True)
            assert "ACCEPT" in page.inner_text("body")
        finally:
            page.screenshot(path=shots / "99-last.png")
            browser.close()
            _keep(shots)
    assert sorted(p.name for p in shots.glob("0*.png")) == [
        "01-deployment-run-form.png", "02-flow-run-running.png", "03-flow-run-completed-with-logs.png",
        "04-artifacts.png", "05-eval-report.png"]


def test_sigterm_stops_the_worker_and_the_server_and_frees_the_port(dashboard: Dashboard) -> None:
    """Runs last in this module: it stops the fixture's `loraflow ui`."""
    api_file = dashboard.home / "prefect" / "api-url"
    assert api_file.read_text() == f"{dashboard.url}/api"
    children = _children(dashboard.process.pid)
    assert len(children) == 2, children  # the Prefect server and one worker
    dashboard.process.send_signal(signal.SIGTERM)
    assert dashboard.process.wait(timeout=90) == 0, "".join(dashboard.output)
    assert "stopped the worker and the Prefect server" in "".join(dashboard.output)
    assert not [pid for pid in children if Path(f"/proc/{pid}").exists()
                and "Z" not in Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]]
    assert not api_file.exists()
    check_port_free(int(dashboard.url.rsplit(":", 1)[1]))  # a new `loraflow ui` can start at once
