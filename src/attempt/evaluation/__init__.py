"""Evaluation and prediction — the one inference path that `attempt evaluate`, `attempt predict` and
`attempt serve` share — and the figures drawn from a run.

Layer: above runs. May import everything below it.
"""
