"""A read-only or full file system under the CLI: one line that names the path, a non-zero exit, no traceback.

Root ignores file modes, so each case mounts a small tmpfs (read-only, or filled) in a private mount
namespace (`unshare --user --mount`); where the kernel allows no user namespaces the cases are skipped.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from cli.deployments import REPO
from tests.conftest import QUICKSTART

FILL = "dd if=/dev/zero of={m}/fill bs=1k count=400 2>/dev/null; "
# case -> (what the mount point holds, shell lines that prepare it, the mounted path's role, what to say)
CASES: dict[str, tuple[str, str, str]] = {
    "read-only LORAFLOW_HOME": ("mount -t tmpfs -o ro tmpfs {m}; ", "home", "Read-only file system"),
    "read-only working directory": ("mount -t tmpfs -o ro tmpfs {m}; ", "cwd", "Read-only file system"),
    "read-only registry.db": (("mount --bind {m}/registry.db {m}/registry.db; "
                               "mount -o remount,ro,bind {m}/registry.db; "), "home", "readonly database"),
    "full LORAFLOW_HOME": ("mount -t tmpfs -o size=300k tmpfs {m}; " + FILL, "home", "full"),
    "full working directory": ("mount -t tmpfs -o size=300k tmpfs {m}; " + FILL, "cwd",
                               "manifest.json: No space left on device"),
}


def _namespaces_work() -> bool:
    if shutil.which("unshare") is None:
        return False
    done = subprocess.run(["unshare", "-rm", "true"], capture_output=True, check=False)
    return done.returncode == 0


pytestmark = pytest.mark.skipif(not _namespaces_work(),
                                reason="unshare -rm (a user namespace) is not allowed here")


@pytest.mark.parametrize("case", list(CASES))
def test_a_read_only_or_full_file_system_is_one_line_naming_the_path(case: str, tmp_path: Path) -> None:
    prepare, role, says = CASES[case]
    mount = tmp_path / "mounted"
    mount.mkdir()
    home = mount if role == "home" else tmp_path / "home"
    if "registry.db" in case:
        subprocess.run([sys.executable, "-m", "cli.app", "models", "list"], cwd=REPO, check=True,
                       env={**os.environ, "LORAFLOW_HOME": str(home)}, capture_output=True)
        arguments = ["models", "register", "x", "--served-name", "m"]
    else:
        arguments = ["run", str(QUICKSTART / "pipeline.yaml")]
    command = ["unshare", "-rm", "bash", "-c", prepare.format(m=mount) + 'cd "$0" && exec "$@"',
               str(mount if role == "cwd" else REPO), sys.executable, "-m", "cli.app", *arguments]
    env = {**os.environ, "LORAFLOW_HOME": str(home), "COLUMNS": "300",
           "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300, check=False)
    output = done.stdout + done.stderr
    assert done.returncode != 0, output
    assert "Traceback" not in output, output
    assert says in output, output
    assert str(mount) in output or "registry" in output, output
