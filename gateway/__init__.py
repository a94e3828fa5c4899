"""The OpenAI-compatible gateway that routes an alias to champion/challenger
(arrives with the promotion work)."""
