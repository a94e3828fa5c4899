"""Data preparation, one noun per module.

    validate  streaming contract checks of chat JSONL      rules    diagnostics and severities per target
    pii       PII and secret detection, scrubbing          dedupe   exact keys, MinHash signatures, LSH
    tokens    token counts with the target's tokenizer     split    hash split, atomic writing
    checks    volume, recipe, refusals, diversity          scan     the one streaming pass over a file
    analysis  duplicates, split, leakage over the scan     report   report.json and report.md
    stage     prepare() and check_file()                   prepare  the Prefect task
    config    the `data:` section                          target   provider, base model, epochs
"""
