"""Evaluation that proves a fine-tune helped: suites of graders, paired statistics, a versioned gate.

    config.py      the `eval:` and `gate:` sections (suites, judge, thresholds)
    items.py       eval items from JSONL (held-out split, item files, data/ built-in sets)
    graders/       one answer -> one GraderResult (deterministic, judge, refusal, operational)
    judging.py     the judge model of `eval.judge`, opened like a provider
    suites.py      suites ready to run: items loaded and checked, graders built, provenance known
    calls.py       a chat model behind the output cache, a shared rate limit and retries
    ratelimit.py   the token bucket that honours Retry-After
    store.py       registry tables: cached outputs, judge calibrations, decisions
    reuse.py       answers paid for by earlier runs, read back from their run directories
    runner.py      base and candidate answer every item with the same decoding, graded as they arrive
    evaluate.py    the evaluation step (plain function and the flow's task)
    stats.py       McNemar exact, Newcombe and bootstrap intervals, sign test, Holm, MDE, Cohen's kappa
    compare.py     per-item results -> paired comparisons and telling discordant items
    rules.py       rule tables (rules_v1.yaml)
    gate.py        the rule table applied to the comparisons (plain function and the flow's task)
    decision.py    what the gate decided and why
    report.py      eval/report.md
    teacher.py     the distillation recipe's comparison of the candidate with its teacher
    calibration.py a judge against human labels
    runs.py        two run directories side by side (`loraflow compare`)
"""
