"""Together fine-tuning: files, fine-tunes, model limits and price estimates through the `together` SDK.

    adapter.py     the Provider (live model limits where the API answers, the catalog otherwise)
    format.py      Together's chat JSONL rules
    catalog.yaml   the fine-tunable models, their limits, prices and service dates, with sources

Importing this package imports no SDK; the registry (providers/__init__.py) loads the adapter by name.
"""
