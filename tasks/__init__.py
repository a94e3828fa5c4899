"""The work of a pipeline, as plain typed functions with thin Prefect @task wrappers.

Each task module owns one noun: data preparation, training (upload, submit, wait), evaluation, the
gate, the registry of uploads and jobs, the run directory. Tasks import providers, never flows.
"""
