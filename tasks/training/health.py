"""Training health from the metrics a provider already returns: the classic failures, caught after the job.

    over-fitting      validation loss rising over the last part of the run while training loss still falls
    flat              training loss that does not move
                      (a learning rate too low, a broken dataset, a no-op job)
    memorising        training loss near zero at the end
    too many epochs   more passes than the data size warrants (rules of thumb from practice)

The verdict is advice, never a gate of its own: each finding becomes a warning in the decision's notes, and
the curve is drawn to a PNG in the run directory, linked from a markdown artifact.
"""

from __future__ import annotations

import io
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Literal

import numpy as np
from prefect import task
from prefect.artifacts import create_markdown_artifact
from scipy import stats

from providers.base import JobStatus, LossCurveSource, PreparedDataset, ReportsTemplateParity, TrainingSpec
from providers.errors import ProviderError
from tasks.policy import LOCAL_WORK
from tasks.progress import milestone
from tasks.rundir import RunDir, atomic_write, write_json

Verdict = Literal["healthy", "warning", "unknown"]
_MIN_POINTS = 5
_TAIL = 0.4  # the last part of the curve the trends are read from
_FLAT = 0.02  # relative change of the training loss below which it "did not move"
_RISE = 0.05  # validation loss this far above its minimum, at the end, is a rise
_MEMORISED = 0.02


@dataclass(frozen=True)
class Finding:
    code: str
    message: str
    advice: str


@dataclass
class Health:
    verdict: Verdict
    points: int
    findings: list[Finding] = field(default_factory=list)

    @property
    def warnings(self) -> list[str]:
        return [f"training health: {f.message}; {f.advice}" for f in self.findings]


@dataclass(frozen=True)
class Curve:
    steps: np.ndarray
    train: np.ndarray
    valid: np.ndarray  # NaN where the provider reported no validation loss

    @classmethod
    def of(cls, rows: Sequence[dict[str, float]]) -> Curve:
        rows = [r for r in rows if _finite(r.get("train_loss"))]
        steps = np.array([r.get("step", i + 1) for i, r in enumerate(rows)], dtype=float)
        train = np.array([r["train_loss"] for r in rows], dtype=float)
        valid = np.array([r.get("valid_loss", r.get("validation_loss", math.nan)) for r in rows], dtype=float)
        order = np.argsort(steps, kind="stable")
        return cls(steps[order], train[order], valid[order])


def _finite(value: object) -> bool:
    return isinstance(value, int | float) and math.isfinite(value)


def _tail_slope(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """Slope of the last part of a curve (per step, relative to its level) and its p-value."""
    start = min(int(len(x) * (1 - _TAIL)), len(x) - 3)
    fit = stats.linregress(x[start:], y[start:])
    level = abs(float(np.mean(y[start:]))) or 1.0
    return float(fit.slope) / level, float(fit.pvalue)


def curve_findings(curve: Curve) -> list[Finding]:
    found = []
    n = len(curve.train)
    edge = max(1, n // 10)
    head, end = float(np.mean(curve.train[:edge])), float(np.mean(curve.train[-edge:]))
    if abs(head - end) <= _FLAT * max(abs(head), 1e-9):
        found.append(Finding("flat", f"training loss did not move ({head:.3f} -> {end:.3f} over {n} points)",
                             "raise the learning rate, check the data reaches the trainer, "
                             "or check the job ran"))
    elif end < _MEMORISED:
        found.append(Finding("memorising", f"training loss fell to {end:.4f}", "the model is memorising the "
                             "training set: fewer epochs or more (and more varied) data"))
    valid = ~np.isnan(curve.valid)
    if valid.sum() >= 4:
        vx, vy = curve.steps[valid], curve.valid[valid]
        low = int(np.argmin(vy))
        rise = (vy[-1] - vy[low]) / max(abs(vy[low]), 1e-9)
        train_slope, _ = _tail_slope(curve.steps, curve.train)
        valid_slope, _ = _tail_slope(vx, vy)
        if low < len(vy) - 1 and rise > _RISE and valid_slope > 0 and train_slope < 0:
            found.append(Finding("overfitting", f"validation loss rose {rise:.0%} from its low at step "
                                 f"{vx[low]:g} while training loss kept falling", "fewer epochs (stop near "
                                 f"step {vx[low]:g}), a lower learning rate, or more data"))
    return found


def epoch_findings(epochs: int | None, train_examples: int | None) -> list[Finding]:
    """Rules of thumb: large sets need few passes; many passes over a small set memorise it."""
    if epochs is None or train_examples is None:
        return []
    limit = 3 if train_examples >= 10_000 else 5 if train_examples >= 1_000 else 10
    if epochs > limit:
        return [Finding("too_many_epochs", f"{epochs} epochs over {train_examples:,} examples",
                        f"at this size {limit} or fewer usually suffice; more passes over-fit")]
    return []


def classify(rows: Sequence[dict[str, float]], *, epochs: int | None = None,
             train_examples: int | None = None) -> Health:
    """The health of a run from its loss rows and its size; `unknown` when the curve is too short to read."""
    curve = Curve.of(rows)
    findings = epoch_findings(epochs, train_examples)
    if len(curve.train) < _MIN_POINTS:
        return Health("warning" if findings else "unknown", len(curve.train), findings)
    findings = curve_findings(curve) + findings
    return Health("warning" if findings else "healthy", len(curve.train), findings)


def plot_png(curve: Curve, title: str) -> bytes:
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    figure, axes = plt.subplots(figsize=(6, 3.5), dpi=100)
    try:
        axes.plot(curve.steps, curve.train, label="training loss")
        valid = ~np.isnan(curve.valid)
        if valid.any():
            axes.plot(curve.steps[valid], curve.valid[valid], marker="o", label="validation loss")
        axes.set(xlabel="step", ylabel="loss", title=title)
        axes.legend()
        buffer = io.BytesIO()
        figure.savefig(buffer, format="png", bbox_inches="tight")
        return buffer.getvalue()
    finally:
        plt.close(figure)


def render_markdown(health: Health, image: str | None) -> str:
    lines = [f"# Training health: {health.verdict.upper()}", "", f"{health.points} loss points read.", ""]
    lines += ([f"- **{f.code}**: {f.message}. {f.advice}." for f in health.findings]
              or ["- no known failure seen"])
    if image:
        lines += ["", f"![loss curve]({image})", "", f"[loss curve PNG]({image})"]
    return "\n".join(lines) + "\n"


def _rows(provider: object, status: JobStatus) -> tuple[list[dict[str, float]], str | None]:
    if isinstance(provider, LossCurveSource):
        try:
            return provider.loss_curve(status.job), None
        except ProviderError as exc:
            return [], f"the loss curve could not be read: {exc}"
    return [], "this provider hands back no loss curve; only the last step's metrics were seen"


def record_health(run: RunDir, rows: list[dict[str, float]], spec: TrainingSpec, data: PreparedDataset,
                  note: str | None = None, extra: Sequence[Finding] = ()) -> Health:
    """health.json, loss_curve.png and health.md under training/, and the manifest's `health` section;
    `extra` findings (template parity) join the loss curve's."""
    health = classify(rows, epochs=spec.epochs, train_examples=data.train_examples)
    if extra:
        health = Health("warning", health.points, [*health.findings, *extra])
    folder = run.root / "training"
    image = None
    if health.points:
        atomic_write(folder / "loss_curve.png", plot_png(Curve.of(rows), spec.base_model))
        image = (folder / "loss_curve.png").as_uri()
    atomic_write(folder / "health.md", render_markdown(health, image) + (f"\n{note}\n" if note else ""))
    write_json(folder / "health.json", {"verdict": health.verdict, "points": health.points, "note": note,
                                        "findings": [asdict(f) for f in health.findings], "curve": rows})
    run.record("health", {"verdict": health.verdict, "findings": [f.code for f in health.findings],
                          "file": "training/health.json"})
    return health


def _template_parity(provider: object, status: JobStatus, run: RunDir) -> list[Finding]:
    """The provider's template parity check, recorded (training/template_parity.json, the manifest), and the
    problems it found as findings of the health report (which the decision shows)."""
    if not isinstance(provider, ReportsTemplateParity):
        return []
    parity = provider.template_parity(status.job)
    if parity is None:
        return []
    write_json(run.root / "training" / "template_parity.json", parity)
    run.record("template_parity", {"ok": parity["ok"], "rows_checked": parity["rows_checked"],
                                   "problems": parity["problems"], "file": "training/template_parity.json"})
    return [Finding("template_parity", problem, "train and serve with the same chat template and make every "
                    "answer end with its end-of-turn token") for problem in parity["problems"]]


@task(name="training-health", **LOCAL_WORK)
def check_training_health(provider: object, status: JobStatus, spec: TrainingSpec, data: PreparedDataset,
                          run: RunDir) -> Health:
    rows, note = _rows(provider, status)
    if not rows and status.metrics.get("train_loss") is not None:
        rows = [{"step": float(status.step or 0), **status.metrics}]
    health = record_health(run, rows, spec, data, note, extra=_template_parity(provider, status, run))
    create_markdown_artifact(markdown=(run.root / "training" / "health.md").read_text(encoding="utf-8"),
                             key="training-health", description=f"training health: {health.verdict}")
    milestone("train", "training health: %s%s", health.verdict,
              "".join(f"; {f.code}" for f in health.findings))
    return health
