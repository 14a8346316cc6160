"""Feedback layer: outcomes of decisions and the rule scorecard."""
