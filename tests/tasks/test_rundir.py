"""Run directories: runs of one pipeline started in the same second each get a folder of their own."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from tasks.rundir import RunDir


def test_runs_started_at_once_never_share_a_folder(tmp_path: Path) -> None:
    with ThreadPoolExecutor(8) as pool:
        runs = list(pool.map(lambda _: RunDir.create(tmp_path, "p", "c" * 64), range(8)))
    assert len({run.root for run in runs}) == 8
    assert all(run.data_dir.is_dir() and run.manifest()["run"]["pipeline"] == "p" for run in runs)
