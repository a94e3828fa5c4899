"""The two things the OpenAI store (openai/store.py) keeps: uploaded files and fine-tuning jobs, as plain
records.

A job record holds only what its creator sent and what people did to it (pauses, a cancel); its status,
events and checkpoints are derived on demand by `timeline.progress`.
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass, field
from typing import Any

from emulator.timeline import Progress, Timeline, progress


@dataclass
class FileRecord:
    id: str
    filename: str
    purpose: str
    bytes: int
    created_at: float
    problem: str | None = None  # why the content is not usable training data; None when it is

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FileRecord:
        return cls(**data)


@dataclass
class JobRecord:
    id: str
    created_at: float
    model: str
    training_file: str
    method: dict[str, Any]
    timeline: Timeline
    seed: int
    trained_tokens: int
    validation_file: str | None = None
    suffix: str | None = None
    metadata: dict[str, str] | None = None
    integrations: list[dict[str, Any]] | None = None
    pauses: list[tuple[float, float | None]] = field(default_factory=list)
    cancelled_at: float | None = None

    @property
    def key(self) -> str:
        return self.id.removeprefix("ftjob-")

    @property
    def fine_tuned_model(self) -> str:
        """The model id the job produces once it succeeds."""
        return f"ft:{self.model}:loraflow-emulator:{self.suffix or ''}:{self.key[-8:]}"

    @property
    def result_file_id(self) -> str:
        return "file-" + hashlib.sha256(self.id.encode()).hexdigest()[:24]

    @property
    def is_paused(self) -> bool:
        return bool(self.pauses) and self.pauses[-1][1] is None

    def progress(self, now: float) -> Progress:
        return progress(self.timeline, self.created_at, now, pauses=self.pauses,
                        cancelled_at=self.cancelled_at)

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "timeline": self.timeline.to_dict()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> JobRecord:
        pauses = [(start, stop) for start, stop in data["pauses"]]
        return cls(**{**data, "timeline": Timeline.from_dict(data["timeline"]), "pauses": pauses})
