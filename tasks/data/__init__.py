"""Data preparation, one noun per module.

    source    input: compression, byte ranges, bounded lines   filescan  one file on every core, in order
    scan      the streaming pass over a range, in a process    validate  contract checks of chat JSONL lines
    pii       PII and secret detection, scrubbing              pii_numbers  digits judged by shape and context
    rules     diagnostics and severities per target            dedupe    exact keys, MinHash signatures, LSH
    tokens    token counts with the target's tokenizer         split     hash split, atomic writing
    checks    volume, recipe, refusals, diversity              analysis  duplicates, split, leakage
    report    report.json and report.md                        stage     prepare() and check_file()
    prepare   the Prefect task                                 config    the `data:` section
    target    provider, base model, epochs                     generate  teacher-written data
"""
