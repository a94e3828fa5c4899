"""Data preparation: streaming validation, deterministic split, data report."""
