"""Plain-text tables for what the commands print."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


def text_table(rows: Sequence[Sequence[Any]], headers: Sequence[str]) -> str:
    """A plain fixed-width text table."""
    cells = [[str(h) for h in headers]] + [["" if c is None else str(c) for c in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _number(value: Any) -> str:
    return f"{value:.4f}" if isinstance(value, float) else str(value)


def metrics_table(metrics: dict[str, Any]) -> str:
    """Rows of (task, metric, value) from {task: {metric: value}} or a flat {metric: value}."""
    rows = []
    for key, value in metrics.items():
        if isinstance(value, dict):
            rows += [(key, name, _number(v)) for name, v in value.items() if not isinstance(v, (dict, list))]
        elif not isinstance(value, list):
            rows.append(("all", key, _number(value)))
    return text_table(rows, ("task", "metric", "value"))
