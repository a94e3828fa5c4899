"""Anthropic, as a chat model only (judges and teachers): the messages API through the `anthropic` SDK.

    adapter.py     the ChatModel (it trains nothing, so it has no format and no catalog)

Importing this package imports no SDK; the registry (providers/__init__.py) loads the adapter by name.
"""
