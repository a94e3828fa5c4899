"""Sticky hashing, the always-valid test and the canary rule, on simulated traffic with known effects."""

from __future__ import annotations

import math
from collections import Counter

import numpy as np
import pytest

from tasks.release.ab import Moments, arm_for, bucket, confidence_sequence, fnv1a32, srm_p_value, verdict
from tasks.release.canary import CanaryPolicy, Snapshot, Window, decide
from tests.tasks.release.canary_sim import Arm, assigned_share, simulate


def test_fnv1a32_matches_the_published_vectors():
    assert fnv1a32("") == 0x811C9DC5
    assert fnv1a32("a") == 0xE40C292C
    assert fnv1a32("foobar") == 0xBF9CF968


def test_assignment_is_sticky_monotone_and_close_to_the_weight():
    users = [f"u{i}" for i in range(20_000)]
    at5 = {u for u in users if arm_for(bucket("exp", "salt", u), 0.05) == "treatment"}
    at10 = {u for u in users if arm_for(bucket("exp", "salt", u), 0.10) == "treatment"}
    assert at5 < at10  # ramping only adds users
    assert abs(len(at5) / len(users) - 0.05) < 0.005 and abs(len(at10) / len(users) - 0.10) < 0.007
    other_salt = {u for u in users if arm_for(bucket("exp", "other", u), 0.10) == "treatment"}
    assert len(other_salt & at10) < 0.2 * len(at10)  # a new salt reshuffles: experiments are independent
    assert assigned_share(0.0, 1000) == 0.0 and assigned_share(1.0, 1000) == 1.0


def test_confidence_sequence_covers_and_separates():
    rng = np.random.default_rng(1)
    same = confidence_sequence(Moments.of(rng.normal(0, 1, 4000)), Moments.of(rng.normal(0, 1, 4000)))
    assert same.low < 0 < same.high and same.p_value > 0.05
    better = confidence_sequence(Moments.of(rng.normal(0.2, 1, 4000)), Moments.of(rng.normal(0, 1, 4000)))
    assert 0 < better.low < 0.2 < better.high and better.p_value < 0.01
    early = confidence_sequence(Moments.of([1.0] * 5), Moments.of([0.0] * 5))
    assert not early.ready and math.isinf(early.low)
    fixed_half = 1.96 * math.sqrt(2 / 4000)  # the always-valid interval is wider than a fixed-horizon one
    assert (better.high - better.low) / 2 > fixed_half
    assert verdict(better, 0.05, higher_is_worse=True) == "harmful"
    assert verdict(same, 0.2, higher_is_worse=True) == "fine"


def test_srm_flags_a_skewed_split_only():
    assert srm_p_value({"treatment": 900, "control": 19_100}, {"treatment": 0.05, "control": 0.95}) == \
        pytest.approx(0.0012, abs=2e-4)  # eval_ab.md §4.4's worked example
    assert srm_p_value({"treatment": 1000, "control": 19_000}, {"treatment": 0.05, "control": 0.95}) > 0.9


def test_null_experiments_are_rarely_promoted():
    policy, rng = CanaryPolicy(), np.random.default_rng(20261130)
    outcomes = Counter(simulate(policy, Arm(), Arm(), rng=rng).decision.action for _ in range(200))
    assert outcomes["promote"] / 200 <= 0.05, outcomes
    assert outcomes["inconclusive"] >= 150, outcomes  # most nulls run out the clock, not roll back


def test_a_real_gain_is_promoted_after_the_ramp():
    policy, rng = CanaryPolicy(), np.random.default_rng(3)
    runs = [simulate(policy, Arm(), Arm(score_mean=3.65), rng=rng) for _ in range(10)]
    assert sum(r.decision.action == "promote" for r in runs) >= 9
    promoted = next(r for r in runs if r.decision.action == "promote")
    assert promoted.weight == policy.ramp[-1] and promoted.elapsed_s >= policy.min_duration_s
    assert promoted.decision.weight == 1.0 and promoted.decision.primary.low > 0


@pytest.mark.parametrize("harm", [Arm(score_mean=3.0), Arm(error=0.06), Arm(log_latency_mean=math.log(2000)),
                                  Arm(refusal=0.08)])
def test_harm_is_rolled_back_before_the_ramp_finishes(harm):
    policy = CanaryPolicy()
    result = simulate(policy, Arm(), harm, rng=np.random.default_rng(5))
    assert result.decision.action == "rollback" and result.decision.weight == 0.0
    assert result.weight < policy.ramp[-1], result


def test_a_heavier_latency_tail_with_the_same_median_is_rolled_back_on_p95():
    # same geometric mean, p95 1.28x the control's: under the 2x breaker, and the mean guardrail sees nothing
    result = simulate(CanaryPolicy(), Arm(), Arm(log_latency_sd=0.55), rng=np.random.default_rng(7))
    assert result.decision.action == "rollback"
    assert result.decision.reason == "guardrail beyond its margin: over_control_p95"


def test_breaker_fires_on_a_window_without_statistics_on_the_totals():
    policy = CanaryPolicy()
    ok = Window(requests=1000, error_rate=0.01, p95_ms=900, schema_failure_rate=0.0)
    slow = Window(requests=1000, error_rate=0.01, p95_ms=2500, schema_failure_rate=0.0)
    snapshot = Snapshot(0.05, 3600, 3600, {"treatment": 50, "control": 950}, {},
                        {"treatment": slow, "control": ok})
    decision = decide(policy, snapshot)
    assert decision.action == "rollback" and "p95 latency" in decision.reason
    calm = Snapshot(0.05, 3600, 3600, {"treatment": 50, "control": 950}, {}, {"treatment": ok, "control": ok})
    assert decide(policy, calm).action == "continue"


def test_policy_rejects_a_falling_ramp():
    with pytest.raises(ValueError, match="ramp"):
        CanaryPolicy(ramp=[0.1, 0.05])
