"""The error a rule raises when it is not understood exactly."""
from __future__ import annotations


class RuleError(ValueError):
    """A rule that cannot be compiled exactly. ``reason`` says why, in words."""

    def __init__(self, reason: str, suggestion: str = ""):
        super().__init__(reason)
        self.reason = reason
        self.suggestion = suggestion
        self.suggestions: list[str] = [suggestion] if suggestion else []  # the closest supported phrasings, best first
        self.near_miss: dict | None = None  # for a near miss: the structured condition of the closest phrasing
