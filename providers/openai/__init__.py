"""OpenAI fine-tuning: the files and fine_tuning.jobs APIs through the `openai` SDK.

    adapter.py     the Provider (upload, jobs, chat completions; errors translated at one boundary)
    format.py      the chat JSONL OpenAI reads (also the format of the local trainer and the fake)
    catalog.yaml   the fine-tunable models, their limits, prices and service dates, with sources

Importing this package imports no SDK; the registry (providers/__init__.py) loads the adapter by name.
"""
