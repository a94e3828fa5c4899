from __future__ import annotations

import logging

import pytest

from providers.catalog import model_facts
from providers.errors import ApprovalDeclined, ConfigError
from tasks.training.costs import BudgetApproval, BudgetConfig, actual_cost, check_budget, estimate_cost

FACTS = model_facts("openai", "gpt-4o-mini-2024-07-18")


def test_estimate_is_tokens_times_epochs_times_price() -> None:
    estimate = estimate_cost(FACTS, 1_000_000, 3)
    assert estimate.training_usd == pytest.approx(9.0)
    assert "catalog openai/gpt-4o-mini-2024-07-18" in estimate.describe()
    assert estimate_cost(FACTS, 1_000_000, None).epochs == 3
    assert estimate_cost(None, 1_000_000, 3).training_usd is None
    assert estimate_cost(FACTS, None, 3).basis == "the prepared data has no token count"


def test_reconciliation_compares_trained_tokens_with_the_estimate() -> None:
    reconciled = actual_cost(estimate_cost(FACTS, 1_000_000, 3), 3_300_000)
    assert reconciled["actual_usd"] == pytest.approx(9.9) and reconciled["error_pct"] == pytest.approx(10.0)


class Asked:
    def __init__(self, answer: BudgetApproval | None) -> None:
        self.answer, self.calls = answer, []

    def __call__(self, **kwargs: object) -> BudgetApproval | None:
        self.calls.append(kwargs)
        return self.answer


def test_max_usd_stops_before_upload_without_asking() -> None:
    ask = Asked(BudgetApproval(approve=True))
    with pytest.raises(ConfigError, match=r"budget.max_usd: the estimate \$9.00 .* exceeds \$5.00"):
        check_budget(estimate_cost(FACTS, 1_000_000, 3), BudgetConfig(max_usd=5), ask=ask)
    assert ask.calls == []


def test_approval_is_asked_above_the_threshold_with_the_estimate_in_the_form() -> None:
    ask = Asked(BudgetApproval(approve=True, reviewer="ana"))
    budget = BudgetConfig(approve_above_usd=1, max_usd=50)
    assert check_budget(estimate_cost(FACTS, 1_000_000, 3), budget, ask=ask).reviewer == "ana"
    form = ask.calls[0]["wait_for_input"]
    assert "| estimated training cost | $9.00 |" in form._description
    assert check_budget(estimate_cost(FACTS, 100_000, 3), budget, ask=Asked(None)) is None  # $0.90: below


def test_a_refusal_or_a_timeout_declines() -> None:
    budget = BudgetConfig(approve_above_usd=1)
    with pytest.raises(ApprovalDeclined, match="not approved by bo: too pricey"):
        check_budget(estimate_cost(FACTS, 1_000_000, 3), budget,
                     ask=Asked(BudgetApproval(approve=False, reviewer="bo", note="too pricey")))
    with pytest.raises(ApprovalDeclined):
        check_budget(estimate_cost(FACTS, 1_000_000, 3), budget, ask=Asked(None))


def test_an_unknown_price_with_a_ceiling_asks_a_person() -> None:
    ask = Asked(BudgetApproval(approve=True))
    check_budget(estimate_cost(None, 1_000, 3), BudgetConfig(max_usd=5), ask=ask)
    assert len(ask.calls) == 1


def test_hosting_counts_where_a_tuned_model_needs_a_dedicated_endpoint() -> None:
    dedicated = FACTS.model_copy(update={"serverless_lora": False, "hosting_usd_per_hour": 4.0})
    estimate = estimate_cost(dedicated, 1_000_000, 3, BudgetConfig(serving_hours=100))
    assert (estimate.serving.usd, estimate.total_usd) == (pytest.approx(400.0), pytest.approx(409.0))
    assert "hosting $400.00 = 100 h x $4/h" in estimate.describe()
    with pytest.raises(ConfigError, match="exceeds"):  # $9 of training fits, the month of hosting does not
        check_budget(estimate, BudgetConfig(max_usd=50), ask=Asked(None))
    assert estimate_cost(FACTS, 1_000_000, 3).serving.usd == 0  # served per token: no hosting line
    unknown = estimate_cost(dedicated.model_copy(update={"hosting_usd_per_hour": None}), 1_000_000, 3)
    assert unknown.total_usd is None and "budget.hosting_usd_per_hour" in unknown.serving.basis
    own = estimate_cost(dedicated, 1_000_000, 3, BudgetConfig(serving_hours=10, hosting_usd_per_hour=1.5))
    assert own.serving.usd == pytest.approx(15.0)


def test_a_wait_for_approval_says_what_it_waits_for_and_how_to_skip_it(caplog: pytest.LogCaptureFixture
                                                                        ) -> None:
    """Before: `loraflow run` stopped after "estimated cost" and printed nothing for up to 24 hours."""
    budget = BudgetConfig(approve_above_usd=1, approval_timeout_s=7200)
    with caplog.at_level(logging.INFO, logger="loraflow"):
        check_budget(estimate_cost(FACTS, 1_000_000, 3), budget, ask=Asked(BudgetApproval(approve=True)))
    (said,) = [r.getMessage() for r in caplog.records if "waiting" in r.getMessage()]
    assert "$9.00" in said and "above $1.00" in said and "2 h" in said and "--approve-up-to" in said


def test_an_estimate_approved_ahead_starts_without_the_form() -> None:
    ask = Asked(None)
    ahead = BudgetConfig(approve_above_usd=1, approved_up_to_usd=10)
    approval = check_budget(estimate_cost(FACTS, 1_000_000, 3), ahead, ask=ask)  # $9.00 <= $10
    assert approval.approve and "--approve-up-to" in approval.reviewer and ask.calls == []
    with pytest.raises(ApprovalDeclined):  # $18.00 is above what was approved ahead: the form is asked
        check_budget(estimate_cost(FACTS, 2_000_000, 3), ahead, ask=ask)
    assert len(ask.calls) == 1
