"""Google Vertex AI Gemini supervised tuning: google-genai `tunings` and Cloud Storage.

    adapter.py     the Provider (GCS upload, tuning jobs, generateContent on the tuned endpoint)
    client.py      its options, the two clients, and the one translation of their errors
    format.py      the Gemini `contents` lines Vertex tunes on
    catalog.yaml   the tunable models, their limits, adapter sizes, prices and retirement dates, with sources

Importing this package imports no SDK; the registry (providers/__init__.py) loads the adapter by name.
"""
