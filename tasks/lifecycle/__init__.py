"""Keeping a fine-tune fresh once it serves.

    retrain   the quarterly retrain: new data since the last run, the frozen eval set, who won and why
    monitor   the daily monitor: online metrics, drift, the newest base's gap, provider retirements
    drift     the population stability index between training prompts and recent inputs
"""
