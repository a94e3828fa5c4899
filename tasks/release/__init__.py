"""Release: from an accepted candidate to the model that serves everyone.

    models         model versions, the champion/challenger aliases, experiments, the audit trail
    promotion      register an accepted candidate as challenger (and the base as the first champion)
    traffic        what the gateway observed: assignments, exposures, outcomes, the canary's snapshot
    ab             sticky assignment, the always-valid sequential test, SRM, non-inferiority
    canary         the canary's decision rule: breakers, SRM, guardrails, ramp, promote, roll back
    canary_steps   the canary flow's tasks: look, apply (alias moves, approval), the readout
"""
