"""The work of a pipeline, as plain typed functions with thin Prefect @task wrappers, by pipeline stage.

    data/        prepare data: validate, scrub PII, dedupe, count tokens, split, report, teacher data
    training/    submit, wait, costs, training health, serving
    evaluation/  suites, graders, paired statistics, the gate and its decision, the teacher, run comparison
    release/     model versions and aliases, traffic, A/B statistics, the canary
    lifecycle/   the quarterly retrain and the daily monitor

The modules at this level serve every stage: the registry of uploads and jobs (registry, claims), the run
directory, provider connections, secrets, task policy, progress reporting, and recipe presets. Tasks import
providers, never flows, the gateway, the CLI or the emulator.
"""
