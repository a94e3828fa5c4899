"""The loopback emulator for pipelines that rehearse offline (`endpoint: emulator`).

The CLI is the only product code that starts it. For the lifetime of a command that runs such a pipeline,
an emulator serves on a free loopback port with its state under $LORAFLOW_HOME/emulator, so a re-run after a
crash finds the files and jobs of the earlier run there, as it would at the vendor; LORAFLOW_EMULATOR_URL
tells the provider connection (tasks/connection.py) where it is. An emulator already named there is used as
it is, once it answers.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

from emulator import EmulatorServer
from tasks.connection import EMULATOR, EMULATOR_URL, emulator_apis
from tasks.progress import milestone
from tasks.registry import loraflow_home


@contextmanager
def emulator_for(*endpoints: object) -> Iterator[None]:
    """Run the emulator while the block runs when one of `endpoints` is `emulator` and none is named yet.
    A named one that does not answer is a ConfigError: its state (files, jobs) is what the run expects."""
    if EMULATOR not in endpoints:
        yield
        return
    if named := os.environ.get(EMULATOR_URL):
        emulator_apis(named, advice="start it there, or unset the variable and this command starts its own")
        yield
        return
    with EmulatorServer(state_dir=loraflow_home() / "emulator") as server:
        try:
            os.environ[EMULATOR_URL] = server.url
            milestone("prepare", "started the loopback emulator at %s", server.url)
            yield
        finally:
            os.environ.pop(EMULATOR_URL, None)
