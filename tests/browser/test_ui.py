"""The Prefect UI end to end: a real `prefect server` with its UI, `loraflow serve`, and headless Chromium.

The finetune deployment is started from the UI's custom run form, the run completes, and its eval report is
opened from the Artifacts tab. Screenshots go to a directory the test prints (and, with LORAFLOW_SCREENSHOTS
set, to runs/browser-screenshots/ or the directory it names). Chromium is Debian's (`.ci/run` installs it);
Playwright drives it, since Playwright's own browser download is not reachable here.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from cli.deployments import REPO, read_specs
from tests.cli.test_deployments import _wait_healthy, free_port
from tests.conftest import QUICKSTART
from tests.flows.pipelines import TARGET_ONLY

CHROMIUM = Path("/usr/bin/chromium")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]

pytestmark = pytest.mark.skipif(not CHROMIUM.exists(),
                                reason=f"{CHROMIUM} is missing (apt-get install chromium)")


def _stop(process: subprocess.Popen) -> None:
    process.terminate()
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@pytest.fixture
def served(tmp_path: Path) -> Iterator[str]:
    """A Prefect server with its UI and a `loraflow serve` process serving a fast finetune deployment."""
    port = free_port()
    ui = f"http://127.0.0.1:{port}"
    env = {**os.environ, "PREFECT_HOME": str(tmp_path / "prefect"), "PREFECT_API_URL": f"{ui}/api",
           "PREFECT_SERVER_ANALYTICS_ENABLED": "false", "PREFECT_SERVER_UI_SHOW_PROMOTIONAL_CONTENT": "false",
           "PREFECT_RUNNER_POLL_FREQUENCY": "1", "LORAFLOW_HOME": str(tmp_path / "loraflow")}
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
    logs = tmp_path / "logs"
    logs.mkdir()
    server = subprocess.Popen([sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1",
                               "--port", str(port)], env=env, stdout=(logs / "server.log").open("w"),
                              stderr=subprocess.STDOUT)
    serving = None
    try:
        _wait_healthy(env["PREFECT_API_URL"], server)
        serving = subprocess.Popen([sys.executable, "-m", "cli.app", "serve", "--prefect-file",
                                    str(prefect_file)], env=env, cwd=REPO,
                                   stdout=(logs / "serve.log").open("w"), stderr=subprocess.STDOUT)
        yield ui
    finally:
        for process in (serving, server):
            if process is not None:
                _stop(process)


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


def test_finetune_from_the_ui_run_form_completes_with_its_eval_report(served: str, tmp_path: Path) -> None:
    from playwright.sync_api import sync_playwright

    shots = tmp_path / "screenshots"
    shots.mkdir()
    print(f"screenshots: {shots}")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=ARGS, headless=True)
        page = browser.new_page(viewport={"width": 1400, "height": 900})
        page.set_default_timeout(30_000)
        try:
            page.goto(f"{served}/v2/deployments", wait_until="networkidle")
            deadline = time.monotonic() + 30  # the serve process registers its deployment after a few seconds
            while not page.get_by_role("link", name="finetune").count() and time.monotonic() < deadline:
                time.sleep(1)
                page.reload(wait_until="networkidle")
            page.get_by_role("link", name="finetune").first.click()
            page.get_by_role("button", name="Run").first.click()
            page.get_by_role("menuitem", name="Custom run").click()
            page.get_by_role("button", name="Submit").wait_for()
            page.get_by_text("ProviderConfig").first.wait_for()  # the pipeline model rendered as a typed form
            page.screenshot(path=shots / "01-deployment-run-form.png")
            page.wait_for_load_state("networkidle")
            flow_run_id = _submit(page, served)
            page.goto(f"{served}/v2/runs/flow-run/{flow_run_id}", wait_until="networkidle")
            state = _wait_for(served, flow_run_id, ("RUNNING", *_FINAL))
            page.reload(wait_until="networkidle")
            page.get_by_text(state.title(), exact=True).first.wait_for()
            page.screenshot(path=shots / "02-flow-run-running.png")

            state = _wait_for(served, flow_run_id, _FINAL)
            assert state == "COMPLETED", (tmp_path / "logs" / "serve.log").read_text()[-3000:]
            page.reload(wait_until="networkidle")
            page.get_by_text("Completed", exact=True).first.wait_for()
            page.screenshot(path=shots / "03-flow-run-completed.png")

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
        "01-deployment-run-form.png", "02-flow-run-running.png", "03-flow-run-completed.png",
        "04-artifacts.png", "05-eval-report.png"]
