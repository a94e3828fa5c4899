"""Training: from prepared data to a model that answers, paying for nothing twice.

    submit    check the spec, upload once, submit once (claims in the registry)
    wait      poll until the job ends; stall, wall-clock and spend ceilings cancel it
    polling   the adaptive interval and the stall watch
    report    job events, the progress artifact and the run log's progress
    costs     the estimate, the budget gate and approval, the actual cost
    health    the loss curve read for over-fitting, flat loss, memorising, too many epochs
    serving   serve a tuned model where the provider needs it, release it unless accepted
"""
