"""Hostile input to the CLI, one row per case: the command exits non-zero, prints no traceback, and its
message names the cause. Commands run as the installed entry point does (`cli.app:main`, the one error
boundary)."""

from __future__ import annotations

import gzip
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from cli.deployments import REPO
from tests.conftest import QUICKSTART

PIPELINE = yaml.safe_load((QUICKSTART / "pipeline.yaml").read_text(encoding="utf-8"))


def _pipeline(tmp: Path, **changes: object) -> str:
    document = {**PIPELINE, "data": {**PIPELINE["data"], "path": str(QUICKSTART / PIPELINE["data"]["path"])},
                **changes}
    path = tmp / "pipeline.yaml"
    path.write_text(yaml.safe_dump(document), encoding="utf-8")
    return str(path)


def _raw(tmp: Path, content: bytes, name: str = "pipeline.yaml") -> str:
    path = tmp / name
    path.write_bytes(content)
    return str(path)


def _home(tmp: Path) -> Path:
    return tmp / "home"


def _garbage_registry(tmp: Path) -> str:
    _home(tmp).mkdir(parents=True, exist_ok=True)
    (_home(tmp) / "registry.db").write_bytes(b"this is not a database at all" * 100)
    return "list"


def _loop(tmp: Path) -> str:
    (tmp / "a.jsonl").symlink_to(tmp / "b.jsonl")
    (tmp / "b.jsonl").symlink_to(tmp / "a.jsonl")
    return _pipeline(tmp, data={"path": str(tmp / "a.jsonl")})


# case -> (arguments built in a scratch directory, what the message must say)
CASES: dict[str, tuple[Callable[[Path], list[str]], str]] = {
    "config check: not UTF-8": (lambda t: ["config", "check", _raw(t, b"name: caf\xe9\n")], "not UTF-8"),
    "run: not UTF-8": (lambda t: ["run", _raw(t, b"name: \xff\xfe\n")], "not UTF-8"),
    "doctor: not UTF-8": (lambda t: ["doctor", _raw(t, b"\xff\n")], "not UTF-8"),
    "eval: not UTF-8": (lambda t: ["eval", _raw(t, b"\xff\n"), "--candidate", "m"], "not UTF-8"),
    "data prepare: not UTF-8": (lambda t: ["data", "prepare", _raw(t, b"\xff\n")], "not UTF-8"),
    "a gzip pipeline": (lambda t: ["config", "check", _raw(t, gzip.compress(b"name: x\n"))], "gzip"),
    "pipeline path is a directory": (lambda t: ["config", "check", str(t)], "a directory"),
    "brackets in the file name": (lambda t: ["config", "check", str(t / "[bold]x[/].yaml")], "[bold]x[/]"),
    "a 300-character name": (lambda t: ["config", "check", _pipeline(t, name="a" * 300)], "name"),
    "a bad name keeps its pattern": (lambda t: ["doctor", _pipeline(t, name="Bad Name")], "[a-z0-9]"),
    "epochs: true": (lambda t: ["config", "check", _pipeline(t, training={**PIPELINE["training"],
                                                                          "epochs": True})],
                     "training.epochs: expected a number, got true"),
    "duplicate keys": (lambda t: ["config", "check", _raw(t, b"name: a\nname: b\n")], "appears twice"),
    "max_usd: .inf": (lambda t: ["config", "check", _raw(t, (yaml.safe_dump(
        {**PIPELINE, "data": {"path": str(QUICKSTART / "data" / "bullets.jsonl")}})
        + "budget: {max_usd: .inf}\n").encode())], "budget.max_usd"),
    "data path is a directory": (lambda t: ["config", "check", _pipeline(t, data={"path": str(t)})],
                                 "is a directory"),
    "data path is /dev/null": (lambda t: ["config", "check", _pipeline(t, data={"path": "/dev/null"})],
                               "not a regular file"),
    "data path is a symlink loop": (lambda t: ["config", "check", _loop(t)], "symlink loop"),
    "unknown registry scheme": (lambda t: ["models", "list", "--registry", "mongo://x/y"],
                                "allowed: sqlite, postgresql"),
    "garbage registry.db": (lambda t: ["models", _garbage_registry(t)], "registry database"),
    "models register ''": (lambda t: ["models", "register", "", "--served-name", "m"], "model name"),
    "models canary of an unknown name": (lambda t: ["models", "canary", "ghost"], "ghost@challenger"),
    "data check --eval-file missing": (lambda t: ["data", "check", str(QUICKSTART / "data" / "bullets.jsonl"),
                                                  "--eval-file", str(t / "nope.jsonl")], "nope.jsonl"),
    "emulator --port 99999": (lambda t: ["emulator", "--port", "99999"], "'--port'"),
    "a bad --prefect-file": (lambda t: ["deploy", "--prefect-file", _raw(t, b"- just\n- a list\n", "p.yaml")],
                             "deployments"),
    "a corrupted emulator state.json": (lambda t: _broken_state(t), "state.json"),
    "a truncated registry.db": (lambda t: ["models", _truncated_registry(t)], "file is not a database"),
    "compare on a bad manifest": (lambda t: ["compare", *_bad_runs(t)], "manifest.json: not valid JSON"),
    "emulator --state-dir /dev/null": (lambda t: ["emulator", "--port", "0", "--state-dir", "/dev/null"],
                                       "/dev/null"),
}


def _truncated_registry(tmp: Path) -> str:
    _home(tmp).mkdir(parents=True, exist_ok=True)
    (_home(tmp) / "registry.db").write_bytes(b"SQLite format 3\x00" + b"\x00" * 40)  # cut after its header
    return "list"


def _bad_runs(tmp: Path) -> list[str]:
    for name, manifest in (("a", "{not json"), ("b", "{}")):
        (tmp / name).mkdir()
        (tmp / name / "manifest.json").write_text(manifest, encoding="utf-8")
    return [str(tmp / "a"), str(tmp / "b")]


def _broken_state(tmp: Path) -> list[str]:
    state = _home(tmp) / "emulator"
    state.mkdir(parents=True)
    (state / "state.json").write_text('{"timeline": {"validating_s": ', encoding="utf-8")
    return ["run", _pipeline(tmp)]


@pytest.mark.parametrize("case", list(CASES))
def test_a_hostile_input_is_one_clear_line_and_a_non_zero_exit(case: str, tmp_path: Path) -> None:
    build, says = CASES[case]
    arguments = build(tmp_path)
    env = {**os.environ, "LORAFLOW_HOME": str(_home(tmp_path)), "COLUMNS": "300"}
    done = subprocess.run([sys.executable, "-m", "cli.app", *arguments], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=180, check=False)
    output = done.stdout + done.stderr
    assert done.returncode != 0, output
    assert "Traceback" not in output, output
    assert says in output, output
