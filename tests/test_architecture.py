"""The house rules that hold the rooms apart: import contracts, the line length, module size.

The import contracts (pyproject.toml [tool.importlinter]) are design.md's layers (cli -> flows -> gateway ->
tasks -> providers), no product code importing the emulator, vendor SDKs only inside their provider package,
vendors independent of each other, and no import cycles anywhere.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PRODUCT = ("cli", "flows", "gateway", "tasks", "providers", "emulator")
MAX_MODULE_LINES = 400


def _tool(name: str) -> str:
    return str(Path(sys.executable).parent / name)


def test_the_import_contracts_hold() -> None:
    done = subprocess.run([_tool("lint-imports"), "--no-cache"], cwd=REPO, capture_output=True, text=True,
                          timeout=120, check=False)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    assert "BROKEN" not in done.stdout


def test_ruff_passes_with_the_line_length_enforced() -> None:
    done = subprocess.run([_tool("ruff"), "check", "--no-cache", "."], cwd=REPO, capture_output=True,
                          text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stdout[-4000:]


def test_no_product_module_is_over_the_size_budget() -> None:
    sizes = {str(path.relative_to(REPO)): len(path.read_text(encoding="utf-8").splitlines())
             for package in PRODUCT for path in (REPO / package).rglob("*.py")}
    assert sizes and {path: n for path, n in sizes.items() if n > MAX_MODULE_LINES} == {}
