"""Figures: the attention heatmap of the paper (target tasks × source prompts) and training curves.

matplotlib is imported lazily (the `plot` extra) with the non-interactive Agg backend; every figure is
written atomically as a PNG. Each function returns the path; pass `return_figure=True` to also get the
(closed) matplotlib Figure, e.g. to inspect its axes.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from attempt.runs import metrics_log
from attempt.runs.layout import predictions_file
from attempt.runs.metrics_log import flatten_record
from attempt.utils import storage


def _pyplot():
    try:
        import matplotlib
    except ImportError as err:  # pragma: no cover - depends on the environment
        raise ImportError("Plotting needs matplotlib: pip install 'attempt-tuning[plot]'.") from err
    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: str | Path, dpi: int) -> Path:
    path = Path(path)
    if path.suffix.lower() != ".png":
        raise ValueError(f"Figures are written as PNG: give a path ending in .png, got {path}.")
    with storage.atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=dpi)
    return path


def attention_matrix(
    attention: Mapping[str, Mapping[str, float]],
) -> tuple[list[str], list[str], list[list[float]]]:
    """Rows (target tasks), columns (source prompts in first-seen order, "target" last) and the weights;
    a prompt a task did not attend to gets NaN (an empty cell)."""
    if not attention or not any(attention.values()):
        raise ValueError("attention is empty: pass {target_task: {prompt_name: weight, ...}, ...}.")
    columns: list[str] = []
    for weights in attention.values():
        columns.extend(name for name in weights if name not in columns and name != "target")
    if any("target" in weights for weights in attention.values()):
        columns.append("target")
    rows = list(attention)
    values = [[float(attention[r].get(c, math.nan)) for c in columns] for r in rows]
    return rows, columns, values


def attention_heatmap(
    attention: Mapping[str, Mapping[str, float]],
    path: str | Path,
    title: str | None = None,
    dpi: int = 100,
    return_figure: bool = False,
):
    """Plot mean attention weights like the paper's figure: one row per target task, one column per source
    prompt (plus "target", the task's own prompt), each cell annotated with its weight, and a colour bar.

    Args:
        attention: {target_task: {prompt_name: weight}}, e.g. averaged `AttemptOutput.attention_weights`.
        path: where to write the PNG.
        title: figure title.
        dpi: resolution; the figure is about (1.1·columns + 2.5) × (0.6·rows + 1.5) inches.
        return_figure: also return the matplotlib Figure.

    Returns:
        The path (or (path, figure) with return_figure=True).

    Raises:
        ValueError: when `attention` is empty or the path is not a .png.
    """
    rows, columns, values = attention_matrix(attention)
    plt = _pyplot()
    import numpy as np

    data = np.array(values, dtype=float)
    fig, ax = plt.subplots(figsize=(1.1 * len(columns) + 2.5, 0.6 * len(rows) + 1.5))
    try:
        finite = data[np.isfinite(data)]
        vmax = max(float(finite.max()) if finite.size else 1.0, 1e-9)
        image = ax.imshow(np.ma.masked_invalid(data), cmap="Blues", vmin=0.0, vmax=vmax, aspect="auto")
        ax.set_xticks(range(len(columns)), labels=columns, rotation=45, ha="right")
        ax.set_yticks(range(len(rows)), labels=rows)
        ax.set_xlabel("prompt")
        ax.set_ylabel("target task")
        for i in range(len(rows)):
            for j in range(len(columns)):
                if np.isfinite(data[i, j]):
                    dark = data[i, j] > 0.6 * vmax
                    ax.text(
                        j,
                        i,
                        f"{data[i, j]:.2f}",
                        ha="center",
                        va="center",
                        fontsize=8,
                        color="white" if dark else "black",
                    )
        fig.colorbar(image, ax=ax, label="attention weight")
        if title:
            ax.set_title(title)
        fig.tight_layout()
        out = _save(fig, path, dpi)
    finally:
        plt.close(fig)
    return (out, fig) if return_figure else out


def read_records(records: str | Path | Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Records from a JSON-lines file, read as `attempt.runs.metrics_log.read_records` reads a run's log (blank
    lines skipped, a torn last line dropped with a warning), or from an iterable of dicts.

    Raises:
        FileNotFoundError: no such file. ValueError: a line before the last is not a JSON object.
    """
    if isinstance(records, (str, Path)):
        path = Path(records)
        if not path.is_file():
            raise FileNotFoundError(f"No metrics file at {path}.")
        return [record for _, record in metrics_log.read_records(path)]
    return [dict(r) for r in records]


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return float(value)


def curve_series(records: Iterable[Mapping[str, Any]]) -> tuple[dict[str, list], dict[str, list]]:
    """Split records into training series (records with "loss", not validation: every numeric key but
    "step"/"epoch" against step) and validation series (records with "average" or split="validation":
    "average" and the per-task metrics). Each series is a list of (step, value)."""
    train: dict[str, list] = {}
    valid: dict[str, list] = {}
    for index, record in enumerate(records):
        # metrics.jsonl nests values: {"metrics": {"rte": {"accuracy": 71}, "average": 71}} → rte/accuracy, average
        record = {k.removeprefix("metrics/"): v for k, v in flatten_record(record).items()}
        step = _number(record.get("step"))
        step = float(index) if step is None else step
        split = record.get("split")
        if split is not None and split not in ("validation", "eval", "dev"):
            continue  # the final test evaluation is no point on the validation curve
        is_eval = split is not None or "average" in record
        if not is_eval and "loss" not in record:
            continue
        target = valid if is_eval else train
        for key, value in record.items():
            number = _number(value)
            if key in ("step", "epoch", "best_step") or number is None:
                continue
            target.setdefault(key, []).append((step, number))
    return train, valid


def training_curves(
    records: str | Path | Iterable[Mapping[str, Any]],
    path: str | Path,
    title: str | None = None,
    dpi: int = 100,
    return_figure: bool = False,
):
    """Plot training loss (and other numeric training values, e.g. learning rate, on their own axes) and the
    validation average metric (with the per-task metrics, thinner) against the step.

    Args:
        records: a metrics.jsonl path or a list of dicts such as {"step": 10, "loss": 0.7} and
            {"step": 100, "split": "validation", "average": 71.2, "rte/accuracy": 71.2}.
        path: where to write the PNG.

    Returns:
        The path (or (path, figure) with return_figure=True).

    Raises:
        ValueError: when there is no training loss and no validation record to plot.
    """
    train, valid = curve_series(read_records(records))
    if not train and not valid:
        raise ValueError(
            "Nothing to plot: no training records with 'loss' and no validation records with 'average'."
        )
    plt = _pyplot()
    panels = [("loss", "training loss")] if "loss" in train else []
    panels += [(k, k) for k in train if k != "loss"]
    if valid:
        panels.append(("validation", "validation metric"))
    fig, axes = plt.subplots(len(panels), 1, figsize=(7, 2.6 * len(panels) + 0.6), sharex=True, squeeze=False)
    try:
        for ax, (key, label) in zip(axes[:, 0], panels, strict=True):
            if key == "validation":
                series = {"average": valid["average"]} if "average" in valid else {}
                series.update({k: v for k, v in valid.items() if k != "average"})
                for name, points in series.items():
                    xs, ys = zip(*points, strict=True)
                    ax.plot(xs, ys, marker="o", lw=2 if name == "average" else 0.8, ms=3, label=name)
                if len(series) > 1:
                    ax.legend(fontsize=7, loc="best")
            else:
                xs, ys = zip(*train[key], strict=True)
                ax.plot(xs, ys, lw=1)
            ax.set_ylabel(label)
            ax.grid(alpha=0.3)
        axes[-1, 0].set_xlabel("step")
        if title:
            fig.suptitle(title)
        fig.tight_layout()
        out = _save(fig, path, dpi)
    finally:
        plt.close(fig)
    return (out, fig) if return_figure else out


__all__ = ["attention_heatmap", "attention_matrix", "curve_series", "read_records", "training_curves"]


def example_attention_heatmap(
    records: str | Path | Iterable[Mapping[str, Any]],
    path: str | Path,
    title: str | None = None,
    max_rows: int = 40,
    dpi: int = 100,
) -> Path:
    """Plot the attention of single examples: one row per example (grouped by gold label), one column per
    prompt. Where `attention_heatmap` shows a task's mean, this shows whether the weights depend on the input.

    Args:
        records: test_predictions.jsonl of an ATTEMPT run (or its records), each with ``attention_weights``.
        path: where to write the PNG.
        title: figure title.
        max_rows: at most this many examples (the first ones of each label, labels in turn).

    Raises:
        ValueError: when no record has attention weights.
    """
    rows = [r for r in read_records(records) if r.get("attention_weights")]
    if not rows:
        raise ValueError(
            f"No record has attention_weights: pass the {predictions_file('test')} of an ATTEMPT run."
        )
    rows.sort(key=lambda r: str(r.get("reference")))
    rows = rows[:max_rows]
    columns = list(rows[0]["attention_weights"])
    plt = _pyplot()
    import numpy as np

    data = np.array([[r["attention_weights"][c] for c in columns] for r in rows], dtype=float)
    fig, ax = plt.subplots(figsize=(0.9 * len(columns) + 3.0, 0.22 * len(rows) + 1.6))
    try:
        image = ax.imshow(data, cmap="Blues", vmin=0.0, vmax=max(float(data.max()), 1e-9), aspect="auto")
        ax.set_xticks(range(len(columns)), labels=columns, rotation=45, ha="right")
        ax.set_yticks(
            range(len(rows)),
            labels=[f"{r.get('index', i)} ({r.get('reference')})" for i, r in enumerate(rows)],
            fontsize=6,
        )
        ax.set_xlabel("prompt")
        ax.set_ylabel("test example (gold label)")
        fig.colorbar(image, ax=ax, label="attention weight")
        if title:
            ax.set_title(title, fontsize=9)
        fig.tight_layout()
        return _save(fig, path, dpi)
    finally:
        plt.close(fig)
