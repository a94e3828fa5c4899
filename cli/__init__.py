"""The `loraflow` command: `app.py` builds it, one module per noun (data, evaluate, judge, models, ...).

The CLI is the top layer: it calls flows and tasks, prints one line per user mistake, and is the only
product code that starts the loopback emulator (for pipelines whose provider says `endpoint: emulator`).
"""
