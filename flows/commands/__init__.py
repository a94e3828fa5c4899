"""Command groups of the `loraflow` CLI, one module per noun (data, judge, models, ...)."""
