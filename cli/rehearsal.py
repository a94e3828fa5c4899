"""The loopback emulator for pipelines that rehearse offline (`endpoint: emulator`).

The CLI is the only product code that starts it. A command that runs such a pipeline uses the one emulator
of its $LORAFLOW_HOME (emulator/shared.py): the first starts it as a process of its own with its state
under $LORAFLOW_HOME/emulator, concurrent commands share it, and it stops once the last has finished. So a
re-run after a crash finds the files and jobs of the earlier run there, as it would at the vendor, and three
runs at once see one state. LORAFLOW_EMULATOR_URL tells the provider connection (tasks/connection.py) where
it is; an emulator already named there is used as it is, once it answers.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

from emulator.shared import shared_emulator
from tasks.connection import EMULATOR, EMULATOR_URL, emulator_apis
from tasks.progress import milestone
from tasks.registry import loraflow_home


@contextmanager
def emulator_for(*endpoints: object) -> Iterator[None]:
    """The emulator while the block runs when one of `endpoints` is `emulator` and none is named yet.
    A named one that does not answer is a ConfigError: its state (files, jobs) is what the run expects."""
    if EMULATOR not in endpoints:
        yield
        return
    if named := os.environ.get(EMULATOR_URL):
        emulator_apis(named, advice="start it there, or unset the variable and this command starts its own")
        yield
        return
    state_dir = loraflow_home() / "emulator"
    with shared_emulator(state_dir) as emulator:
        emulator_apis(emulator.url, advice=f"stop process {emulator.pid}; the next command starts another")
        try:
            os.environ[EMULATOR_URL] = emulator.url
            milestone("prepare", "%s the loopback emulator at %s (pid %d, state in %s)",
                      "started" if emulator.started else "sharing", emulator.url, emulator.pid, state_dir)
            yield
        finally:
            os.environ.pop(EMULATOR_URL, None)
