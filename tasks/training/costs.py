"""Cost before the money is spent: an estimate from billable tokens x epochs x the catalog's price (plus
hosting where the tuned model needs a dedicated endpoint or provisioned throughput), a budget ceiling that
stops the run before upload, and an approval form above a threshold.

After the job, the actual cost (the provider's trained tokens at the same price) is reconciled against
the estimate and recorded in the manifest.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from prefect import task
from prefect.flow_runs import pause_flow_run
from prefect.input import RunInput
from pydantic import BaseModel, ConfigDict, Field

from providers.base import JobStatus, PreparedDataset, TrainingSpec
from providers.catalog import ModelFacts, model_facts
from providers.errors import ApprovalDeclined, ConfigError
from tasks.policy import LOCAL_WORK
from tasks.progress import milestone
from tasks.rundir import RunDir
from tasks.training.wait import SpendCeiling

DEFAULT_EPOCHS = 3  # what the hosted providers' "auto" settles on for a few hundred examples or more


class BudgetConfig(BaseModel):
    """The `budget:` section of the pipeline file."""

    model_config = ConfigDict(extra="forbid")

    max_usd: float | None = Field(default=None, gt=0, description="stop before upload above this estimate")
    approve_above_usd: float | None = Field(
        default=None, ge=0, description="pause for approval in the Prefect UI above this estimate")
    serving_hours: float = Field(default=730, ge=0, description="hours of hosting counted in the estimate "
                                                                "where the tuned model is not served per "
                                                                "token (730: a month)")
    hosting_usd_per_hour: float | None = Field(default=None, gt=0, description="your hosting price per hour "
                                                                                "(default: the catalog's)")
    approved_up_to_usd: float | None = Field(
        default=None, ge=0, description="an estimate up to this is approved ahead, without the form "
                                        "(loraflow run --approve-up-to USD); an unknown estimate still asks")
    approval_timeout_s: int = Field(default=24 * 3600, gt=0)
    approval_poll_s: int = Field(default=10, ge=1,
                                 description="how often the paused run checks for an answer")


class Serving(BaseModel):
    """Hosting the tuned model for the budget's serving_hours; usd None when the price is unknown."""

    model_config = ConfigDict(frozen=True)

    usd: float | None
    basis: str
    hours: float = 0.0
    usd_per_hour: float | None = None

    def describe(self) -> str:
        if self.usd is None:
            return f"unknown ({self.basis})"
        if self.usd_per_hour is None:
            return f"none ({self.basis})"
        return f"${self.usd:,.2f} = {self.hours:g} h x ${self.usd_per_hour:g}/h ({self.basis})"


def serving_cost(facts: ModelFacts | None, budget: BudgetConfig) -> Serving:
    """Hosting counts where the catalog says a LoRA fine-tune is not served per token."""
    if facts is None or facts.serverless_lora is not False:
        return Serving(usd=0.0, basis="served per token")
    rate = budget.hosting_usd_per_hour or facts.hosting_usd_per_hour
    if rate is None:
        return Serving(usd=None, basis="needs a dedicated endpoint; no hosting price in the catalog, set "
                                       "budget.hosting_usd_per_hour", hours=budget.serving_hours)
    where = "budget.hosting_usd_per_hour" if budget.hosting_usd_per_hour else f"catalog as of {facts.as_of}"
    return Serving(usd=rate * budget.serving_hours, basis=f"dedicated hosting, {where}",
                   hours=budget.serving_hours, usd_per_hour=rate)


class CostEstimate(BaseModel):
    model_config = ConfigDict(frozen=True)

    training_usd: float | None
    billable_tokens: int | None
    epochs: int
    usd_per_1m_tokens: float | None
    basis: str = Field(description="where the price came from, or why there is none")
    serving: Serving = Field(default_factory=lambda: Serving(usd=0.0, basis="served per token"))

    @property
    def total_usd(self) -> float | None:
        """Training plus hosting; None when either is unknown."""
        if self.training_usd is None or self.serving.usd is None:
            return None
        return self.training_usd + self.serving.usd

    def describe(self) -> str:
        if self.training_usd is None:
            training = f"no training estimate ({self.basis})"
        else:
            training = (f"${self.training_usd:,.2f} = {self.billable_tokens:,} tokens x {self.epochs} epochs "
                        f"x ${self.usd_per_1m_tokens:g}/1M ({self.basis})")
        return training if self.serving.usd == 0 else f"{training}; hosting {self.serving.describe()}"


def estimate_cost(facts: ModelFacts | None, billable_tokens: int | None, epochs: int | None,
                  budget: BudgetConfig | None = None) -> CostEstimate:
    serving = serving_cost(facts, budget or BudgetConfig())
    epochs = epochs or DEFAULT_EPOCHS
    why = None
    if billable_tokens is None:
        why = "the prepared data has no token count"
    elif facts is None or facts.training_usd_per_1m_tokens is None:
        why = "the catalog has no training price for this model"
    if why is not None:
        return CostEstimate(training_usd=None, billable_tokens=billable_tokens, epochs=epochs,
                            usd_per_1m_tokens=None, basis=why, serving=serving)
    price = facts.training_usd_per_1m_tokens
    basis = f"catalog {facts.provider}/{facts.model_id} as of {facts.as_of}"
    return CostEstimate(training_usd=billable_tokens * epochs * price / 1e6, billable_tokens=billable_tokens,
                        epochs=epochs, usd_per_1m_tokens=price, basis=basis, serving=serving)


def actual_cost(estimate: CostEstimate, trained_tokens: int | None) -> dict[str, Any]:
    """The reconciliation recorded after the job: the provider's trained tokens at the estimate's price."""
    if trained_tokens is None or estimate.usd_per_1m_tokens is None or estimate.billable_tokens is None:
        return {"estimate_usd": estimate.training_usd, "actual_usd": None, "trained_tokens": trained_tokens}
    actual = trained_tokens * estimate.usd_per_1m_tokens / 1e6
    return {"estimate_usd": estimate.training_usd, "actual_usd": actual, "trained_tokens": trained_tokens,
            "estimated_tokens": estimate.billable_tokens * estimate.epochs,
            "error_pct": None if not estimate.training_usd else 100 * (actual / estimate.training_usd - 1)}


class BudgetApproval(RunInput):
    """The form shown in the Prefect UI when an estimate needs a person's approval."""

    approve: bool = Field(default=False, description="Start the training job at this cost?")
    reviewer: str = Field(default="", description="Who decided")
    note: str = Field(default="", description="Why")


Ask = Callable[..., BudgetApproval | None]


def check_budget(estimate: CostEstimate, budget: BudgetConfig, *, ask: Ask) -> BudgetApproval | None:
    """Raise ConfigError above max_usd; above approve_above_usd, ask for approval.

    Raises ApprovalDeclined if refused. Returns the approval when one was given. With no price known, the
    ceilings cannot be checked, so a configured ceiling turns into a question for a person rather than a
    silent pass.
    """
    cost = estimate.total_usd
    if budget.max_usd is not None and cost is not None and cost > budget.max_usd:
        raise ConfigError(f"budget.max_usd: the estimate {estimate.describe()} exceeds "
                          f"${budget.max_usd:,.2f}; nothing was uploaded")
    needs_approval = (budget.approve_above_usd is not None
                      and (cost is None or cost > budget.approve_above_usd))
    if budget.max_usd is not None and cost is None:
        needs_approval = True
    if not needs_approval:
        return None
    if budget.approved_up_to_usd is not None and cost is not None and cost <= budget.approved_up_to_usd:
        return BudgetApproval(approve=True, reviewer="approved ahead (--approve-up-to)",
                              note=f"the estimate {_usd(cost)} is within {_usd(budget.approved_up_to_usd)}")
    milestone("upload", "waiting for a person to approve %s: %s", _usd(cost), _where_to_approve(budget))
    form = BudgetApproval.with_initial_data(description=_approval_markdown(estimate, budget))
    answer = ask(wait_for_input=form, timeout=budget.approval_timeout_s, poll_interval=budget.approval_poll_s,
                 key="budget-approval")
    if answer is None or not answer.approve:
        who = f" by {answer.reviewer}" if answer and answer.reviewer else ""
        why = f": {answer.note}" if answer and answer.note else ""
        raise ApprovalDeclined(f"the training cost was not approved{who}{why}; nothing was uploaded")
    return answer


def _where_to_approve(budget: BudgetConfig) -> str:
    """Where the paused run's form is, how long it waits, and the way around it from the command line."""
    from prefect.runtime import flow_run
    from prefect.settings import get_current_settings

    ui = get_current_settings().ui_url
    page = f"{ui}/runs/flow-run/{flow_run.id}" if ui and flow_run.id else "the run's page in the Prefect UI"
    limit = f"above {_usd(budget.approve_above_usd)}" if budget.approve_above_usd is not None else "unpriced"
    return (f"the estimate is {limit}; answer the form at {page} (loraflow ui shows it) within "
            f"{budget.approval_timeout_s / 3600:g} h, or stop and re-run with --approve-up-to USD")


def _approval_markdown(estimate: CostEstimate, budget: BudgetConfig) -> str:
    cost = "unknown" if estimate.training_usd is None else f"${estimate.training_usd:,.2f}"
    tokens = "unknown" if estimate.billable_tokens is None else f"{estimate.billable_tokens:,}"
    rows = [("estimated training cost", cost), ("hosting", estimate.serving.describe()),
            ("total", _usd(estimate.total_usd)), ("billable tokens", tokens),
            ("epochs", str(estimate.epochs)),
            ("price", "unknown" if estimate.usd_per_1m_tokens is None
             else f"${estimate.usd_per_1m_tokens:g} per 1M"),
            ("basis", estimate.basis), ("approval threshold", _usd(budget.approve_above_usd)),
            ("hard ceiling", _usd(budget.max_usd))]
    table = "\n".join(f"| {name} | {value} |" for name, value in rows)
    return f"## Approve the fine-tuning cost?\n\n| | |\n|---|---|\n{table}\n\nNothing has been uploaded yet."


def _usd(value: float | None) -> str:
    return "none" if value is None else f"${value:,.2f}"


@task(name="budget-gate", **LOCAL_WORK)
def budget_gate(data: PreparedDataset, provider: str, spec: TrainingSpec, budget: BudgetConfig, run: RunDir
                ) -> CostEstimate:
    """Estimate the training cost, record it, and stop or ask for approval as the budget says."""
    estimate = estimate_cost(model_facts(provider, spec.base_model), data.train_tokens, spec.epochs, budget)
    run.record("cost", {"estimate": estimate.model_dump(mode="json")})
    milestone("upload", "estimated cost: %s", estimate.describe())
    approval = check_budget(estimate, budget, ask=pause_flow_run)
    if approval is not None:
        run.record("cost", {"estimate": estimate.model_dump(mode="json"), "approval": approval.model_dump()})
    return estimate


def spend_ceiling(estimate: CostEstimate, budget: BudgetConfig) -> SpendCeiling | None:
    if estimate.training_usd is None or budget.max_usd is None:
        return None
    return SpendCeiling(estimate_usd=estimate.training_usd, max_usd=budget.max_usd)


def record_actual_cost(run: RunDir, estimate: CostEstimate, done: JobStatus) -> None:
    section = run.manifest().get("cost", {})
    run.record("cost", {**section, "reconciled": actual_cost(estimate, done.trained_tokens)})
