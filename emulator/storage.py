"""Where the store's bytes go: memory, or a state directory that survives a restart.

On disk, an uploaded file is `<state_dir>/files/<id>` and each snapshot is a JSON file beside it
(`state.json` for the core, and a file of their own for the vendors that keep one, such as
`vertex.json`), replaced atomically (temporary file + os.replace) so a crash mid-write never leaves half
a snapshot.
"""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path
from typing import Any

from providers.errors import ConfigError

SNAPSHOT = "state.json"


class Storage:
    def __init__(self, state_dir: str | Path | None = None) -> None:
        self.state_dir = Path(state_dir) if state_dir is not None else None
        self._blobs: dict[str, bytes] = {}
        if self.state_dir is not None:
            (self.state_dir / "files").mkdir(parents=True, exist_ok=True)

    def write_blob(self, name: str, content: bytes) -> None:
        if self.state_dir is None:
            self._blobs[name] = content
        else:
            (self.state_dir / "files" / name).write_bytes(content)

    def read_blob(self, name: str) -> bytes:
        if self.state_dir is None:
            return self._blobs[name]
        return (self.state_dir / "files" / name).read_bytes()

    def save(self, snapshot: dict[str, Any], file: str = SNAPSHOT) -> None:
        """Replace `<state_dir>/<file>` with the snapshot (a no-op without a state directory)."""
        if self.state_dir is None:
            return
        target = self.state_dir / file
        temporary = target.with_name(f".{target.stem}.{os.getpid()}.{threading.get_ident()}.tmp")
        temporary.write_text(json.dumps(snapshot, indent=1), encoding="utf-8")
        os.replace(temporary, target)

    def load(self, file: str = SNAPSHOT) -> dict[str, Any] | None:
        """The last saved snapshot in `file`, or None when there is none (or no state directory)."""
        if self.state_dir is None or not (self.state_dir / file).exists():
            return None
        path = self.state_dir / file
        try:
            snapshot = json.loads(path.read_text(encoding="utf-8"))
        except (ValueError, UnicodeDecodeError) as exc:
            raise ConfigError(f"{path}: the emulator's saved state is damaged ({exc}); move the file away to "
                              "start the emulator with an empty state") from None
        if not isinstance(snapshot, dict):
            raise ConfigError(f"{path}: the emulator's saved state is not a JSON object; move the file away")
        return snapshot
